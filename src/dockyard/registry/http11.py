"""A small HTTP/1.1 client connection over a plain (or TLS-wrapped) socket.

Just what the registry transport needs, and much cheaper to import than `http.client`
(which pulls in the `email` package): one request at a time on a kept-alive connection;
bodies framed by Content-Length, chunked transfer coding, or the end of the connection;
request bodies from bytes or a file (chunked when no Content-Length is given); interim 1xx
answers skipped; a CONNECT tunnel through a proxy before TLS. `ssl` is never imported here:
the caller hands in a context when it wants TLS.
"""

from __future__ import annotations

import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator, Mapping

BLOCK = 1 << 20
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
        sock = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tunnel is not None:
                self._connect_tunnel(sock)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._fp = sock.makefile("rb", buffering=65536)

    def _connect_tunnel(self, sock: socket.socket) -> None:
        host, port, extra = self.tunnel  # type: ignore[misc]
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        fp = sock.makefile("rb", buffering=0)
        try:
            _version, status, reason = _read_status(fp)
            _read_headers(fp)
        finally:
            fp.close()
        if status != 200:
            raise OSError(f"Tunnel connection failed: {status} {reason}".strip())

    def close(self) -> None:
        fp, sock, self._fp, self.sock = self._fp, self.sock, None, None
        for obj in (fp, sock):
            if obj is not None:
                try:
                    obj.close()
                except OSError:
                    pass

    def request(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes | BinaryIO | None = None) -> RawResponse:
        """Send a request and read the response's head (the body is left to `read`)."""
        if self.sock is None:
            self.connect()
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
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
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
        while True:
            version, status, reason = _read_status(self._fp)
            items = _read_headers(self._fp)
            if 100 <= status < 200 and status != 101:
                continue
            return RawResponse(self._fp, version, status, reason, Headers(items), method)

    def _host_header(self) -> str:
        if self.tunnel is not None:
            host, port = self.tunnel[0], self.tunnel[1]
        else:
            host, port = self.host, self.port
        default = 443 if self.tls is not None else 80
        name = f"[{host}]" if ":" in host else host
        return name if port == default else f"{name}:{port}"
