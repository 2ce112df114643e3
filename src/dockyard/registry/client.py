"""`RegistryClient`: one repository on one registry, over the OCI distribution API.

Pulls try the configured mirrors first and fall back to the origin; the origin is reached by
https, or plain http only when the host is insecure (loopback always is). Every answer goes
through the authenticator (Basic, or Bearer tokens per scope) and every failure becomes one
of `dockyard.errors`' kinds with a one-line message naming the registry, repository or digest.
"""

from __future__ import annotations

import os
import time

from ..errors import DockyardError, InvalidArgument, NotFound, Unauthorized
from ..images.refs import Reference
from .auth import Credentials
from .blobs import VerifyingReader, copy_verified, discard, finish_file, hash_prefix, new_hasher
from .config import RegistryConfig, canonical_registry, origin_host
from .errors import DigestMismatch, RegistryUnavailable, describe, error_for_status
from .manifest import (ALL_MANIFEST_TYPES, IMAGE_TYPES, MAX_MANIFEST_SIZE, Descriptor, ImageManifest,
                       Manifest, Platform, check_supported, choose_platform, detect_media_type,
                       host_platform, parse_image_manifest, parse_index, sha256_digest,
                       verified_manifest)
from .proxy import ProxySettings
from .tokens import Authenticator
from .transport import (ConnectionFailed, Response, TLSSettings, Transport, has_certs_dir,
                        read_limited)
from .uploads import UploadMixin
from .urls import quote
from .urls import scheme as url_scheme
from .urls import netloc as url_netloc

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


#: host → the scheme an insecure origin answered on last time (tried first next time)
_SCHEME_HINTS: dict[str, str] = {}


class _Endpoint:
    __slots__ = ("base", "host", "mirror", "dead", "guessed")

    def __init__(self, base: str | None, host: str, mirror: bool) -> None:
        self.base = base  # scheme://host[/prefix]; None until the origin's scheme is known
        self.host = host
        self.mirror = mirror
        self.dead = False
        #: `base` is used without a ping (its scheme is known or remembered) and no answer
        #: has come from it yet: a failure of the first request pings it and tries again
        self.guessed = False


