"""Blob uploads for `RegistryClient`: cross-repository mount, monolithic and chunked uploads.

POST /v2/<name>/blobs/uploads/ opens a session (202 + Location); a monolithic upload PUTs the
whole blob to Location?digest=…; a chunked one PATCHes `Content-Range: start-end` pieces, then
PUTs ?digest= with no body. A mount (`?mount=<digest>&from=<repo>`) answers 201 when the
registry linked the blob, or 202 (a fresh session, kept for the upload that follows) when it
could not. An upload that fails mid-way is begun again in a new session.
"""

from __future__ import annotations

import io
import os
import time

from ..errors import DockyardError, InvalidArgument, NotFound
from .errors import DigestMismatch, RegistryUnavailable
from .urls import join, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, BinaryIO, Callable

UPLOAD_SESSIONS = 3

if TYPE_CHECKING:
    from .session import _Endpoint
    from .transport import Response


class _ProgressFile(io.RawIOBase):
    """A seekable read-only view of a file that reports cumulative bytes read."""

    def __init__(self, f: BinaryIO, on_progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self._f = f
        self._start = f.tell()
        self._cb = on_progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if self._cb is not None and data:
            self._cb(self._f.tell() - self._start)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(self._start + pos if whence == 0 else pos, whence) - self._start

    def tell(self) -> int:
        return self._f.tell() - self._start


class UploadMixin:
    name: str
    repository: str
    scopes: tuple[str, ...]
    _origin: "_Endpoint"
    _backoff: float

    if TYPE_CHECKING:
        def _call(self, ep: "_Endpoint", method: str, path: str,
                  headers: dict[str, str] | None = None, body: Any = None, stream: bool = False,
                  scopes: tuple[str, ...] | None = None, follow: bool = True) -> "Response": ...

        def _fail(self, resp: "Response", what: str) -> DockyardError: ...

        def _ensure(self, ep: "_Endpoint") -> str: ...

    def _uploads_path(self) -> str:
        return f"/v2/{self.repository}/blobs/uploads/"

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Ask the registry to link `digest` from another repository (True when it did)."""
        scopes = self.scopes + (f"repository:{from_repository}:pull",)
        path = f"{self._uploads_path()}?mount={quote(digest, safe=':')}&from={quote(from_repository)}"
        resp = self._call(self._origin, "POST", path, scopes=scopes)
        if resp.status == 201:
            return True
        if resp.status == 202:
            # the registry opened an upload session instead: keep it for upload_blob (a
            # DELETE to cancel it would need the "delete" action, which a pusher may lack)
            loc = resp.header("Location")
            if loc:
                self._sessions()[digest] = self._absolute(loc)
            return False
        raise self._fail(resp, f"mount of blob {digest} from {from_repository} into {self.name}")

    def _sessions(self) -> dict[str, str]:
        got: dict[str, str] | None = self.__dict__.get("_upload_sessions")
        if got is None:
            got = self.__dict__.setdefault("_upload_sessions", {})
        return got

    def _start_upload(self, digest: str) -> str:
        reuse = self._sessions().pop(digest, None)
        if reuse is not None:
            return reuse
        resp = self._call(self._origin, "POST", self._uploads_path())
        if resp.status != 202 or not resp.header("Location"):
            raise self._fail(resp, f"upload to {self.name}")
        return self._absolute(resp.header("Location") or "")

    def _absolute(self, location: str) -> str:
        return join(self._ensure(self._origin) + "/", location)

    def upload_blob(self, digest: str, size: int, reader: BinaryIO | Path,
                    chunk_size: int | None = None,
                    on_progress: Callable[[int], None] | None = None) -> None:
        """Upload a blob of `size` bytes (monolithic PUT, or PATCH chunks of `chunk_size`).
        `on_progress` gets the cumulative number of bytes sent."""
        if isinstance(reader, (str, os.PathLike)):
            with open(reader, "rb") as f:
                self._upload_restarting(digest, size, f, chunk_size, on_progress)
        else:
            self._upload_restarting(digest, size, reader, chunk_size, on_progress)

    def _upload_restarting(self, digest: str, size: int, f: BinaryIO, chunk_size: int | None,
                           on_progress: Callable[[int], None] | None) -> None:
        """`_upload`, begun again in a new session (up to 3 times, when the source can be
        rewound) after the registry failed mid-way or forgot the session."""
        start = f.tell() if _seekable(f) else None
        attempts = UPLOAD_SESSIONS if start is not None else 1
        for attempt in range(attempts):
            try:
                self._upload(digest, size, f, chunk_size, on_progress)
                return
            except (RegistryUnavailable, NotFound) as e:
                if attempt + 1 >= attempts or (
                        isinstance(e, NotFound) and "blob upload unknown" not in str(e)):
                    raise
            assert start is not None
            f.seek(start)
            time.sleep(self._backoff * 2 ** attempt)

    def _upload(self, digest: str, size: int, f: BinaryIO, chunk_size: int | None,
                on_progress: Callable[[int], None] | None) -> None:
        what = f"upload of blob {digest} to {self.name}"
        loc = self._start_upload(digest)
        if chunk_size is None:
            body: Any = _ProgressFile(f, on_progress) if _seekable(f) else f
            resp = self._call(self._origin, "PUT", _with_digest(loc, digest),
                              {"Content-Type": "application/octet-stream",
                               "Content-Length": str(size)}, body)
        else:
            if chunk_size <= 0:
                raise InvalidArgument(f"{what}: chunk size must be positive")
            sent = 0
            while sent < size:
                data = f.read(min(chunk_size, size - sent))
                if not data:
                    raise InvalidArgument(f"{what}: the source ended after {sent} of {size} bytes")
                resp = self._call(self._origin, "PATCH", loc,
                                  {"Content-Type": "application/octet-stream",
                                   "Content-Range": f"{sent}-{sent + len(data) - 1}"}, data)
                if resp.status != 202:
                    raise self._fail(resp, what)
                sent += len(data)
                if on_progress is not None:
                    on_progress(sent)
                loc = self._absolute(resp.header("Location") or loc)
            resp = self._call(self._origin, "PUT", _with_digest(loc, digest))
        if resp.status in (400,) and b"DIGEST_INVALID" in resp.body:
            raise DigestMismatch(f"{what}: the registry computed another digest for the content",
                                 digest)
        if resp.status not in (201, 204):
            raise self._fail(resp, what)
        got = resp.header("Docker-Content-Digest")
        if got and got.startswith("sha256:") and got != digest:
            raise DigestMismatch(f"{what}: the registry stored {got}", digest)


def _seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable()
    except (AttributeError, ValueError):
        return False


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest, safe=":")
