"""The embedded DNS server process (started by dnsd.set_network as `python -m dockyard.network.dnsd`).

Single-threaded over selectors: UDP and TCP on each user network's gateway address, answers
from the table file for the network a query arrived on, forwards the rest upstream, reloads
on SIGHUP, and exits when the table lists no networks (see dnsd.py for the files it keeps).
This module is the loop, the table, the listeners and the answers; dnsforward.py relays
queries upstream, dnstcp.py serves the TCP clients.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time

from . import dnswire as w
from .dnsd import MODULE, _canon_ip, _read_table
from .dnsforward import Forwarder
from .dnstcp import TcpClients, _Conn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .dnsforward import _Origin

TTL = 600
RETRY_BIND = 1.0


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} dnsd[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _hostport(item: str) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353` → (canonical address, port)."""
    item = item.strip()
    port = 53
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif item.count(":") == 1:
        host, _, p = item.partition(":")
        port = int(p)
    else:
        host = item
    return _canon_ip(host.split("%")[0]), port


def _upstreams(table: dict[str, Any]) -> list[tuple[str, int]]:
    env = os.environ.get("DOCKYARD_DNS_UPSTREAMS")
    if env is not None:
        items = [i for i in env.split(",") if i.strip()]
    elif isinstance(table.get("upstreams"), list):
        items = [str(i) for i in table["upstreams"]]
    else:
        items = []
        try:
            with open("/etc/resolv.conf") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver":
                        items.append(parts[1])
        except OSError:
            pass
    out = []
    for item in items:
        try:
            out.append(_hostport(item))
        except (OSError, ValueError):
            _log(f"ignoring upstream {item!r}")
    return out


class _Zone:
    """One listen address's names: lower-case name → addresses; address → its first name."""

    __slots__ = ("names", "ptr")

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.ptr: dict[str, str] = {}


