"""`Session`: how `RegistryClient` reaches a registry: endpoints (mirrors, then the origin),
their scheme, authentication, and failures mapped to `dockyard.errors`' kinds.

The origin is reached by https, or plain http only when the host is insecure (loopback always
is). No ping when the scheme is certain (https only, a mirror's URL) or remembered (the
scheme an insecure origin answered on last time, kept in `hints_dir`): the first request's
401, if any, brings the auth challenge, and a first request that fails on a remembered scheme
pings both schemes and goes again. Every answer goes through the authenticator (Basic, or
Bearer tokens per scope).
"""

from __future__ import annotations

import os

from ..images.refs import Reference
from .auth import Credentials
from .config import RegistryConfig, canonical_registry, origin_host
from .errors import RegistryUnavailable, error_for_status
from .proxy import ProxySettings
from .tokens import Authenticator
from .transport import ConnectionFailed, Response, TLSSettings, Transport, has_certs_dir
from .urls import netloc as url_netloc
from .urls import quote
from .urls import scheme as url_scheme

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from ..errors import DockyardError


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


class Session:
    """A registry session for `ref_domain/repository`; thread-safe."""

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

    def __enter__(self) -> "Session":
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

    def _call_many(self, ep: _Endpoint, method: str, paths: list[str], headers: dict[str, str],
                   connections: int = 3) -> list[Response]:
        """`_call` for bodiless requests, pipelined on up to `connections` connections
        (`Transport.pipeline`); a 401 among the answers renews the token (or learns the
        challenge) once, and they all go again."""
        base = self._ensure(ep)
        renewed = False
        while True:
            guessed = ep.guessed
            hdrs = dict(self.auth.headers(ep.host, self.scopes, refresh=renewed))
            hdrs.update(headers)
            resps: list[Response] | None
            try:
                resps = self.transport.pipeline(method, [base + p for p in paths], hdrs,
                                                retry_refused=not guessed, connections=connections)
            except ConnectionFailed as e:
                if not (guessed and self._may_switch(ep)):
                    raise self._unreachable(ep.host, e) from None
                resps = None
            if guessed and (resps is None or any(r.status == 400 for r in resps)) \
                    and self._may_switch(ep):
                base = self._probe(ep)
                continue
            assert resps is not None
            denied = [r for r in resps if r.status == 401]
            if guessed:
                ep.guessed = False
                if not denied and not self.auth.known(ep.host):
                    self.auth.learn(ep.host, None)
            if denied and not renewed:
                self.auth.learn(ep.host, denied[0].header("WWW-Authenticate"))
                renewed = True
                continue
            return resps

    def _fail(self, resp: Response, what: str) -> DockyardError:
        return error_for_status(resp.status, resp.body, what, self.name)


def _hint_name(host: str) -> str:
    return "scheme-" + quote(host, safe="")
