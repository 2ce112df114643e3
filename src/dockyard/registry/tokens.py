"""Registry authentication: WWW-Authenticate challenges, Basic, and the Bearer token flow.

A challenge `Bearer realm=…,service=…,scope=…` sends the client to `GET realm?service=&scope=`
(with Basic credentials when it has some) for a token; tokens are cached per
(realm, service, scopes) until shortly before they expire, and renewed after a 401.
"""

from __future__ import annotations

import time
from _thread import allocate_lock  # threading.Lock without importing threading

from .._record import dataclass, field
from ..errors import Unauthorized
from .auth import Credentials
from .errors import RegistryUnavailable
from .transport import ConnectionFailed, Transport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: Mapping[str, str] = field(default_factory=dict, hash=False)


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse RFC 7235 challenges: `Basic realm="r", Bearer realm="x",service="y"`."""
    out: list[Challenge] = []
    i, n = 0, len(header)
    scheme: str | None = None
    params: dict[str, str] = {}

    def token(j: int) -> tuple[str, int]:
        k = j
        while k < n and header[k] in _TCHAR:
            k += 1
        return header[j:k], k

    def skip(j: int, chars: str = " \t") -> int:
        while j < n and header[j] in chars:
            j += 1
        return j

    while i < n:
        i = skip(i, " \t,")
        if i >= n:
            break
        word, j = token(i)
        if not word:
            i += 1
            continue
        k = skip(j)
        if k < n and header[k] == "=" and scheme is not None:
            k = skip(k + 1)
            if k < n and header[k] == '"':
                k += 1
                buf = []
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    buf.append(header[k])
                    k += 1
                value, i = "".join(buf), k + 1
            else:
                value, i = token(k)
            params[word.lower()] = value
            continue
        if scheme is not None:
            out.append(Challenge(scheme, params))
        scheme, params, i = word.lower(), {}, j
    if scheme is not None:
        out.append(Challenge(scheme, params))
    return out


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    for want in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == want:
                return c
    return None


def basic_header(user: str, password: str) -> str:
    import base64  # here: only with credentials

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Authenticator:
    """Per-host challenges and a token cache; safe to share between threads."""

    def __init__(self, transport: Transport, creds: Credentials | None, skew: float = 10.0) -> None:
        self._transport = transport
        self._creds = creds
        self._challenges: dict[str, Challenge | None] = {}
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
        self._cred_cache: dict[str, tuple[str, str] | None] = {}
        self._lock = allocate_lock()
        self._fetch_lock = allocate_lock()  # one token request at a time: parallel blob
        self._skew = skew                    # downloads share the first one's token
        self.token_requests = 0

    def known(self, host: str) -> bool:
        with self._lock:
            return host in self._challenges

    def learn(self, host: str, www_authenticate: str | None) -> None:
        """Record what `host` asked for (None: no auth needed)."""
        ch = pick_challenge(parse_www_authenticate(www_authenticate)) if www_authenticate else None
        with self._lock:
            self._challenges[host] = ch

    def credentials(self, host: str) -> tuple[str, str] | None:
        """The user's credentials for `host`, looked up once (a helper is a subprocess)."""
        with self._lock:
            if host in self._cred_cache:
                return self._cred_cache[host]
        cred = self._creds.get(host) if self._creds is not None else None
        with self._lock:
            self._cred_cache[host] = cred
        return cred

    def headers(self, host: str, scopes: tuple[str, ...], refresh: bool = False) -> dict[str, str]:
        with self._lock:
            ch = self._challenges.get(host)
        if ch is None:
            return {}
        if ch.scheme == "basic":
            cred = self.credentials(host)
            return {"Authorization": basic_header(*cred)} if cred else {}
        return {"Authorization": "Bearer " + self.token(host, ch, scopes, refresh)}

    def token(self, host: str, ch: Challenge, scopes: tuple[str, ...], refresh: bool = False) -> str:
        realm = ch.params.get("realm", "")
        service = ch.params.get("service", "")
        key = (realm, service, tuple(sorted(set(scopes))))
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not refresh and cached[1] > time.monotonic():
            return cached[0]
        with self._fetch_lock:
            with self._lock:
                latest = self._tokens.get(key)
            if latest is not None and latest[1] > time.monotonic() and (
                    not refresh or latest != cached):
                return latest[0]  # another thread fetched it meanwhile
            return self._fetch(host, realm, service, key)

    def _fetch(self, host: str, realm: str, service: str,
               key: tuple[str, str, tuple[str, ...]]) -> str:
        now = time.monotonic()
        if not realm.startswith(("http://", "https://")):
            raise Unauthorized(f"{host}: unsupported auth challenge (realm {realm!r})")
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        query.extend(("scope", s) for s in key[2])
        cred = self.credentials(host)
        hdrs = {}
        if cred is not None:
            query.append(("account", cred[0]))
            hdrs["Authorization"] = basic_header(*cred)
        from urllib.parse import urlencode  # here: only for a token

        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        with self._lock:
            self.token_requests += 1
        try:
            resp = self._transport.request("GET", url, hdrs)
        except ConnectionFailed as e:
            raise RegistryUnavailable(f"token server for {host}: {e}") from None
        if resp.status in (401, 403):
            detail = _error_detail(resp.body) or "incorrect username or password"
            if cred is None:
                detail = _error_detail(resp.body) or "authentication required"
            raise Unauthorized(f"{host}: unauthorized: {detail}")
        if resp.status != 200:
            raise RegistryUnavailable(
                f"token server for {host} answered {resp.status}: {_error_detail(resp.body)}")
        import json

        try:
            doc = json.loads(resp.body)
            tok = str(doc.get("token") or doc.get("access_token") or "")
            ttl = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryUnavailable(f"token server for {host}: invalid answer") from None
        if not tok:
            raise RegistryUnavailable(f"token server for {host}: no token in the answer")
        with self._lock:
            self._tokens[key] = (tok, now + max(ttl - self._skew, 1.0))
        return tok


def _error_detail(body: bytes) -> str:
    """The message of a registry/token-server error document, if it has one."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()[:200]
    if isinstance(doc, dict):
        errs = doc.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return str(errs[0].get("message") or errs[0].get("code") or "")
        for k in ("details", "detail", "message", "error"):
            if doc.get(k):
                return str(doc[k])
    return ""