class Server:
    def __init__(self, table: str, pidfd: int) -> None:
        self.table, self.pidfd = table, pidfd
        self.sel = selectors.DefaultSelector()
        self.listeners: dict[str, tuple[socket.socket, socket.socket]] = {}
        self.failed: dict[str, str] = {}
        self.zones: dict[str, _Zone] = {}
        self.fwd = Forwarder(self.sel, self._deliver)
        self.tcp = TcpClients(self.sel, self._answer)
        self.serial = 0
        self.reload_wanted, self.stopping = True, False
        self.retry_at = 0.0
        rsock, wsock = socket.socketpair()
        rsock.setblocking(False)
        wsock.setblocking(False)
        self._wake = (rsock, wsock)
        signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGHUP, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.sel.register(rsock, selectors.EVENT_READ, self._drain)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self.reload_wanted = True
        else:
            self.stopping = True

    def _drain(self, sock: socket.socket, _events: int) -> None:
        try:
            while sock.recv(512):
                pass
        except OSError:
            pass

    def run(self) -> int:
        try:
            while not self.stopping:
                if self.reload_wanted:
                    self.reload_wanted = False
                    if not self._reload():
                        return 0
                for key, events in self.sel.select(self._timeout()):
                    key.data(key.fileobj, events)
                self._expire()
        finally:
            self._shutdown()
        return 0

    # ---- table and sockets

    def _reload(self) -> bool:
        """Load the table; False when it lists no networks (the server then exits)."""
        try:
            table = _read_table(self.table)
            if not table["networks"]:
                import fcntl

                lockfd = os.open(self.table + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(lockfd, fcntl.LOCK_EX)
                    table = _read_table(self.table)
                    if not table["networks"]:
                        _log("no networks left: exiting")
                        self._shutdown()            # under the lock: no client finds a dying server
                        return False
                finally:
                    os.close(lockfd)
        except (OSError, ValueError) as e:
            _log(f"cannot read {self.table}: {e}; keeping the old table")
            return True
        zones: dict[str, _Zone] = {}
        for net_id, net in table["networks"].items():
            try:
                zone = zones.setdefault(_canon_ip(str(net["listen"])), _Zone())
                for name, ips in dict(net.get("records") or {}).items():
                    key = str(name).lower().rstrip(".")
                    for ip in ips:
                        ip = _canon_ip(str(ip))
                        zone.names.setdefault(key, [])
                        if ip not in zone.names[key]:
                            zone.names[key].append(ip)
                        zone.ptr.setdefault(ip, str(name).rstrip("."))
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
                _log(f"network {net_id}: bad entry ({e!r}), skipped")
        self.zones = zones
        self.fwd.upstreams = [u for u in _upstreams(table) if not (u[0] in zones and u[1] == 53)]
        self.serial = table["serial"] if isinstance(table.get("serial"), int) else 0
        for addr in [a for a in self.listeners if a not in zones]:
            for s in self.listeners.pop(addr):
                self.sel.unregister(s)
                s.close()
        self.failed = {a: e for a, e in self.failed.items() if a in zones}
        self._bind_missing()
        return True

    def _bind_missing(self) -> None:
        for addr in self.zones:
            if addr in self.listeners:
                continue
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            socks = []
            try:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(family, kind)
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.setblocking(False)
                    s.bind((addr, 53))
                socks[1].listen(64)
            except OSError as e:
                for s in socks:
                    s.close()
                if self.failed.get(addr) != str(e):
                    _log(f"cannot listen on {addr}:53: {e} (will retry)")
                self.failed[addr] = str(e)
                continue
            self.failed.pop(addr, None)
            udp, tcp = socks
            self.sel.register(udp, selectors.EVENT_READ, lambda s, _e, a=addr: self._on_udp(s, a))
            self.sel.register(tcp, selectors.EVENT_READ, lambda s, _e, a=addr: self.tcp.on_accept(s, a))
            self.listeners[addr] = (udp, tcp)
        self.retry_at = time.monotonic() + RETRY_BIND
        status = {"pid": os.getpid(), "serial": self.serial, "listening": sorted(self.listeners),
                  "failed": self.failed, "upstreams": [f"{h}:{p}" for h, p in self.fwd.upstreams]}
        tmp = f"{self.table}.status.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(status, f)
            os.replace(tmp, self.table + ".status")
        except OSError as e:
            _log(f"cannot write the status file: {e}")

    def _shutdown(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fileobj)
            key.fileobj.close()             # type: ignore[union-attr]
        self.listeners.clear()
        for suffix in (".status", ".pid"):
            try:
                if suffix == ".pid":
                    with open(self.table + suffix, "rb") as f:
                        if f.read().strip() != str(os.getpid()).encode():
                            continue
                os.unlink(self.table + suffix)
            except OSError:
                pass

    # ---- timers

    def _timeout(self) -> float | None:
        times = self.fwd.times() + self.tcp.times()
        if self.failed:
            times.append(self.retry_at)
        return max(0.0, min(times) - time.monotonic()) if times else None

    def _expire(self) -> None:
        now = time.monotonic()
        self.fwd.expire(now)
        self.tcp.expire(now)
        if self.failed and now >= self.retry_at:
            self._bind_missing()

    # ---- queries

    def _on_udp(self, sock: socket.socket, local: str) -> None:
        for _ in range(64):
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                return
            reply = self._answer(data, local, (sock, peer), False)
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, data: bytes, local: str, origin: _Origin, tcp: bool) -> bytes | None:
        """The reply to one query, or None when it was forwarded (or deserves no reply)."""
        try:
            msg = w.parse(data)
        except w.WireError:
            return w.error_reply(data, w.FORMERR)
        if msg.is_response:
            return None
        if msg.opcode != 0:
            return w.error_reply(data, w.NOTIMP)
        if len(msg.questions) != 1:
            return w.error_reply(data, w.FORMERR)
        answers = self._local(msg, local)
        if answers is None:
            if not self.fwd.can_forward():
                answers = ()
                rcode = w.SERVFAIL
            else:
                if isinstance(origin, _Conn):
                    origin.pending += 1
                self.fwd.start(msg, data, origin, tcp)
                return None
        else:
            rcode = w.NOERROR
        try:
            return w.encode(w.make_response(msg, rcode, answers, rcode == w.NOERROR),
                            w.MAX_MESSAGE if tcp else msg.udp_limit())
        except w.WireError:
            return w.error_reply(data, w.SERVFAIL)

    def _local(self, msg: w.Message, local: str) -> tuple[w.Record, ...] | None:
        zone = self.zones.get(local)
        q = msg.questions[0]
        if zone is None or q.qclass not in (w.CLASS_IN, w.CLASS_ANY):
            return None
        key = q.name.lower()
        ips = zone.names.get(key)
        if ips is not None:
            if q.qtype not in (w.TYPE_A, w.TYPE_AAAA, w.TYPE_ANY):
                return ()
            return tuple(w.address_record(q.name, ip, TTL) for ip in ips
                         if q.qtype == w.TYPE_ANY or (":" in ip) == (q.qtype == w.TYPE_AAAA))
        if q.qtype == w.TYPE_PTR:
            ip = w.reverse_address(key)
            if ip is not None and ip in zone.ptr:
                return (w.ptr_record(q.name, zone.ptr[ip], TTL),)
        return None

    def _deliver(self, origin: _Origin, reply: bytes) -> None:
        """Send a forwarded query's reply to the client that asked."""
        if isinstance(origin, _Conn):
            origin.pending -= 1
            if not origin.closed:
                self.tcp.send(origin, reply)
        else:
            sock, peer = origin
            try:
                sock.sendto(reply, peer)
            except OSError:
                pass


def _main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m {MODULE} TABLE_PATH", file=sys.stderr)
        return 2
    table = os.path.abspath(argv[1])
    signal.signal(signal.SIGHUP, signal.SIG_IGN)    # a reload before the loop runs is harmless
    if os.fork():
        os._exit(0)                                 # the launcher: the client reaps it
    import fcntl

    fd = os.open(table + ".pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"dnsd: another server holds {table}.pid", file=sys.stderr, flush=True)
        return 0
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    try:
        if os.fstat(2).st_size > 1 << 20:
            os.ftruncate(2, 0)                      # the log, when the client opened one
    except OSError:
        pass
    return Server(table, fd).run()
