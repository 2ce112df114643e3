"""The HTTP/1.1 server behind `dockyard serve`: unix/TCP(+TLS) listeners, a thread per
connection (threads that wait in accept() and are reused), keep-alive, chunked streams and
hijacked connections (attach, exec).

The engine is synchronous and a connection may be held for hours (logs -f, attach), so this
is stdlib `socketserver` with daemon threads rather than an event loop. Stopping the server
never touches containers: their shims own them. Here: the connection handler (HTTP/1.1
parsing, dispatch, responses) and `Server`, which puts it on the listeners; binding and the
accepting threads are `acceptor`'s.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import ssl
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from .._record import dataclass
from .. import __version__
from . import router
from .acceptor import AcceptingServer, TCPServer, UnixServer, unix_socket
from .bodies import ChunkedReader, LengthReader
from .router import Empty, HTTPError, Hijack, Json, Raw, Request, Stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

SERVER_HEADER = f"Dockyard/{__version__} (linux)"


@dataclass(frozen=True)
class Listener:
    """One address to serve: `unix:///path` or `tcp://host:port`, or an inherited fd."""

    kind: str  # "unix" | "tcp" | "fd"
    address: str = ""
    port: int = 0
    fd: int = -1
    mode: int = 0o660
    gid: int | None = None
    tls: ssl.SSLContext | None = None


# ---- the connection handler -----------------------------------------------------------------

class _Headers(dict):  # type: ignore[type-arg]
    """Request headers by lower-case name; `get` takes any case (as email.message does)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> Any:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: a request line too broken to name its version still gets a status line back
    default_request_version = "HTTP/1.0"
    wbufsize = 1 << 16  # a response's headers and body leave in one write (flushed per response)
    server_version = SERVER_HEADER
    sys_version = ""
    server: "AcceptingServer"

    def address_string(self) -> str:
        return str(self.client_address[0]) if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.debug:
            sys.stderr.write(f"api: {self.address_string()} {format % args}\n")

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:  # the client left with a response unsent: nothing to tell it
            pass

    def parse_request(self) -> bool:
        """BaseHTTPRequestHandler's, with the headers read here rather than by the email
        package (which took a third of a small request's time). An unusual request line
        (HTTP/0.9, 2.0, malformed) goes to the stdlib's parser and its error responses."""
        words = self.raw_requestline.split()
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return super().parse_request()
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = line
        command, path, version = line.split()
        self.command, self.request_version = command, version
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        headers = _Headers()
        last = ""
        lines = 0
        while True:
            raw = self.rfile.readline(65537)
            if len(raw) > 65536:
                self.send_error(431, "Line too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            lines += 1
            if lines > 100:  # http.client's limit
                self.send_error(431, "Too many headers")
                return False
            text = raw.decode("iso-8859-1")
            if text[0] in " \t" and last:  # an obsolete folded continuation line
                headers[last] += " " + text.strip()
                continue
            name, sep, value = text.partition(":")
            if sep:
                last = name.strip().lower()
                headers[last] = value.strip()
        self.headers = headers  # type: ignore[assignment]
        conntype = headers.get("connection", "").lower()
        self.close_connection = version != "HTTP/1.1"
        if conntype == "close":
            self.close_connection = True
        elif conntype == "keep-alive":
            self.close_connection = False
        if headers.get("expect", "").lower() == "100-continue" and version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (OSError, ssl.SSLError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        try:
            self._serve()
        except (BrokenPipeError, ConnectionError, ssl.SSLError):
            self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    # -- dispatch

    def _serve(self) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        body_reader = self._body_reader(headers)
        try:
            version, path = router.split_version(split.path)
            route, params = router.match(self.command, path)
            req = Request(method=self.command, path=path, params=params,
                          query=parse_qs(split.query, keep_blank_values=True), headers=headers,
                          api_version=version, engine=self.server.engine)
            if route.stream_body:
                req.rfile = body_reader  # type: ignore[assignment]
            else:
                req.body = body_reader.read() if body_reader is not None else b""
            resp = route.handler(req)
        except BaseException as e:  # noqa: B902 - every failure becomes a response
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            self._drain(body_reader)
            self._send_error(e)
            return
        self._drain(body_reader)
        self._send(resp, headers)

    def _body_reader(self, headers: dict[str, str]) -> BinaryIO | None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return io.BufferedReader(ChunkedReader(self.rfile))  # type: ignore[arg-type]
        length = int(headers.get("content-length") or 0)
        if length > 0:
            return io.BufferedReader(LengthReader(self.rfile, length))  # type: ignore[arg-type]
        return None

    def _drain(self, reader: BinaryIO | None) -> None:
        """Read what the handler left of the body, so the next request starts in place."""
        if reader is None:
            return
        try:
            while reader.read(1 << 16):
                pass
        except (OSError, ValueError):
            self.close_connection = True

    # -- responses

    def _common(self) -> None:
        self.send_header("Api-Version", router.API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")

    def _send_error(self, e: BaseException) -> None:
        status = router.status_for(e)
        message = getattr(e, "message", None) or str(e) or type(e).__name__
        if status is None:
            status = 500
            sys.stderr.write(f"api: {self.command} {self.path}: internal error:\n{traceback.format_exc()}")
        if status == 304:
            self._send(Empty(304), {})
            return
        self._send(Raw(router.error_body(message), "application/json", status), {})

    def _start(self, status: int, content_type: str | None, extra: router.Headers,
               length: int | None) -> None:
        self.send_response(status)
        self._common()
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", str(length))

    def _send(self, resp: router.Response, req_headers: dict[str, str]) -> None:
        if isinstance(resp, Json):
            data = json.dumps(resp.obj).encode() + b"\n"
            self._start(resp.status, "application/json", resp.headers, len(data))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        elif isinstance(resp, Empty):
            self._start(resp.status, None, resp.headers, 0 if resp.status not in (204, 304) else None)
            self.end_headers()
        elif isinstance(resp, Raw):
            self._start(resp.status, resp.content_type, resp.headers, len(resp.data))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.data)
        elif isinstance(resp, Stream):
            self._stream(resp)
        elif isinstance(resp, Hijack):
            self._hijack(resp, req_headers)
        else:  # a handler bug
            raise TypeError(f"handler returned {resp!r}")

    def _stream(self, resp: Stream) -> None:
        if self.command == "HEAD":
            self._start(resp.status, resp.content_type, resp.headers, None)
            self.end_headers()
            close = getattr(resp.chunks, "close", None)
            if close:
                close()
            return
        self._start(resp.status, resp.content_type, resp.headers, None)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        chunks = resp.chunks
        try:
            for chunk in chunks:
                if not chunk:  # a tick: is the client still there?
                    if self._client_gone():
                        self.close_connection = True
                        return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception:  # headers are out: log it, end the connection
            sys.stderr.write(f"api: {self.command} {self.path}: stream failed:\n{traceback.format_exc()}")
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    def _client_gone(self) -> bool:
        sock = self.connection
        try:
            r, _, _ = select.select([sock], [], [], 0)
            if not r:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _hijack(self, resp: Hijack, req_headers: dict[str, str]) -> None:
        try:
            self._hijack_headers(resp, req_headers)
        except BaseException:
            if resp.abort is not None:
                resp.abort()
            raise
        self.close_connection = True
        sock = self.connection
        pending = b""
        try:
            sock.setblocking(False)
            pending = self.rfile.read1(1 << 16) or b""  # type: ignore[attr-defined]
        except (BlockingIOError, ssl.SSLWantReadError, OSError, TypeError):
            pass
        finally:
            sock.setblocking(True)
        try:
            resp.run(sock, io.BytesIO(pending))
        except (BrokenPipeError, ConnectionError):
            pass
        except Exception:
            sys.stderr.write(f"api: {self.command} {self.path}: hijacked stream failed:\n{traceback.format_exc()}")

    def _hijack_headers(self, resp: Hijack, req_headers: dict[str, str]) -> None:
        upgrade = resp.upgrade and req_headers.get("upgrade", "").lower() == "tcp"
        if resp.status:
            upgrade = False
            self.send_response_only(resp.status, resp.reason or None)
        elif upgrade:
            self.send_response_only(101, "UPGRADED")
        else:
            self.send_response_only(200, "OK")
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        self._common()
        self.send_header("Server", SERVER_HEADER)
        if upgrade:
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "tcp")
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib parser's errors (bad request line, huge headers) as Docker's JSON."""
        self.close_connection = True
        body = router.error_body(message or HTTPStatus(code).phrase)
        self.send_response(code)
        self._common()
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", SERVER_HEADER)
        self.send_header("Date", self.date_time_string())


class Server:
    """All listeners of one `dockyard serve`; `serve_forever` until `shutdown`."""

    def __init__(self, engine: Any, listeners: list[Listener], debug: bool = False) -> None:
        router.load_handlers()
        from ..engine import query

        query.watch_records()  # listings follow record changes by inotify rather than stat
        self.engine = engine
        self._servers: list[AcceptingServer] = []
        self._unix_paths: list[str] = []
        for lst in listeners:
            srv: AcceptingServer
            if lst.kind == "unix":
                srv = UnixServer(lst.address, _Handler, bind_and_activate=False)
                srv.socket.close()
                srv.socket = unix_socket(lst.address, lst.mode, lst.gid)
                self._unix_paths.append(lst.address)
            elif lst.kind == "fd":  # socket activation: systemd bound and listens already
                inherited = socket.socket(fileno=lst.fd)
                if inherited.family == socket.AF_UNIX:
                    srv = UnixServer("", _Handler, bind_and_activate=False)
                else:
                    srv = TCPServer(("", 0), _Handler, bind_and_activate=False)
                srv.socket.close()
                srv.socket = inherited
            else:
                srv = TCPServer((lst.address, lst.port), _Handler)
                srv.tls = lst.tls
            srv.engine = engine
            srv.debug = debug
            srv.prepare()
            self._servers.append(srv)
        self._threads: list[threading.Thread] = []

    def serve_forever(self) -> None:
        for srv in self._servers[1:]:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            self._threads.append(t)
        if self._servers:
            self._servers[0].serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop accepting (from another thread or a signal handler's thread)."""
        for srv in self._servers:
            threading.Thread(target=srv.shutdown, daemon=True).start()

    def close(self) -> None:
        for srv in self._servers:
            try:
                srv.server_close()
            except OSError:
                pass
        for path in self._unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def ping_headers() -> router.Headers:
    return (("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"))


__all__ = ["Listener", "Server", "HTTPError", "ping_headers", "SERVER_HEADER"]
