"""A small HTTP/1.1 client connection over a plain (or TLS-wrapped) socket.

Just what the registry transport needs, and much cheaper to import than `http.client`
(which pulls in the `email` package): one request at a time on a kept-alive connection, or
several bodiless ones pipelined (`pipeline`: one round trip for the HEADs of a push);
bodies framed by Content-Length, chunked transfer coding, or the end of the connection;
request bodies from bytes or a file (chunked when no Content-Length is given); interim 1xx
answers skipped; a CONNECT tunnel through a proxy before TLS. `ssl` is never imported here:
the caller hands in a context when it wants TLS.

Plain connections are `_socket.socket`s read through `_Reader`, a small buffer of our own:
the stdlib's `socket` module (what `create_connection` and `makefile` live in) costs ~2 ms
to import (selectors, four IntEnums), more than a warm pull spends on the network.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator, Mapping

BLOCK = 1 << 20
_RECV = 1 << 16
_MAX_LINE = 65536
_MAX_HEADERS = 200


class ProtocolError(OSError):
    """The peer did not speak HTTP/1.x as expected."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection before sending a response (stale keep-alive)."""


class IncompleteRead(OSError):
    """The body ended before its announced end."""

    def __init__(self, expected: int | None) -> None:
        super().__init__(f"connection closed with {expected if expected is not None else 'more'} "
                         "bytes still to come")
        self.expected = expected


class _Reader:
    """What `socket.makefile("rb")` gave: lines and exact-size reads over a socket's `recv`
    (a `_socket.socket` or an `ssl.SSLSocket`)."""

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        pos = self._pos
        data = self._buf[pos:pos + n]
        self._pos = pos + len(data)
        if self._pos >= len(self._buf):
            self._buf, self._pos = b"", 0
        return data

    def _more(self) -> bool:
        data = self._sock.recv(_RECV)
        if not data:
            return False
        self._buf = self._buf[self._pos:] + data if self._buf else data
        self._pos = 0
        return True

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF; `limit` bytes at most; what is left at EOF."""
        while True:
            i = self._buf.find(b"\n", self._pos, self._pos + limit)
            if i >= 0:
                return self._take(i + 1 - self._pos)
            if self.pending() >= limit or not self._more():
                return self._take(limit)

    def read(self, n: int) -> bytes:
        """`n` bytes, fewer only at the end of the connection."""
        have = self.pending()
        if have >= n:
            return self._take(n)
        out = bytearray(n)
        view = memoryview(out)
        view[:have] = memoryview(self._buf)[self._pos:]
        self._buf, self._pos = b"", 0
        got = have
        try:
            while got < n:
                k = self._sock.recv_into(view[got:])
                if not k:
                    break
                got += k
        finally:
            view.release()
        del out[got:]
        return bytes(out)

    def read1(self, n: int) -> bytes:
        """Up to `n` bytes with at most one `recv` (b"" at the end of the connection)."""
        if self.pending():
            return self._take(n)
        return self._sock.recv(n)


class _NoSocket:
    """The end of a buffered body."""

    def recv(self, n: int) -> bytes:
        return b""

    def recv_into(self, b: Any) -> int:
        return 0


def open_tcp(host: str | bytes, port: int, timeout: float) -> Any:
    """`socket.create_connection` on `_socket`: each address in turn; the last error raised."""
    err: OSError | None = None
    for family, kind, proto, _name, addr in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as e:
            sock.close()
            err = e
    raise err if err is not None else OSError(f"{host!r}: no address to connect to")


class Headers:
    """Response headers, in order; `get` is case-insensitive and returns the first value."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self._items if k.lower() == low]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self._items])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


def _read_line(fp: Any) -> bytes:
    line = fp.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ProtocolError("header line too long")
    return line


