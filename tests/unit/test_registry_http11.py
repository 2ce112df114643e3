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


def test_pipelined_heads_share_one_connection_and_one_write(serve) -> None:
    def handler(head: bytes, body: bytes) -> bytes:
        n = head.split(b" ")[1].rsplit(b"/", 1)[1]
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-N: %s\r\n\r\n" % (int(n) * 10, n)

    srv = serve(handler)
    c = Connection("127.0.0.1", srv.port, 10)
    answers = c.pipeline([("HEAD", f"/b/{i}", {"Accept": "x"}) for i in range(1, 6)])
    assert [(r.status, r.headers.get("X-N"), r.headers.get("Content-Length")) for r in answers] == \
        [(200, str(i), str(i * 10)) for i in range(1, 6)]
    assert all(r.read() == b"" and r.isclosed() for r in answers)
    r = c.request("HEAD", "/b/7", {})  # still in step for a plain request
    assert r.status == 200 and r.headers.get("X-N") == "7"
    c.close()
    assert srv.connections == 1 and len(srv.requests) == 6


def test_pipelined_bodies_are_read_whole(serve) -> None:
    srv = serve(lambda h, b: (b"HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nmissing"
                              if b"/gone" in h else
                              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
    c = Connection("127.0.0.1", srv.port, 10)
    a, b, d = c.pipeline([("GET", "/gone", {}), ("GET", "/here", {}), ("GET", "/gone", {})])
    assert (a.status, a.read()) == (404, b"missing")
    assert (b.status, b.read(1), b.read()) == (200, b"o", b"k")
    assert (d.status, d.read()) == (404, b"missing")
    c.close()


def test_transport_pipeline_sends_again_what_a_closing_server_left(serve) -> None:
    def handler(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    srv = serve(handler)
    t = _transport()
    base = f"http://127.0.0.1:{srv.port}"
    got = t.pipeline("HEAD", [f"{base}/a", f"{base}/b", f"{base}/c"], {}, connections=1)
    assert [r.status for r in got] == [200, 200, 200]
    paths = [h.split(b" ")[1] for h, _ in srv.requests]
    assert paths.count(b"/a") == 1 and b"/b" in paths and b"/c" in paths
    assert srv.connections == 3  # the first answer closed the pipelined connection
    t.close()


def test_transport_pipeline_deals_requests_to_several_connections(serve) -> None:
    srv = serve(lambda h, b: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-P: %s\r\n\r\n"
                % h.split(b" ")[1])
    t = _transport()
    base = f"http://127.0.0.1:{srv.port}"
    got = t.pipeline("HEAD", [f"{base}/{i}" for i in range(7)], {}, connections=3)
    assert [r.header("X-P") for r in got] == [f"/{i}" for i in range(7)]
    assert srv.connections == 3 and len(srv.requests) == 7
    got = t.pipeline("HEAD", [f"{base}/{i}" for i in range(2)], {}, connections=3)
    assert [r.header("X-P") for r in got] == ["/0", "/1"]
    assert srv.connections == 3  # the kept-alive connections served again
    t.close()


def test_transport_pipeline_retries_5xx_answers_one_by_one(serve) -> None:
    seen: list[bytes] = []

    def handler(head: bytes, body: bytes) -> bytes:
        path = head.split(b" ")[1]
        seen.append(path)
        if path == b"/b" and seen.count(b"/b") == 1:
            return b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    srv = serve(handler)
    t = _transport()
    base = f"http://127.0.0.1:{srv.port}"
    got = t.pipeline("HEAD", [f"{base}/a", f"{base}/b", f"{base}/c"], {})
    assert [r.status for r in got] == [200, 200, 200]
    assert seen.count(b"/b") == 2 and seen.count(b"/a") == 1
    t.close()


def test_reader_lines_and_exact_reads_across_receives() -> None:
    from dockyard.registry.http11 import _Reader

    class Drip:
        """A socket that hands out its data a few bytes per recv."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def recv(self, n: int) -> bytes:
            out, self.data = self.data[:min(n, 3)], self.data[min(n, 3):]
            return out

        def recv_into(self, view) -> int:
            out = self.recv(len(view))
            view[:len(out)] = out
            return len(out)

    r = _Reader(Drip(b"line one\r\nline two\nrest of it" + b"x" * 100))
    assert r.readline(100) == b"line one\r\n" and r.readline(100) == b"line two\n"
    assert r.readline(4) == b"rest"  # the limit
    assert r.read(3) == b" of"
    first = r.read1(100)  # what is buffered, or one recv
    assert first and (b" it" + b"x" * 100).startswith(first)
    assert first + r.read(1000) == b" it" + b"x" * 100  # fewer only at the end
    assert r.read(10) == b"" and r.readline(10) == b""
