"""The small HTTP/1.1 client (registry/http11.py) and the transport on it, against a scripted
server on a real loopback socket: Content-Length, chunked (with extensions and trailers),
read-to-close, 1xx skipped, keep-alive reuse, a stale kept-alive connection retried,
truncated bodies, chunked request bodies, redirects and HEAD."""

from __future__ import annotations

import io
import socket
import threading
from typing import Callable

import pytest

from dockyard.registry.http11 import Connection, IncompleteRead, ProtocolError
from dockyard.registry.transport import ConnectionFailed, TLSSettings, Transport

Handler = Callable[[bytes, bytes], bytes | None]  # (request head, request body) -> raw answer


class Server:
    """Accepts connections on 127.0.0.1; each request's raw answer comes from `handler`
    (None: close the connection without answering). Records requests and connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                body = b""
                low = head.lower()
                if b"content-length:" in low:
                    n = int(low.split(b"content-length:")[1].split(b"\r\n")[0])
                    body = f.read(n)
                elif b"transfer-encoding: chunked" in low:
                    while True:
                        size = int(f.readline().split(b";")[0], 16)
                        if size == 0:
                            f.readline()
                            break
                        body += f.read(size)
                        f.readline()
                self.requests.append((head, body))
                answer = self.handler(head, body)
                if answer is None:
                    return
                conn.sendall(answer)
                if b"connection: close" in answer.lower() or answer.startswith(b"HTTP/1.0"):
                    return
        finally:
            f.close()
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        s = Server(handler)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def _transport() -> Transport:
    return Transport(lambda netloc: TLSSettings(), retries=2, backoff=0.01, timeout=10)


def test_content_length_and_keep_alive(serve) -> None:
    srv = serve(lambda h, b: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello")
    c = Connection("127.0.0.1", srv.port, 10)
    for _ in range(3):
        r = c.request("GET", "/x", {"Host": "h"})
        assert r.status == 200 and r.headers.get("x-A") == "1" and r.headers.get_all("X-A") == ["1", "2"]
        assert r.read(2) == b"he" and r.read() == b"llo" and r.isclosed() and not r.will_close
    c.close()
    assert srv.connections == 1 and len(srv.requests) == 3
    head = srv.requests[0][0]
    assert head.startswith(b"GET /x HTTP/1.1\r\n") and b"Host: h\r\n" in head


def test_chunked_with_extensions_and_trailers(serve) -> None:
    body = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: t\r\n\r\n")
    srv = serve(lambda h, b: body)
    c = Connection("127.0.0.1", srv.port, 10)
    r = c.request("GET", "/", {})
    assert r.read() == b"abcdefg" and r.isclosed()
    r = c.request("GET", "/", {})  # the connection is still in step after the trailers
    assert r.read(100) == b"abcd" and r.read(2) == b"ef" and r.read(100) == b"g" and r.read(1) == b""
    c.close()
    assert srv.connections == 1


def test_interim_answers_are_skipped_and_head_has_no_body(serve) -> None:
    def handler(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"

    srv = serve(handler)
    c = Connection("127.0.0.1", srv.port, 10)
    r = c.request("HEAD", "/", {})
    assert r.status == 200 and r.read() == b"" and r.isclosed()
    r = c.request("PUT", "/", {}, b"data")
    assert r.status == 201 and r.read() == b"ok"
    assert srv.requests[1][1] == b"data"


def test_read_until_close_and_truncated_bodies(serve) -> None:
    srv = serve(lambda h, b: b"HTTP/1.0 200 OK\r\n\r\nall of it")
    r = Connection("127.0.0.1", srv.port, 10).request("GET", "/", {})
    assert r.will_close and r.read() == b"all of it"
    short = serve(lambda h, b: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc")
    r = Connection("127.0.0.1", short.port, 10).request("GET", "/", {})
    assert r.read(3) == b"abc"
    with pytest.raises(IncompleteRead):
        r.read(10)
    bad = serve(lambda h, b: b"SPDY/3 200 OK\r\n\r\n")
    with pytest.raises(ProtocolError):
        Connection("127.0.0.1", bad.port, 10).request("GET", "/", {})


def test_file_bodies_go_chunked_without_a_length(serve) -> None:
    srv = serve(lambda h, b: b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
    c = Connection("127.0.0.1", srv.port, 10)
    data = bytes(range(256)) * 5000
    assert c.request("PATCH", "/u", {}, io.BytesIO(data)).status == 202
    assert c.request("PUT", "/u", {"Content-Length": str(len(data))}, io.BytesIO(data)).status == 202
    (h1, b1), (h2, b2) = srv.requests
    assert b"transfer-encoding: chunked" in h1.lower() and b1 == data
    assert b"transfer-encoding" not in h2.lower() and b2 == data


def test_transport_retries_a_stale_connection_and_follows_redirects(serve) -> None:
    answered: list[int] = []

    def handler(head: bytes, body: bytes) -> bytes | None:
        answered.append(1)
        if len(answered) == 2:
            return None  # the server dropped the kept-alive connection meanwhile
        if head.startswith(b"GET /old"):
            return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew"

    srv = serve(handler)
    t = _transport()
    base = f"http://127.0.0.1:{srv.port}"
    assert t.request("GET", base + "/new").body == b"new"
    resp = t.request("GET", base + "/old", {"Authorization": "Bearer x"})
    assert resp.status == 200 and resp.body == b"new"
    heads = [h for h, _ in srv.requests]
    assert heads[-1].startswith(b"GET /new") and b"Bearer x" in heads[-1]  # same host: kept
    assert all(f"Host: 127.0.0.1:{srv.port}".encode() in h for h in heads)
    t.close()


def test_transport_reports_a_refused_connection(serve) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectionFailed, match="connection refused"):
        _transport().request("GET", f"http://127.0.0.1:{port}/v2/", retry_refused=False)