def _read_headers(fp: Any) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    while True:
        line = _read_line(fp)
        if not line:
            raise IncompleteRead(None)
        if line in (b"\r\n", b"\n"):
            return items
        if line[:1] in (b" ", b"\t") and items:  # obsolete line folding
            k, v = items[-1]
            items[-1] = (k, v + " " + line.strip().decode("latin-1"))
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"invalid header line {line[:80]!r}")
        items.append((name.strip(), value.strip()))
        if len(items) > _MAX_HEADERS:
            raise ProtocolError("too many headers")


def _read_status(fp: Any) -> tuple[str, int, str]:
    line = _read_line(fp)
    if not line:
        raise RemoteDisconnected("server closed the connection without a response")
    parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"invalid status line {line[:80]!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""


class RawResponse:
    """One response; its body is read with `read()`. `isclosed()` once the body is all read
    (the connection may then carry the next request unless `will_close`)."""

    def __init__(self, fp: Any, version: str, status: int, reason: str, headers: Headers,
                 method: str) -> None:
        self._fp = fp
        self.status = status
        self.reason = reason
        self.headers = headers
        conn = (headers.get("Connection") or "").lower()
        self.will_close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
        self.chunked = False
        self._chunk_left = 0
        #: body bytes still to come (None: chunked, or up to the end of the connection)
        self.length: int | None = None
        te = (headers.get("Transfer-Encoding") or "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.length = 0
        elif "chunked" in te:
            self.chunked = True
        else:
            cl = headers.get("Content-Length")
            if cl is not None:
                try:
                    self.length = int(cl.split(",")[0].strip())
                except ValueError:
                    raise ProtocolError(f"invalid Content-Length {cl!r}") from None
                if self.length < 0:
                    raise ProtocolError(f"invalid Content-Length {cl!r}")
            else:
                self.will_close = True
        self._done = self.length == 0

    def isclosed(self) -> bool:
        return self._done

    def buffer(self) -> None:
        """Read the whole body now (`read` then serves it), freeing the connection for the
        next pipelined answer."""
        body = self.read()
        self._fp = _Reader(_NoSocket())
        self._fp._buf = body
        self._done = not body
        self.chunked, self.length = False, len(body)

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            parts = []
            while chunk := self.read(BLOCK):
                parts.append(chunk)
            return b"".join(parts)
        if n == 0:
            return b""
        if self.chunked:
            return self._read_chunked(n)
        if self.length is None:  # until the server closes
            data = self._fp.read1(n)
            if not data:
                self._done = True
            return data
        data = self._fp.read(min(n, self.length))
        if not data:
            raise IncompleteRead(self.length)
        self.length -= len(data)
        if self.length == 0:
            self._done = True
        return data

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            line = _read_line(self._fp)
            if not line:
                raise IncompleteRead(None)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"invalid chunk size {line[:40]!r}") from None
            if size == 0:
                _read_headers(self._fp)  # trailers, up to the blank line
                self._done = True
                return b""
            self._chunk_left = size
        data = self._fp.read(min(n, self._chunk_left))
        if not data:
            raise IncompleteRead(self._chunk_left)
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and _read_line(self._fp) not in (b"\r\n", b"\n"):
            raise ProtocolError("missing CRLF after a chunk")
        return data


