"""`RegistryClient`: one repository on one registry, over the OCI distribution API.

Pulls try the configured mirrors first and fall back to the origin (how endpoints are reached
and authenticated is `session.Session`'s); every failure becomes one of `dockyard.errors`'
kinds with a one-line message naming the registry, repository or digest.
"""

from __future__ import annotations

import time

from ..errors import InvalidArgument, NotFound, Unauthorized
from .blobs import VerifyingReader, copy_verified, discard, finish_file, hash_prefix, new_hasher
from .errors import DigestMismatch, RegistryUnavailable, describe
from .manifest import (ALL_MANIFEST_TYPES, IMAGE_TYPES, MAX_MANIFEST_SIZE, Descriptor, ImageManifest,
                       Manifest, Platform, check_supported, choose_platform, detect_media_type,
                       host_platform, parse_image_manifest, parse_index, sha256_digest,
                       verified_manifest)
from .session import Session, _Endpoint
from .transport import ConnectionFailed, Response, read_limited
from .uploads import UploadMixin
from .urls import quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO, Callable, TypeVar, cast

    T = TypeVar("T")
else:
    def cast(_type: object, value: object) -> object:  # typing.cast, without importing typing
        return value


__all__ = ["RegistryClient", "Manifest", "ImageManifest", "Descriptor", "VerifyingReader",
           "ALL_MANIFEST_TYPES", "parse_image_manifest"]


