"""Request bodies as readable streams: Content-Length bounded, or chunked (decoded)."""

from __future__ import annotations

import io

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO


class LengthReader(io.RawIOBase):
    """Exactly `length` bytes of the connection."""

    def __init__(self, f: BinaryIO, length: int) -> None:
        self.f, self.left = f, length

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.left <= 0:
            return 0
        data = self.f.read(min(len(b), self.left, 1 << 16))
        if not data:
            raise ConnectionError("client closed the connection in the middle of the request body")
        b[:len(data)] = data
        self.left -= len(data)
        return len(data)


class ChunkedReader(io.RawIOBase):
    """Transfer-Encoding: chunked, decoded."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.left, self.done = f, 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self.left == 0 and not self.done:
            line = self.f.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection in the middle of a chunked body")
            size = line.split(b";", 1)[0].strip()
            if not size:
                continue
            self.left = int(size, 16)
            if self.left == 0:
                self.done = True
                while self.f.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
        if self.done:
            return 0
        data = self.f.read(min(len(b), self.left, 1 << 16))
        if not data:
            raise ConnectionError("client closed the connection in the middle of a chunked body")
        b[:len(data)] = data
        self.left -= len(data)
        if self.left == 0:
            self.f.readline(16)  # CRLF after the chunk
        return len(data)