class Connection:
    """One connection to `host:port` (made on first use), optionally through a CONNECT tunnel
    (`tunnel`: the target's host, port and the proxy's extra headers) and TLS."""

    def __init__(self, host: str, port: int, timeout: float, tls: Any = None,
                 server_hostname: str | None = None,
                 tunnel: tuple[str, int, Mapping[str, str]] | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.tls = tls
        self.server_hostname = server_hostname or host
        self.tunnel = tunnel
        self.sock: Any = None
        self._fp: Any = None

    def connect(self) -> None:
        host: str | bytes = self.host
        if host.isascii():  # a str would go through the idna codec (an import) for nothing
            host = host.encode("ascii")
        sock = open_tcp(host, self.port, self.timeout)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self.tunnel is not None:
                self._connect_tunnel(sock)
            if self.tls is not None:
                import socket  # ssl wants a socket.socket (and has imported `socket` already)

                plain = socket.socket(sock.family, sock.type, sock.proto, sock.detach())
                sock = plain
                plain.settimeout(self.timeout)
                sock = self.tls.wrap_socket(plain, server_hostname=self.server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._fp = _Reader(sock)

    def _connect_tunnel(self, sock: Any) -> None:
        host, port, extra = self.tunnel  # type: ignore[misc]
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        fp = _Reader(sock)
        _version, status, reason = _read_status(fp)
        _read_headers(fp)
        if status != 200:
            raise OSError(f"Tunnel connection failed: {status} {reason}".strip())
        if fp.pending():  # the proxy spoke before the TLS handshake: not a tunnel
            raise ProtocolError("the proxy sent data after its CONNECT answer")

    def close(self) -> None:
        sock, self._fp, self.sock = self.sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _head(self, method: str, target: str, headers: Mapping[str, str],
              body: bytes | BinaryIO | None) -> tuple[bytes, bool]:
        """The request's head, and whether its body goes chunked."""
        lower = {k.lower() for k in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in lower:
            lines.append(f"Host: {self._host_header()}")
        if "accept-encoding" not in lower:
            lines.append("Accept-Encoding: identity")
        chunked = False
        if isinstance(body, (bytes, bytearray, memoryview)):
            if "content-length" not in lower:
                lines.append(f"Content-Length: {len(body)}")
        elif body is not None and "content-length" not in lower:
            chunked = True
            lines.append("Transfer-Encoding: chunked")
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), chunked

    def _response(self, method: str) -> RawResponse:
        while True:
            version, status, reason = _read_status(self._fp)
            items = _read_headers(self._fp)
            if 100 <= status < 200 and status != 101:
                continue
            return RawResponse(self._fp, version, status, reason, Headers(items), method)

    def pipeline(self, requests: list[tuple[str, str, Mapping[str, str]]]) -> list[RawResponse]:
        """Send bodiless requests (method, target, headers) at once, then read their answers
        in order, each body read whole (`read()` gives it). The answers stop early at one
        that closes the connection; the caller sends the rest again."""
        self.send_pipelined(requests)
        return self.read_pipelined([m for m, _t, _h in requests])

    def send_pipelined(self, requests: list[tuple[str, str, Mapping[str, str]]]) -> None:
        """The sending half of `pipeline` (answers are then read with `read_pipelined`)."""
        if self.sock is None:
            self.connect()
        self.sock.sendall(b"".join(self._head(m, t, h, None)[0] for m, t, h in requests))

    def read_pipelined(self, methods: list[str]) -> list[RawResponse]:
        """The answers to what `send_pipelined` sent, in order (see `pipeline`)."""
        out: list[RawResponse] = []
        for method in methods:
            raw = self._response(method)
            raw.buffer()
            out.append(raw)
            if raw.will_close:
                break
        return out

    def request(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes | BinaryIO | None = None) -> RawResponse:
        """Send a request and read the response's head (the body is left to `read`)."""
        if self.sock is None:
            self.connect()
        head, chunked = self._head(method, target, headers, body)
        sock = self.sock
        if body is None:
            sock.sendall(head)
        elif isinstance(body, (bytes, bytearray, memoryview)):
            if len(body) <= 65536:
                sock.sendall(head + bytes(body))
            else:
                sock.sendall(head)
                sock.sendall(body)
        else:
            sock.sendall(head)
            while data := body.read(BLOCK):
                if chunked:
                    sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    sock.sendall(data)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        return self._response(method)

    def _host_header(self) -> str:
        if self.tunnel is not None:
            host, port = self.tunnel[0], self.tunnel[1]
        else:
            host, port = self.host, self.port
        default = 443 if self.tls is not None else 80
        name = f"[{host}]" if ":" in host else host
        return name if port == default else f"{name}:{port}"