class RegistryClient(UploadMixin):
    """A client for `ref_domain/repository`; thread-safe for parallel blob transfers."""

    def __init__(self, ref_domain: str, repository: str, config: RegistryConfig,
                 creds: Credentials | None, actions: str = "pull", *, retries: int = 4,
                 backoff: float = 0.25, timeout: float = 60.0, hints_dir: str | None = None) -> None:
        self.domain = canonical_registry(ref_domain)
        self.repository = repository
        # the name as Docker shows it: `busybox`, `me/app`, `localhost:5000/x`
        self.name = Reference(self.domain, repository).familiar_name()
        self.config = config
        self.actions = actions
        self.host = origin_host(ref_domain)
        proxies = ProxySettings.resolve(config)
        self.transport = Transport(self._tls_for, retries, backoff, timeout,
                                   proxies.proxy_for if proxies.http or proxies.https else None)
        self.auth = Authenticator(self.transport, creds)
        self.scopes: tuple[str, ...] = (f"repository:{repository}:{actions}",)
        mirrors = config.mirrors_for(self.domain) if actions == "pull" else ()
        self._endpoints = [_Endpoint(m, url_netloc(m), True) for m in mirrors]
        self._origin = _Endpoint(None, self.host, False)
        self._endpoints.append(self._origin)
        self._retries = retries
        self._backoff = backoff
        self._hints_dir = hints_dir

    # --- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tls_for(self, netloc: str) -> TLSSettings:
        verify = not self.config.is_insecure(netloc) or has_certs_dir(self.config.certs_dirs, netloc)
        return TLSSettings(verify=verify, certs_dirs=self.config.certs_dirs)

    def _unreachable(self, host: str, e: ConnectionFailed) -> RegistryUnavailable:
        msg = f"cannot reach registry {host}: {e}"
        if e.tls:
            msg += (f"; if the registry uses its own CA, put it in "
                    f"{self.config.certs_dirs[0]}/{host}/ca.crt (or list {host} in "
                    f"insecure-registries)")
        return RegistryUnavailable(msg)

    def _ping(self, ep: _Endpoint, base: str) -> Response:
        return self.transport.request("GET", base + "/v2/", {}, retry_refused=False)

    def _ensure(self, ep: _Endpoint) -> str:
        """The endpoint's base URL. When its scheme is certain (a mirror's URL, an origin
        reached by https only) or remembered (an insecure origin's hint), no ping: the first
        request's 401, if any, brings the auth challenge (Docker pings first, one round trip
        more). Otherwise it is pinged once, to learn its auth challenge and, for an insecure
        origin, whether it speaks https or plain http."""
        if ep.base is not None and (ep.guessed or self.auth.known(ep.host)):
            return ep.base
        if ep.base is not None or not self.config.is_insecure(ep.host):
            ep.base = ep.base or f"https://{ep.host}"
            ep.guessed = True
            return ep.base
        hint = self._scheme_hint(ep.host)
        if hint in ("http", "https"):
            ep.base = f"{hint}://{ep.host}"
            ep.guessed = True
            return ep.base
        return self._probe(ep)

    def _may_switch(self, ep: _Endpoint) -> bool:
        """Whether the endpoint may answer on another scheme than the one used (an insecure
        origin: its remembered scheme may be stale)."""
        return not ep.mirror and self.config.is_insecure(ep.host)

    def _probe(self, ep: _Endpoint) -> str:
        """Ping the endpoint (both schemes for an insecure origin, the remembered one first)."""
        ep.guessed = False
        if not ep.mirror:
            ep.base = None
        candidates = [ep.base] if ep.base else [f"https://{ep.host}"]
        if ep.base is None and self.config.is_insecure(ep.host):
            candidates.append(f"http://{ep.host}")
            if self._scheme_hint(ep.host) == "http":
                candidates.reverse()
        first_error: ConnectionFailed | None = None
        bad: Response | None = None
        for base in candidates:
            try:
                resp = self._ping(ep, base)
            except ConnectionFailed as e:
                first_error = first_error or e
                continue
            if resp.status == 400 and len(candidates) > 1:
                bad = bad or resp  # e.g. plain http to a TLS server: try the other scheme
                continue
            if resp.status >= 500:
                raise error_for_status(resp.status, resp.body, f"registry {ep.host}", self.name)
            self.auth.learn(ep.host, resp.header("WWW-Authenticate") if resp.status == 401 else None)
            ep.base = base
            if not ep.mirror and len(candidates) > 1:
                self._keep_scheme_hint(ep.host, url_scheme(base))
            return base
        if first_error is not None:
            raise self._unreachable(ep.host, first_error)
        assert bad is not None
        raise error_for_status(bad.status, bad.body, f"registry {ep.host}", self.name)

    def _scheme_hint(self, host: str) -> str | None:
        """The scheme an insecure origin answered on last time: in this process, else in
        `hints_dir` (kept by an earlier process, so a plain-http registry is not probed with
        a TLS handshake first on every command)."""
        got = _SCHEME_HINTS.get(host)
        if got is None and self._hints_dir:
            try:
                with open(os.path.join(self._hints_dir, _hint_name(host)), "rb") as f:
                    got = f.read(16).decode("ascii", "replace").strip()
            except OSError:
                return None
            _SCHEME_HINTS[host] = got
        return got

    def _keep_scheme_hint(self, host: str, scheme: str) -> None:
        old = self._scheme_hint(host)
        _SCHEME_HINTS[host] = scheme
        if old == scheme or not self._hints_dir:
            return
        try:
            os.makedirs(self._hints_dir, mode=0o700, exist_ok=True)
            path = os.path.join(self._hints_dir, _hint_name(host))
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(scheme + "\n")
            os.replace(tmp, path)
        except OSError:
            pass  # only a hint

    def _call(self, ep: _Endpoint, method: str, path: str, headers: dict[str, str] | None = None,
              body: bytes | BinaryIO | None = None, stream: bool = False,
              scopes: tuple[str, ...] | None = None, follow: bool = True) -> Response:
        """One authenticated request; a 401 renews the token (or learns the challenge) once."""
        base = self._ensure(ep)
        sc = scopes if scopes is not None else self.scopes
        seekable = body is not None and not isinstance(body, bytes) and body.seekable()
        start = body.tell() if seekable and body is not None and not isinstance(body, bytes) else 0
        rewindable = body is None or isinstance(body, bytes) or seekable
        renewed = False
        while True:
            url = path if path.startswith(("http://", "https://")) else \
                base + "/" + path.lstrip("/")
            guessed = ep.guessed
            hdrs = dict(self.auth.headers(ep.host, sc, refresh=renewed))
            hdrs.update(headers or {})
            try:
                resp = self.transport.request(method, url, hdrs, body, stream, follow,
                                              retry_refused=not guessed)
            except ConnectionFailed as e:
                if not (guessed and rewindable and self._may_switch(ep)):
                    raise self._unreachable(ep.host, e) from None
                resp = None
            if guessed and (resp is None or resp.status == 400) and self._may_switch(ep):
                if resp is not None:
                    resp.close()
                base = self._probe(ep)  # raises what a ping raised before
                if body is not None and not isinstance(body, bytes):
                    body.seek(start)
                continue
            assert resp is not None
            if guessed:
                ep.guessed = False
                if resp.status != 401 and not self.auth.known(ep.host):
                    self.auth.learn(ep.host, None)
            if resp.status == 401 and not renewed and rewindable:
                resp.close()
                self.auth.learn(ep.host, resp.header("WWW-Authenticate"))
                if body is not None and not isinstance(body, bytes):
                    body.seek(start)
                renewed = True
                continue
            return resp

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

    def _fail(self, resp: Response, what: str) -> DockyardError:
        return error_for_status(resp.status, resp.body, what, self.name)

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


def _hint_name(host: str) -> str:
    return "scheme-" + quote(host, safe="")


def _after_host(msg: str, host: str) -> str:
    prefix = f"{host}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg
