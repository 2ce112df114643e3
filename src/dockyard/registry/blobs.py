"""Blob integrity: a verifying stream wrapper and the resumable download-to-file loop.

`VerifyingReader` hashes what passes through it and raises `DigestMismatch` at EOF when the
content is short, too long or hashes to something else. `download_to` writes a blob into a
partial file, resuming from the bytes already there (their hash is computed first).
"""

from __future__ import annotations

import os

from .errors import DigestMismatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, BinaryIO, Callable, Protocol
else:
    Protocol = object  # _Readable: a structural interface for type checkers


CHUNK = 1 << 20


class _Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


def new_hasher(digest: str) -> Any:
    alg, _, _hex = digest.partition(":")
    if alg not in ("sha256", "sha384", "sha512"):
        raise DigestMismatch(f"unsupported digest algorithm in {digest}", digest)
    import hashlib  # OpenSSL's, fast for blobs; loaded only when a blob is hashed

    return hashlib.new(alg)


class VerifyingReader:
    """Wrap `stream` (which yields the blob from `offset`); raise DigestMismatch at EOF or when
    more than `size` bytes come. `hasher` may carry the hash of the first `offset` bytes."""

    def __init__(self, stream: _Readable, digest: str, size: int, offset: int = 0,
                 hasher: Any = None) -> None:
        self._stream = stream
        self.digest = digest
        self.size = size
        self.count = offset
        self._hash = hasher if hasher is not None else new_hasher(digest)
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        want = min(n, self.size - self.count + 1)  # one extra byte to notice excess
        data = self._stream.read(max(want, 1)) if want > 0 else self._stream.read(1)
        if not data:
            self._done = True
            self._check_end()
            return b""
        self.count += len(data)
        if self.count > self.size:
            self._fail(f"more than the expected {self.size} bytes")
        self._hash.update(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def _check_end(self) -> None:
        if self.count < self.size:
            self._fail(f"unexpected end of data after {self.count} of {self.size} bytes")
        got = self._hash.hexdigest()
        if got != self.digest.partition(":")[2]:
            self._fail(f"content hashes to {self.digest.partition(':')[0]}:{got}")

    def _fail(self, why: str) -> None:
        self._done = True
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()
        raise DigestMismatch(f"blob {self.digest} failed verification: {why}", self.digest)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hash_prefix(path: Path, digest: str) -> tuple[Any, int]:
    """The hasher fed with `path`'s content, and its length (0 when the file is missing)."""
    h = new_hasher(digest)
    n = 0
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return h, 0
    with f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h, n


def copy_verified(src: VerifyingReader, out: BinaryIO,
                  on_progress: Callable[[int], None] | None) -> None:
    """Copy until EOF (verification happens in `src`), reporting cumulative byte counts.
    Every byte reported is already in the file (`out` should be unbuffered), so a reader
    following the partial file may read up to the reported count."""
    while chunk := src.read(CHUNK):
        view = memoryview(chunk)
        while view:
            n = out.write(view)
            view = view[n if n is not None else len(view):]
        if on_progress is not None:
            on_progress(src.count)


def finish_file(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def discard(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
