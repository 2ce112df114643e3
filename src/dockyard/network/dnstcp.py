"""The embedded DNS server's TCP clients (see dnsserver.py): length-prefixed queries in,
replies out, pipelined, closed when idle or when a half-closed client has its replies.
"""

from __future__ import annotations

import selectors
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Callable

TCP_IDLE = 10.0
MAX_CONNS = 128


class _Conn:
    """A TCP client: length-prefixed queries in, replies out."""

    __slots__ = ("sock", "local", "inbuf", "outbuf", "idle_until", "eof", "pending", "closed", "events")

    def __init__(self, sock: socket.socket, local: str, idle_until: float) -> None:
        self.sock, self.local, self.idle_until = sock, local, idle_until
        self.inbuf, self.outbuf = bytearray(), bytearray()
        self.eof = self.closed = False
        self.pending = 0
        self.events = selectors.EVENT_READ


class TcpClients:
    """The TCP connections, on the server's selector; `answer(query, local address, conn,
    True)` gives a query's reply, or None when it was forwarded (the reply comes to `send`)."""

    def __init__(self, sel: selectors.BaseSelector,
                 answer: Callable[[bytes, str, _Conn, bool], bytes | None]) -> None:
        self.sel, self.answer = sel, answer
        self.conns: set[_Conn] = set()

    def times(self) -> list[float]:
        return [c.idle_until for c in self.conns]

    def expire(self, now: float) -> None:
        for conn in [c for c in self.conns if now >= c.idle_until]:
            self.close(conn)

    def on_accept(self, lsock: socket.socket, local: str) -> None:
        for _ in range(16):
            try:
                s, _peer = lsock.accept()
            except OSError:
                return
            if len(self.conns) >= MAX_CONNS:
                s.close()
                continue
            s.setblocking(False)
            conn = _Conn(s, local, time.monotonic() + TCP_IDLE)
            self.conns.add(conn)
            self.sel.register(s, selectors.EVENT_READ, lambda _s, ev, c=conn: self.on_conn(c, ev))

    def on_conn(self, conn: _Conn, events: int) -> None:
        if conn.closed:
            return
        if events & selectors.EVENT_WRITE:
            self.send(conn, b"")
        if not events & selectors.EVENT_READ or conn.closed:
            return
        try:
            chunk = conn.sock.recv(65537)
        except BlockingIOError:
            return
        except OSError:
            self.close(conn)
            return
        conn.idle_until = time.monotonic() + TCP_IDLE
        if not chunk:
            conn.eof = True
            self.send(conn, b"")
            return
        conn.inbuf += chunk
        while len(conn.inbuf) >= 2 and not conn.closed:
            size = int.from_bytes(conn.inbuf[:2], "big")
            if len(conn.inbuf) < 2 + size:
                break
            query = bytes(conn.inbuf[2:2 + size])
            del conn.inbuf[:2 + size]
            reply = self.answer(query, conn.local, conn, True)
            if reply is not None:
                self.send(conn, reply)

    def send(self, conn: _Conn, reply: bytes) -> None:
        """Queue a reply (b"" just flushes) and set what the connection waits for."""
        if reply:
            conn.outbuf += struct.pack("!H", len(reply)) + reply
        try:
            if conn.outbuf:
                del conn.outbuf[:conn.sock.send(conn.outbuf)]
        except BlockingIOError:
            pass
        except OSError:
            self.close(conn)
            return
        events = (0 if conn.eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if conn.outbuf else 0)
        if not events and not conn.pending:
            self.close(conn)
        elif events != conn.events:         # 0 while a half-closed client waits for a forward
            if not events:
                self.sel.unregister(conn.sock)
            elif not conn.events:
                self.sel.register(conn.sock, events, lambda _s, ev, c=conn: self.on_conn(c, ev))
            else:
                self.sel.modify(conn.sock, events, self.sel.get_key(conn.sock).data)
            conn.events = events

    def close(self, conn: _Conn) -> None:
        if not conn.closed:
            conn.closed = True
            self.conns.discard(conn)
            if conn.events:
                self.sel.unregister(conn.sock)
            conn.sock.close()