class RegistryClient(Session, UploadMixin):
    """A client for `ref_domain/repository`; thread-safe for parallel blob transfers."""

    def check_push(self, digests: list[str], tag: str, media_type: str) -> tuple[dict[str, int | None], str | None]:
        """Before a push, in one round trip (pipelined HEADs): which blobs the repository has
        (digest → size, None when missing) and the digest of the manifest `tag` points to
        (None when there is none, or the registry does not say)."""
        blobs = list(dict.fromkeys(digests))
        # the manifest first: its HEAD takes the registry longest, on a connection of its own
        paths = [self._path("manifests", tag)] + [self._path("blobs", d) for d in blobs]
        top, *resps = self._call_many(self._origin, "HEAD", paths, {"Accept": media_type},
                                      connections=3)
        sizes: dict[str, int | None] = {}
        for digest, resp in zip(blobs, resps):
            if resp.status == 200:
                sizes[digest] = int(resp.header("Content-Length") or 0)
            elif resp.status == 404:
                sizes[digest] = None
            else:
                raise self._fail(resp, self._blob_what(digest))
        current = top.header("Docker-Content-Digest") if top.status == 200 else None
        return sizes, current

    def _fallback(self, op: Callable[[_Endpoint], T]) -> T:
        """Run `op` on each mirror in turn, then on the origin; a mirror's failure is skipped."""
        for ep in self._endpoints:
            if ep.dead:
                continue
            if not ep.mirror:
                return op(ep)
            try:
                return op(ep)
            except (RegistryUnavailable, NotFound, Unauthorized) as e:
                if isinstance(e, RegistryUnavailable):
                    ep.dead = True
                continue
        raise AssertionError("the origin is always the last endpoint")

    def _path(self, kind: str, ref: str) -> str:
        return f"/v2/{self.repository}/{kind}/{quote(ref, safe=':')}"

    # --- manifests ---------------------------------------------------------------------------
    def _manifest_what(self, reference: str) -> str:
        sep = "@" if ":" in reference else ":"
        return f"manifest for {self.name}{sep}{reference}"

    def get_manifest(self, reference: str, accept: tuple[str, ...] = ALL_MANIFEST_TYPES) -> Manifest:
        what = self._manifest_what(reference)

        def op(ep: _Endpoint) -> Manifest:
            resp = self._call(ep, "GET", self._path("manifests", reference),
                              {"Accept": ", ".join(accept)}, stream=True)
            if resp.status in (401, 403) and "push" not in self.actions:
                raise Unauthorized(f"pull access denied for {self.name}, repository does not exist "
                                   f"or may require 'docker login': {describe(resp.status, resp.body)}")
            if resp.status != 200:
                raise self._fail(resp, what)
            length = resp.header("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
                resp.close()
                raise InvalidArgument(f"{what}: manifest too big ({length} bytes)")
            try:
                raw = read_limited(resp, MAX_MANIFEST_SIZE)
            except ConnectionFailed as e:
                raise self._unreachable(ep.host, e) from None
            media_type = detect_media_type(raw, resp.header("Content-Type"))
            check_supported(media_type, what)
            return verified_manifest(media_type, raw, reference, resp.header("Docker-Content-Digest"),
                                      what)
        return self._fallback(op)

    def head_manifest(self, reference: str,
                      accept: tuple[str, ...] = ALL_MANIFEST_TYPES) -> Descriptor | None:
        """The manifest's descriptor from a HEAD (None if missing); cheap up-to-date checks."""
        def op(ep: _Endpoint) -> Descriptor:
            resp = self._call(ep, "HEAD", self._path("manifests", reference),
                              {"Accept": ", ".join(accept)})
            if resp.status != 200:
                raise self._fail(resp, self._manifest_what(reference))
            digest = resp.header("Docker-Content-Digest") or ""
            if not digest and reference.startswith("sha256:"):
                digest = reference
            return Descriptor((resp.header("Content-Type") or "").split(";")[0], digest,
                              int(resp.header("Content-Length") or 0))
        try:
            return self._fallback(op)
        except NotFound:
            return None

    def resolve_platform(self, manifest: Manifest, os: str = "linux", arch: str | None = None,
                         variant: str | None = None) -> Manifest:
        """For an index, fetch the entry for os/arch[/variant] (default: this host)."""
        if not manifest.is_index:
            return manifest
        want = Platform(os, arch, variant) if arch else host_platform()
        if arch is None and os != "linux":
            want = Platform(os, want.architecture, want.variant)
        desc = choose_platform(parse_index(manifest), want)
        child = self.get_manifest(desc.digest, IMAGE_TYPES)
        if child.media_type not in IMAGE_TYPES:
            raise InvalidArgument(f"{self.name}@{desc.digest}: an index entry is not an image manifest")
        return child

    def parse_image_manifest(self, m: Manifest) -> ImageManifest:
        return parse_image_manifest(m)

    def put_manifest(self, reference: str, media_type: str, raw: bytes) -> str:
        digest = sha256_digest(raw)
        what = f"manifest {self.name}:{reference}" if ":" not in reference else \
            f"manifest {self.name}@{reference}"
        resp = self._call(self._origin, "PUT", self._path("manifests", reference),
                          {"Content-Type": media_type}, raw)
        if resp.status not in (200, 201, 202):
            raise self._fail(resp, f"push of {what}")
        got = resp.header("Docker-Content-Digest")
        if got and got.startswith("sha256:") and got != digest:
            raise DigestMismatch(f"push of {what}: registry computed {got}, expected {digest}", digest)
        return digest

    def tags(self) -> list[str]:
        out: list[str] = []
        path: str | None = f"/v2/{self.repository}/tags/list?n=1000"
        def op(ep: _Endpoint) -> Response:
            resp = self._call(ep, "GET", cast(str, path))
            if resp.status != 200:
                raise self._fail(resp, f"tags of {self.name}")
            return resp

        while path:
            resp = self._fallback(op)
            try:
                import json

                out.extend(str(t) for t in json.loads(resp.body).get("tags") or [])
            except (ValueError, AttributeError):
                raise InvalidArgument(f"tags of {self.name}: the registry sent invalid JSON") from None
            link = resp.header("Link") or ""
            path = link[link.find("<") + 1: link.find(">")] if 'rel="next"' in link else None
        return out

    # --- blobs ---------------------------------------------------------------------------------
    def _blob_what(self, digest: str) -> str:
        return f"blob {digest} of {self.name}"

    def _open(self, ep: _Endpoint, digest: str, offset: int) -> Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._call(ep, "GET", self._path("blobs", digest), headers, stream=True)
        if resp.status not in (200, 206):
            raise self._fail(resp, self._blob_what(digest))
        return resp

    def open_blob(self, digest: str, offset: int = 0) -> BinaryIO:
        """A stream of the blob from `offset` (wrap it in `VerifyingReader` to check it)."""
        resp = self._fallback(lambda ep: self._open(ep, digest, offset))
        if resp.status == 206 and not (resp.header("Content-Range") or "").startswith(
                f"bytes {offset}-"):
            resp.close()
            raise RegistryUnavailable(f"{self._blob_what(digest)}: the registry answered the range "
                                      f"from {offset} with {resp.header('Content-Range')}")
        if offset and resp.status == 200:  # Range ignored: skip the prefix ourselves
            left = offset
            while left > 0:
                chunk = resp.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
        return cast("BinaryIO", resp)

    def get_blob_bytes(self, digest: str, max_size: int) -> bytes:
        def op(ep: _Endpoint) -> bytes:
            resp = self._open(ep, digest, 0)
            length = resp.header("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_size:
                resp.close()
                raise InvalidArgument(f"{self._blob_what(digest)} is larger than {max_size} bytes")
            try:
                data = read_limited(resp, max_size)
            except ConnectionFailed as e:
                raise self._unreachable(ep.host, e) from None
            if len(data) > max_size:
                raise InvalidArgument(f"{self._blob_what(digest)} is larger than {max_size} bytes")
            h = new_hasher(digest)
            h.update(data)
            if h.hexdigest() != digest.partition(":")[2]:
                raise DigestMismatch(f"{self._blob_what(digest)} failed verification: content "
                                     f"hashes to {digest.partition(':')[0]}:{h.hexdigest()}", digest)
            return data
        return self._fallback(op)

    def fetch_blob(self, digest: str, size: int, partial_path: Path,
                   on_progress: Callable[[int], None] | None = None) -> Path:
        """Download into `partial_path`, resuming from what it holds; verified and fsynced.
        `on_progress` gets the cumulative number of bytes held so far."""
        from pathlib import Path  # the download path; an up-to-date pull does not come here

        partial_path = Path(partial_path)
        return self._fallback(lambda ep: self._fetch_from(ep, digest, size, partial_path, on_progress))

    def _fetch_from(self, ep: _Endpoint, digest: str, size: int, partial: Path,
                    on_progress: Callable[[int], None] | None) -> Path:
        failures = 0
        while True:
            hasher, have = hash_prefix(partial, digest)
            if have > size or (have == size and hasher.hexdigest() != digest.partition(":")[2]):
                discard(partial)
                hasher, have = new_hasher(digest), 0
            if have == size and size > 0:
                if on_progress is not None:
                    on_progress(have)
                return partial
            resp = self._open(ep, digest, have)
            if resp.status == 206 and not (resp.header("Content-Range") or "").startswith(
                    f"bytes {have}-"):
                resp.close()
                discard(partial)
                continue
            if resp.status == 200 and have:  # Range ignored: start over, in a new file (an
                discard(partial)              # extraction following the old one sees it go)
                hasher, have = new_hasher(digest), 0
            partial.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(partial, "ab" if have else "wb", buffering=0) as out:
                    if on_progress is not None and have:
                        on_progress(have)
                    reader = VerifyingReader(resp, digest, size, have, hasher)
                    copy_verified(reader, out, on_progress)
                    finish_file(out)
                return partial
            except DigestMismatch as e:
                discard(partial)
                raise DigestMismatch(f"{e.message} (pulling {self.name})", digest) from None
            except ConnectionFailed as e:
                failures += 1
                if failures >= max(self._retries, 1):
                    raise self._unreachable(ep.host, e) from None
                time.sleep(self._backoff * 2 ** (failures - 1))  # then resume with a Range

    def blob_exists(self, digest: str) -> int | None:
        def op(ep: _Endpoint) -> int:
            resp = self._call(ep, "HEAD", self._path("blobs", digest))
            if resp.status != 200:
                raise self._fail(resp, self._blob_what(digest))
            return int(resp.header("Content-Length") or 0)
        try:
            return self._fallback(op)
        except NotFound:
            return None

    # --- login ---------------------------------------------------------------------------------
    def ping(self) -> None:
        """Check the registry answers the API and accepts our credentials (if any)."""
        self.check_login()

    def check_login(self) -> None:
        ep = self._origin
        self._ensure(ep)
        cred = self.auth.credentials(ep.host)
        try:
            resp = self._call(ep, "GET", "/v2/", scopes=())
        except Unauthorized as e:
            raise Unauthorized(f"login to {ep.host} failed: {_after_host(str(e), ep.host)}") from None
        if resp.status == 401:
            detail = "incorrect username or password" if cred else "authentication required"
            raise Unauthorized(f"login to {ep.host} failed: unauthorized: {detail}")
        if resp.status != 200:
            raise self._fail(resp, f"registry {ep.host}")


def _after_host(msg: str, host: str) -> str:
    prefix = f"{host}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg
