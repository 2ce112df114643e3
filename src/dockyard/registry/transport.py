"""HTTP transport for registries: keep-alive connection pools per host, TLS with certs.d,
redirects, and retries with backoff on 5xx and broken connections (never on 4xx).

Built on `http11` (a small HTTP/1.1 client) over sockets; `ssl` is imported only when a
registry is reached by https. A `Response` either holds its whole body (`.body`) or, for
`stream=True`, is a readable stream whose connection returns to the pool once fully read.
"""

from __future__ import annotations

import io
import os
import sys
import time
from _socket import gaierror
from _thread import allocate_lock  # threading.Lock without importing threading

from . import urls
from .config import split_host_port
from .errors import RegistryUnavailable
from .http11 import Connection, Headers, IncompleteRead, RawResponse, RemoteDisconnected

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Iterable, Mapping

    from .proxy import Proxy

    Body = bytes | BinaryIO | None


USER_AGENT = "dockyard/0.1 (registry client)"
READ_TIMEOUT = 60.0
BLOCK = 1 << 20


class ConnectionFailed(RegistryUnavailable):
    """Low-level failure: refused, reset, TLS, timeout. `.tls` tells a TLS handshake failure.
    A RegistryUnavailable, so a stream from `open_blob` that breaks raises a taxonomy kind."""

    def __init__(self, url: str, cause: BaseException, tls: bool = False) -> None:
        super().__init__(f"{url}: {describe_oserror(cause)}")
        self.url = url
        self.cause = cause
        self.tls = tls


def is_tls_error(e: BaseException) -> bool:
    """An ssl.SSLError (without importing ssl: no TLS was attempted if it is not loaded)."""
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(e, ssl.SSLError)


def describe_oserror(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if is_tls_error(e):
        ssl: Any = sys.modules["ssl"]
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"tls: certificate verify failed: {e.verify_message or e.reason}"
        return f"tls: {e.reason or e}"
    if isinstance(e, TimeoutError):
        return "i/o timeout"
    if isinstance(e, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(e, RemoteDisconnected):
        return "server closed the connection"
    if isinstance(e, IncompleteRead):
        return str(e)
    if isinstance(e, gaierror):
        return f"no such host ({e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__


class TLSSettings:
    __slots__ = ("verify", "certs_dirs")

    def __init__(self, verify: bool = True, certs_dirs: tuple[str, ...] = ()) -> None:
        self.verify = verify
        self.certs_dirs = certs_dirs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TLSSettings) and (self.verify, self.certs_dirs) == (
            other.verify, other.certs_dirs)

    def __repr__(self) -> str:
        return f"TLSSettings(verify={self.verify!r}, certs_dirs={self.certs_dirs!r})"


class Response:
    """An HTTP response. Headers are case-insensitive through `header()`."""

    def __init__(self, url: str, status: int, headers: Headers,
                 raw: RawResponse | None, body: bytes | None,
                 release: Callable[[bool], None] | None = None) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self._raw = raw
        self._body = body
        self._release = release

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = self.read()
        return self._body

    # --- streaming -----------------------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        if self._raw is None:
            data, self._body = (self._body or b""), b""
            if n >= 0:
                data, self._body = data[:n], data[n:]
            return data
        try:
            data = self._raw.read() if n < 0 else self._raw.read(n)
        except OSError as e:
            self.close()
            raise ConnectionFailed(self.url, e) from e
        if self._raw.isclosed():
            self._finish(reuse=True)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def _finish(self, reuse: bool) -> None:
        release, self._release, self._raw = self._release, None, None
        if release is not None:
            release(reuse)

    def close(self) -> None:
        self._finish(reuse=False)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Connection pools (per scheme/host/port) shared by all threads of one client."""

    def __init__(self, tls_for: Callable[[str], TLSSettings],
                 retries: int = 4, backoff: float = 0.25, timeout: float = READ_TIMEOUT,
                 proxy_for: Callable[[str, str], Proxy | None] | None = None) -> None:
        self._tls_for = tls_for
        self._proxy_for = proxy_for
        self._contexts: dict[str, Any] = {}
        self._idle: dict[tuple[str, str], list[Connection]] = {}
        self._lock = allocate_lock()
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout

    # --- connections ----------------------------------------------------------------------
    def _context(self, netloc: str) -> Any:
        with self._lock:
            ctx = self._contexts.get(netloc)
        if ctx is not None:
            return ctx
        import ssl

        settings = self._tls_for(netloc)
        if settings.verify:
            ctx = ssl.create_default_context()
        else:  # no verification: no need to load the system's CA store (tens of ms)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for d in settings.certs_dirs:
            _load_certs_dir(ctx, os.path.join(d, netloc))
        with self._lock:
            self._contexts[netloc] = ctx
        return ctx

    def _get_conn(self, scheme: str, netloc: str) -> tuple[Connection, bool]:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop(), True
        proxy = self._proxy_for(scheme, netloc) if self._proxy_for else None
        host, port = split_host_port(netloc)
        port = port or (443 if scheme == "https" else 80)
        if proxy is not None:
            via_host, via_port = split_host_port(proxy.netloc)
            via = (via_host, via_port or 80)
        else:
            via = (host, port)
        if scheme == "https":
            tunnel = None
            if proxy is not None:  # CONNECT tunnel; TLS (and SNI) with the registry itself
                tunnel = (host, port, {"Proxy-Authorization": proxy.authorization}
                          if proxy.authorization else {})
            return Connection(via[0], via[1], self.timeout, tls=self._context(netloc),
                              server_hostname=host, tunnel=tunnel), False
        return Connection(via[0], via[1], self.timeout), False

    def _absolute_form(self, scheme: str, netloc: str) -> Proxy | None:
        """The proxy that plain http requests to `netloc` go to in absolute form, if any."""
        if scheme != "http" or self._proxy_for is None:
            return None
        return self._proxy_for(scheme, netloc)

    def _put_conn(self, scheme: str, netloc: str, conn: Connection) -> None:
        with self._lock:
            pool = self._idle.setdefault((scheme, netloc), [])
            if len(pool) < 16:
                pool.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            pools, self._idle = self._idle, {}
        for conns in pools.values():
            for c in conns:
                c.close()

    # --- one exchange ---------------------------------------------------------------------
    def _prepare(self, url: str, headers: Mapping[str, str]) -> tuple[str, str, str, dict[str, str]]:
        """(scheme, netloc, request target, headers) of a request to `url`."""
        scheme, netloc, path = urls.split(url)
        hdrs = {"Host": netloc, "User-Agent": USER_AGENT, **headers}
        proxy = self._absolute_form(scheme, netloc)
        if proxy is not None:
            path = f"http://{netloc}{path}"
            if proxy.authorization:
                hdrs["Proxy-Authorization"] = proxy.authorization
        return scheme, netloc, path, hdrs

    def pipeline(self, method: str, targets: list[str], headers: Mapping[str, str],
                 retry_refused: bool = True, connections: int = 3) -> list[Response]:
        """Bodiless requests to one origin (`targets`: URLs), pipelined: dealt in turn to up
        to `connections` connections, all sent before any answer is read (one round trip for
        many HEADs; a server that answers each connection's requests one after the other
        still works on the connections at once). Answers come back in the targets' order.
        Those left unanswered (the server closed a connection, or it broke) and 5xx answers
        go again through `request`, with its retries; redirects are not followed (HEAD/GET
        of a registry's blobs and manifests answer without)."""
        got: dict[int, Response] = {}
        if len(targets) > 1:
            prepared = [self._prepare(u, headers) for u in targets]
            scheme, netloc = prepared[0][0], prepared[0][1]
            groups = [list(range(len(targets)))[k::max(connections, 1)]
                      for k in range(min(max(connections, 1), len(targets)))]
            sent: list[tuple[list[int], Connection]] = []
            for group in groups:
                conn, _reused = self._get_conn(scheme, netloc)
                try:
                    conn.send_pipelined([(method, prepared[i][2], prepared[i][3]) for i in group])
                except OSError:
                    conn.close()
                    continue
                sent.append((group, conn))
            for group, conn in sent:
                raws: list[RawResponse] = []
                try:
                    raws = conn.read_pipelined([method] * len(group))
                except OSError:
                    conn.close()
                else:
                    if len(raws) == len(group) and not raws[-1].will_close:
                        self._put_conn(scheme, netloc, conn)
                    else:
                        conn.close()
                for i, raw in zip(group, raws):
                    if raw.status >= 500:
                        break
                    got[i] = Response(targets[i], raw.status, raw.headers, None, raw.read())
        return [got[i] if i in got else self.request(method, url, headers, follow=False,
                                                     retry_refused=retry_refused)
                for i, url in enumerate(targets)]

    def send(self, method: str, url: str, headers: Mapping[str, str], body: Body = None,
             stream: bool = False) -> Response:
        """One request on a pooled connection (a stale kept-alive one is retried once)."""
        scheme, netloc, path, hdrs = self._prepare(url, headers)
        if body is None and method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", "0")
        elif isinstance(body, bytes):
            hdrs["Content-Length"] = str(len(body))
        start = _tell(body)
        for attempt in (0, 1):
            conn, reused = self._get_conn(scheme, netloc)
            try:
                raw = conn.request(method, path, hdrs, body)
            except OSError as e:
                conn.close()
                stale = reused and attempt == 0 and isinstance(
                    e, (RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                if stale and (body is None or isinstance(body, bytes) or body.seekable()):
                    if body is not None and not isinstance(body, bytes):
                        body.seek(start)
                    continue
                raise ConnectionFailed(url, e, tls=is_tls_error(e)) from e
            break

        def release(reuse: bool, conn: Connection = conn) -> None:
            if reuse and not raw.will_close:
                self._put_conn(scheme, netloc, conn)
            else:
                conn.close()

        if method == "HEAD":
            release(True)
            return Response(url, raw.status, raw.headers, None, b"")
        if stream and 200 <= raw.status < 300:
            return Response(url, raw.status, raw.headers, raw, None, release)
        try:
            data = raw.read()
        except OSError as e:
            release(False)
            raise ConnectionFailed(url, e) from e
        release(True)
        return Response(url, raw.status, raw.headers, None, data)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: Body = None, stream: bool = False, follow: bool = True,
                retry: bool = True, retry_refused: bool = True) -> Response:
        """`send` with redirects (GET/HEAD; Authorization dropped on a host change) and
        retries with exponential backoff on 5xx and connection errors (a refused connection
        only with `retry_refused`: a first contact fails at once on a closed port)."""
        hdrs = dict(headers or {})
        attempts = self.retries if retry else 1
        origin = urls.netloc(url)
        for attempt in range(attempts):
            try:
                cur = url
                cur_hdrs = hdrs
                for _hop in range(10):
                    resp = self.send(method, cur, cur_hdrs, body, stream)
                    loc = resp.header("Location")
                    if not (follow and resp.status in (301, 302, 303, 307, 308) and loc
                            and method in ("GET", "HEAD")):
                        break
                    resp.close()
                    cur = urls.join(cur, loc)
                    if urls.netloc(cur) != origin:
                        cur_hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                else:
                    raise RegistryUnavailable(f"{url}: too many redirects")
            except ConnectionFailed as e:
                if e.tls or is_tls_error(e.cause) or attempt + 1 >= attempts \
                        or not _rewindable(body) \
                        or (not retry_refused and isinstance(e.cause, ConnectionRefusedError)):
                    raise
                self._sleep(attempt)
                _rewind(body)
                continue
            if resp.status >= 500 and attempt + 1 < attempts and _rewindable(body):
                resp.close()
                self._sleep(attempt)
                _rewind(body)
                continue
            return resp
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2 ** attempt))


def _tell(body: Body) -> int:
    if body is None or isinstance(body, bytes):
        return 0
    try:
        return body.tell()
    except (OSError, AttributeError, ValueError):
        return 0


def _rewindable(body: Body) -> bool:
    return body is None or isinstance(body, bytes) or (hasattr(body, "seekable") and body.seekable())


def _rewind(body: Body) -> None:
    if body is not None and not isinstance(body, bytes):
        body.seek(0)


def _load_certs_dir(ctx: Any, d: str) -> None:
    """Docker's certs.d convention: *.crt are CA roots, *.cert + *.key client pairs."""
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return
    for name in names:
        p = os.path.join(d, name)
        if name.endswith(".crt"):
            ctx.load_verify_locations(cafile=p)
        elif name.endswith(".cert"):
            key = os.path.join(d, name[: -len(".cert")] + ".key")
            ctx.load_cert_chain(p, key if os.path.exists(key) else None)


def has_certs_dir(certs_dirs: Iterable[str], netloc: str) -> bool:
    return any(os.path.isdir(os.path.join(d, netloc)) for d in certs_dirs)


def read_limited(resp: Response, limit: int) -> bytes:
    buf = io.BytesIO()
    while True:
        chunk = resp.read(min(BLOCK, limit + 1 - buf.tell()))
        if not chunk:
            break
        buf.write(chunk)
        if buf.tell() > limit:
            resp.close()
            break
    return buf.getvalue()
