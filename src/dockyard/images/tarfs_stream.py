"""The input side of tarfs: sniff a tar stream's compression, decompress it, hash it.

`_open_stream` returns a `_HashingReader` over the plain tar bytes whatever the compression
(gzip, zstd, bzip2, xz, none): it hashes and counts every byte (the layer's diffID) and keeps
a short tail so the end-of-archive block can be checked. gzip goes through `Gunzip`, zlib
driven directly in 1 MiB reads: `gzip.GzipFile` feeds zlib 8 KiB at a time and checks the
CRC in Python, which made decompression the slowest stage of a pull.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import zlib
from collections import deque

from ..errors import Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

_CHUNK = 1 << 20
#: bytes of decompressed stream kept to check the end-of-archive block: more than the reader
#: reads ahead of tarfile (one _CHUNK, and tarfile's own record buffer)
_TAIL_KEEP = 4 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


class _CorruptStream(Exception):
    """A decompressor refused the data (kept apart from file-system OSErrors)."""


class _Prefixed:
    """A reader that returns `head` first, then the rest of `raw` (magic-byte sniffing)."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._raw.read(n)


class _HashingReader:
    """Hashes and counts every byte read through it; keeps a short tail for end checks."""

    def __init__(self, raw: Any, corrupt: tuple[type[BaseException], ...]) -> None:
        self._raw = raw
        self._corrupt = corrupt
        self._sha = hashlib.sha256()
        self._tail: deque[bytes] = deque()  # the last chunks read, _TAIL_KEEP bytes or more
        self._tail_len = 0
        # read ahead, not yet handed out: the raw stream is read in _CHUNKs whatever the
        # caller asks (tarfile asks 10 KiB at a time); a decompressor does far better so
        self._buf = b""
        self._off = 0
        self.count = 0

    def at_eof(self) -> bool:
        """True if the stream is empty (reads ahead; handed out by the next reads)."""
        if self._off >= len(self._buf):
            self._buf, self._off = self._read_raw(_CHUNK), 0
        return not self._buf

    def read(self, n: int = -1) -> bytes:
        if self._off < len(self._buf):
            if n is None or n < 0:
                n = len(self._buf) - self._off
            data = self._buf[self._off : self._off + n]
            self._off += len(data)
            return data
        if n is None or n < 0:
            return self._read_raw(_CHUNK)
        data = self._read_raw(max(n, _CHUNK))
        if len(data) <= n:
            return data
        self._buf, self._off = data, n
        return data[:n]

    def _read_raw(self, n: int | None) -> bytes:
        try:
            data = self._raw.read(n if n is not None and n >= 0 else _CHUNK)
        except self._corrupt as e:
            raise _CorruptStream(str(e) or type(e).__name__) from e
        except OSError as e:
            if e.errno is None:  # bz2 "Invalid data stream" and friends
                raise _CorruptStream(str(e)) from e
            raise
        if data:
            self._sha.update(data)
            self.count += len(data)
            self._tail.append(data)
            self._tail_len += len(data)
            while self._tail_len - len(self._tail[0]) >= _TAIL_KEEP:
                self._tail_len -= len(self._tail.popleft())
        return data

    def block_at(self, offset: int, size: int) -> bytes:
        """The `size` bytes at stream `offset` (reading ahead as needed; short at EOF)."""
        while self.count < offset + size:
            if not self._read_raw(offset + size - self.count):
                break
        start = offset - (self.count - self._tail_len)
        if start < 0:
            raise _CorruptStream("internal: end-of-archive block fell out of the window")
        return b"".join(self._tail)[start : start + size]

    def drain(self) -> None:
        self._buf, self._off = b"", 0
        while self._read_raw(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def read_head(stream: BinaryIO, n: int) -> bytes:
    """Up to `n` first bytes of `stream` (fewer only at its end): a compression's magic."""
    head = b""
    while len(head) < n:
        more = stream.read(n - len(head))
        if not more:
            break
        head += more
    return head


def _open_stream(stream: BinaryIO) -> _HashingReader:
    """Sniff the compression from the magic bytes; return a hashing reader of the tar bytes."""
    head = read_head(stream, 6)
    src = _Prefixed(head, stream)
    corrupt: tuple[type[BaseException], ...] = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
    raw: Any
    if head.startswith(_GZIP_MAGIC):
        raw = Gunzip(src)
    elif head.startswith(_ZSTD_MAGIC):
        raw, extra = _zstd_reader(src)
        corrupt += extra
    elif head.startswith(_BZIP2_MAGIC):
        raw = bz2.BZ2File(src, mode="rb")  # type: ignore[arg-type]
    elif head.startswith(_XZ_MAGIC):
        raw = lzma.LZMAFile(src, mode="rb")  # type: ignore[arg-type]
    else:
        raw = src
    return _HashingReader(raw, corrupt)


def _zstd_reader(src: _Prefixed) -> tuple[Any, tuple[type[BaseException], ...]]:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
        return reader, (zstandard.ZstdError,)
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
    except ImportError:
        raise Unsupported(
            "zstd-compressed layers need the 'zstandard' Python module, which is not installed"
        ) from None
    return zstd.ZstdFile(src, mode="rb"), (zstd.ZstdError,)


class Gunzip:
    """A reader of the data in a gzip file (RFC 1952): members one after the other, zero
    padding after them allowed (as `gzip.GzipFile` reads them). zlib parses each member's
    header and checks its CRC-32 and length; errors are `zlib.error`, `EOFError` (truncated)
    and `gzip.BadGzipFile` (not gzip after a member)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # input read past a member's end: the next member's start
        self._out = b""  # decompressed, not yet handed out
        self._out_off = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if self._out_off < len(self._out):
            data = self._out[self._out_off : self._out_off + n]
            self._out_off += len(data)
            return data
        while n and not self._eof:
            z = self._z
            if z.eof:
                self._next_member(z.unused_data)
                continue
            buf = z.unconsumed_tail
            if not buf:
                buf, self._pending = (self._pending or self._raw.read(_CHUNK)), b""
            if not buf:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            # whole chunks out of zlib: a small max_length would copy the rest of the
            # input into unconsumed_tail on every call
            out = z.decompress(buf, max(n, _CHUNK))
            if len(out) > n:
                self._out, self._out_off = out, n
                return out[:n]
            if out:
                return out
        return b""

    def _next_member(self, rest: bytes) -> None:
        """After a member: skip zero padding; then either the end, or the next member."""
        while True:
            rest = rest.lstrip(b"\0")
            if len(rest) >= 2:
                break
            more = self._raw.read(_CHUNK)
            if not more:
                if rest:
                    raise gzip.BadGzipFile("Not a gzipped file (trailing garbage)")
                self._eof = True
                return
            rest += more
        if rest[:2] != _GZIP_MAGIC:
            raise gzip.BadGzipFile(f"Not a gzipped file ({rest[:2]!r})")
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = rest
