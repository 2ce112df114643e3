"""The HTTP/1.1 server behind `dockyard serve`: unix/TCP(+TLS) listeners, a thread per
connection, keep-alive, chunked streams and hijacked connections (attach, exec).

The engine is synchronous and a connection may be held for hours (logs -f, attach), so this
is stdlib `socketserver` with daemon threads rather than an event loop. Stopping the server
never touches containers: their shims own them.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import socketserver
import ssl
import sys
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from . import router
from .bodies import ChunkedReader, LengthReader
from .router import Empty, HTTPError, Hijack, Json, Raw, Request, Stream

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

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # a response's headers and body leave in one write (flushed per response)
    server_version = SERVER_HEADER
    sys_version = ""
    server: "_Base"

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

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", SERVER_HEADER)
        self.send_header("Date", self.date_time_string())


# ---- servers ---------------------------------------------------------------------------------

class _Base(socketserver.ThreadingMixIn):
    daemon_threads = True
    block_on_close = False
    engine: Any = None
    debug = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return  # a client that went away or failed its TLS handshake
        sys.stderr.write(f"api: connection failed:\n{traceback.format_exc()}")


class _UnixServer(_Base, socketserver.UnixStreamServer):
    def get_request(self) -> tuple[socket.socket, Any]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class _TCPServer(_Base, socketserver.TCPServer):
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


def _unix_socket(path: str, mode: int, gid: int | None) -> socket.socket:
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            probe.close()
            raise OSError(f"{path}: another server is listening on this socket")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, mode)
    s.listen(128)
    return s


class Server:
    """All listeners of one `dockyard serve`; `serve_forever` until `shutdown`."""

    def __init__(self, engine: Any, listeners: list[Listener], debug: bool = False) -> None:
        router.load_handlers()
        self.engine = engine
        self._servers: list[_Base] = []
        self._unix_paths: list[str] = []
        for lst in listeners:
            srv: _Base
            if lst.kind == "unix":
                srv = _UnixServer(lst.address, _Handler, bind_and_activate=False)
                srv.socket.close()
                srv.socket = _unix_socket(lst.address, lst.mode, lst.gid)
                self._unix_paths.append(lst.address)
            elif lst.kind == "fd":  # socket activation: systemd bound and listens already
                inherited = socket.socket(fileno=lst.fd)
                if inherited.family == socket.AF_UNIX:
                    srv = _UnixServer("", _Handler, bind_and_activate=False)
                else:
                    srv = _TCPServer(("", 0), _Handler, bind_and_activate=False)
                srv.socket.close()
                srv.socket = inherited
            else:
                srv = _TCPServer((lst.address, lst.port), _Handler)
                srv.tls = lst.tls
            srv.engine = engine
            srv.debug = debug
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
