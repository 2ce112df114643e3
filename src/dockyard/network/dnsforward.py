"""The embedded DNS server's forwarding (see dnsserver.py): queries it cannot answer from
its table are relayed to the upstream resolvers, each tried in turn, the first answer
relayed back; SERVFAIL when none answered in time.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import struct
import time

from . import dnswire as w

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeAlias

    from .dnstcp import _Conn

    _Origin: TypeAlias = "_Conn | tuple[socket.socket, Any]"   # a TCP client, or UDP (socket, peer)

FORWARD_TIMEOUT = 2.0       # per query, over all upstreams
MAX_FORWARDS = 512


class _Forward:
    """A query relayed upstream: tries the upstreams in turn, first answer wins."""

    __slots__ = ("query", "wire", "origin", "tcp", "index", "socks", "deadline", "next_try")

    def __init__(self, query: w.Message, wire: bytes, origin: _Origin, tcp: bool, now: float) -> None:
        self.query, self.wire, self.origin, self.tcp = query, wire, origin, tcp
        self.index = -1
        self.socks: dict[socket.socket, bytearray] = {}
        self.deadline = now + FORWARD_TIMEOUT
        self.next_try = now


class Forwarder:
    """The queries in flight upstream, on the server's selector; `deliver(origin, reply)`
    sends each one's reply (the upstream's, or SERVFAIL) to whoever asked."""

    def __init__(self, sel: selectors.BaseSelector, deliver: Callable[[_Origin, bytes], None]) -> None:
        self.sel, self.deliver = sel, deliver
        self.upstreams: list[tuple[str, int]] = []
        self.forwards: set[_Forward] = set()

    def can_forward(self) -> bool:
        return bool(self.upstreams) and len(self.forwards) < MAX_FORWARDS

    def start(self, query: w.Message, data: bytes, origin: _Origin, tcp: bool) -> None:
        """Relay `data` (the raw `query`) upstream under a fresh random id."""
        fw = _Forward(query, struct.pack("!H", int.from_bytes(os.urandom(2), "big")) + data[2:],
                      origin, tcp, time.monotonic())
        self.forwards.add(fw)
        self.try_next(fw)

    def times(self) -> list[float]:
        """When the loop must next look at the forwards (deadlines and next tries)."""
        return [fw.deadline for fw in self.forwards] + [fw.next_try for fw in self.forwards]

    def expire(self, now: float) -> None:
        for fw in [f for f in self.forwards if now >= f.deadline]:
            self.finish(fw, None)
        for fw in [f for f in self.forwards if now >= f.next_try]:
            self.try_next(fw)

    def try_next(self, fw: _Forward) -> None:
        """Send the query to the next upstream (earlier ones may still answer)."""
        fw.index += 1
        if fw.index >= len(self.upstreams):
            fw.next_try = fw.deadline
            if not fw.socks:
                self.finish(fw, None)
            return
        fw.next_try = time.monotonic() + FORWARD_TIMEOUT / len(self.upstreams)
        host, port = self.upstreams[fw.index]
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                          socket.SOCK_STREAM if fw.tcp else socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            if fw.tcp:
                err = s.connect_ex((host, port))
                if err not in (0, errno.EINPROGRESS):
                    raise OSError(err, os.strerror(err))
                events = selectors.EVENT_WRITE
            else:
                s.connect((host, port))
                s.send(fw.wire)
                events = selectors.EVENT_READ
        except OSError:
            s.close()
            self.try_next(fw)
            return
        fw.socks[s] = bytearray()
        self.sel.register(s, events, lambda so, ev, f=fw: self.on_upstream(f, so, ev))

    def on_upstream(self, fw: _Forward, s: socket.socket, events: int) -> None:
        if s not in fw.socks:
            return
        try:
            if events & selectors.EVENT_WRITE:          # TCP connected (or failed)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                if s.send(struct.pack("!H", len(fw.wire)) + fw.wire) != len(fw.wire) + 2:
                    raise OSError("short write")
                self.sel.modify(s, selectors.EVENT_READ, self.sel.get_key(s).data)
                return
            if not fw.tcp:
                reply = s.recv(65535)
            else:
                buf = fw.socks[s]
                chunk = s.recv(65537)
                if not chunk:
                    raise OSError("upstream closed the connection")
                buf += chunk
                if len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                    return
                reply = bytes(buf[2:2 + int.from_bytes(buf[:2], "big")])
        except BlockingIOError:
            return
        except OSError:
            self.sel.unregister(s)
            s.close()
            del fw.socks[s]
            if fw.index + 1 < len(self.upstreams) or not fw.socks:
                self.try_next(fw)
            return
        if len(reply) >= 12 and reply[:2] == fw.wire[:2] and reply[2] & 0x80:
            self.finish(fw, reply)

    def finish(self, fw: _Forward, reply: bytes | None) -> None:
        for s in fw.socks:
            self.sel.unregister(s)
            s.close()
        fw.socks.clear()
        self.forwards.discard(fw)
        if reply is None:
            out = w.encode(w.make_response(fw.query, w.SERVFAIL, (), False),
                           w.MAX_MESSAGE if fw.tcp else fw.query.udp_limit())
        else:
            out = struct.pack("!H", fw.query.id) + reply[2:]
        self.deliver(fw.origin, out)
