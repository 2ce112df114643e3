"""The embedded DNS server (network/dnsd): names on user networks, forwarding, reload, exit.

Each test makes its own link (`dyt` + 6 hex, a dummy or, where the kernel has no dummy
driver, an empty bridge) with an address in a random 10.214.x.0/24, and a fake upstream on
127.0.0.1. DNS traffic goes only to those addresses: the server under test always gets
DOCKYARD_DNS_UPSTREAMS, so it never forwards to the host's real resolvers.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dockyard.errors import FailedPrecondition
from dockyard.network import dnsd, dnsserver
from dockyard.network import dnswire as w

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (links, port 53)")

FAKE_PREFIX = "192.0.2."


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _used_subnets() -> set[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return {f.split("/")[0].rsplit(".", 1)[0] for f in out.split() if f.startswith("10.214.")}


@pytest.fixture
def make_link() -> Iterator[Callable[..., str]]:
    """make_link() → the gateway address of a new link; make_link(address=False) → an unused
    address whose link does not exist yet (returned as 'name ip')."""
    links: list[str] = []

    def make(address: bool = True) -> str:
        used = _used_subnets()
        while True:
            net = f"10.214.{secrets.randbelow(254) + 1}"
            if net not in used:
                break
        ip = f"{net}.1"
        name = f"dyt{secrets.token_hex(3)}"
        if not address:
            return f"{name} {ip}"
        add_link(name, ip, links)
        return ip

    make.links = links                       # type: ignore[attr-defined]
    yield make
    for name in links:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def add_link(name: str, ip: str, links: list[str]) -> None:
    try:
        _ip("link", "add", name, "type", "dummy")
    except subprocess.CalledProcessError:
        _ip("link", "add", name, "type", "bridge")
    links.append(name)
    _ip("addr", "add", f"{ip}/24", "dev", name)
    _ip("link", "set", name, "up")


class FakeUpstream:
    """A resolver on 127.0.0.1 that answers every A query with 192.0.2.<n> (n counts
    queries), or stays silent when `silent`; it records (transport, name) per query."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.seen: list[tuple[str, str]] = []
        for _ in range(20):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(8)
        self._stop = socket.socketpair()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _reply(self, data: bytes, transport: str) -> bytes | None:
        q = w.parse(data)
        self.seen.append((transport, q.questions[0].name))
        if self.silent:
            return None
        ip = f"{FAKE_PREFIX}{len(self.seen)}"
        return w.encode(w.make_response(q, w.NOERROR, (w.address_record(q.questions[0].name, ip, 5),), False))

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ)
        sel.register(self.tcp, selectors.EVENT_READ)
        sel.register(self._stop[0], selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is self._stop[0]:
                    return
                if key.fileobj is self.udp:
                    data, peer = self.udp.recvfrom(65535)
                    reply = self._reply(data, "udp")
                    if reply:
                        self.udp.sendto(reply, peer)
                else:
                    conn, _ = self.tcp.accept()
                    with conn:
                        conn.settimeout(2)
                        size = struct.unpack("!H", _recv_exact(conn, 2))[0]
                        reply = self._reply(_recv_exact(conn, size), "tcp")
                        if reply:
                            conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self._stop[1].send(b"x")
        self.thread.join(5)
        for s in (self.udp, self.tcp, *self._stop):
            s.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream()
    yield up
    up.close()


@pytest.fixture
def table(tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DOCKYARD_DNS_UPSTREAMS", f"127.0.0.1:{upstream.port}")
    path = tmp_path / "dns.json"
    yield path
    pid = dnsd.server_pid(path)
    dnsd.stop(path)
    if pid is not None and not gone(pid):
        os.kill(pid, signal.SIGKILL)


def udp_query(server: str, name: str, qtype: int = w.TYPE_A, timeout: float = 3.0,
              edns: int | None = None) -> w.Message:
    ident = secrets.randbelow(65536)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((server, 53))
        s.send(w.encode(w.make_query(name, qtype, ident, edns)))
        m = w.parse(s.recv(65535))
    assert m.id == ident and m.is_response
    return m


def tcp_query(server: str, name: str, qtype: int = w.TYPE_A, timeout: float = 3.0) -> w.Message:
    ident = secrets.randbelow(65536)
    data = w.encode(w.make_query(name, qtype, ident))
    with socket.create_connection((server, 53), timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(data)) + data)
        m = w.parse(_recv_exact(s, struct.unpack("!H", _recv_exact(s, 2))[0]))
    assert m.id == ident and m.is_response
    return m


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its new parent (PID 1) has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def addresses(m: w.Message) -> list[str]:
    return [rr.text() for rr in m.answers]


RECORDS = {"web": ["10.0.0.0"], "web-alias": ["10.0.0.0"], "0123456789ab": ["10.0.0.0"], "db": ["10.0.0.1"]}


def records_for(gateway: str) -> dict[str, list[str]]:
    net = gateway.rsplit(".", 1)[0]
    return {name: [f"{net}.{int(ip.rsplit('.', 1)[1]) + 2}" for ip in ips] for name, ips in RECORDS.items()}


def test_known_names_over_udp_and_tcp(table: Path, make_link: Callable[..., str], upstream: FakeUpstream) -> None:
    gw = make_link()
    recs = records_for(gw)
    dnsd.set_network(table, "net1", gw, recs)
    for query in (udp_query, tcp_query):
        for name in ("web", "WEB", "web.", "Web-Alias", "0123456789ab"):
            m = query(gw, name)
            assert m.rcode == w.NOERROR and addresses(m) == recs["web"], name
            assert m.answers[0].ttl == 600 and m.questions[0].name == name.rstrip(".")
        assert addresses(query(gw, "db")) == recs["db"]
        aaaa = query(gw, "web", w.TYPE_AAAA)
        assert aaaa.rcode == w.NOERROR and aaaa.answers == ()
    assert upstream.seen == []
    assert udp_query(gw, "web", edns=1232).edns_payload() == w.EDNS_PAYLOAD


def test_ptr_for_a_known_address(table: Path, make_link: Callable[..., str]) -> None:
    gw = make_link()
    recs = records_for(gw)
    dnsd.set_network(table, "net1", gw, recs)
    for query in (udp_query, tcp_query):
        m = query(gw, w.reverse_name(recs["web"][0]), w.TYPE_PTR)
        assert m.rcode == w.NOERROR and addresses(m) == ["web"]       # the first name listed
        assert addresses(query(gw, w.reverse_name(recs["db"][0]), w.TYPE_PTR)) == ["db"]


def test_unknown_names_are_forwarded_and_relayed(table: Path, make_link: Callable[..., str],
                                                 upstream: FakeUpstream) -> None:
    gw = make_link()
    dnsd.set_network(table, "net1", gw, records_for(gw))
    m = udp_query(gw, "elsewhere.example")
    assert m.rcode == w.NOERROR and addresses(m) == [FAKE_PREFIX + "1"]
    m = tcp_query(gw, "Other.Example")
    assert m.rcode == w.NOERROR and addresses(m) == [FAKE_PREFIX + "2"]
    m = udp_query(gw, "10.in-addr.arpa", w.TYPE_PTR)                  # not a known address
    assert m.rcode == w.NOERROR
    assert upstream.seen == [("udp", "elsewhere.example"), ("tcp", "Other.Example"), ("udp", "10.in-addr.arpa")]


def test_upstream_refused_or_silent_gives_servfail(tmp_path: Path, make_link: Callable[..., str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()                                      # nothing listens there any more
    silent = FakeUpstream(silent=True)
    path = tmp_path / "dns.json"
    try:
        monkeypatch.setenv("DOCKYARD_DNS_UPSTREAMS", f"127.0.0.1:{dead_port}")
        gw = make_link()
        dnsd.set_network(path, "net1", gw, records_for(gw))
        t0 = time.monotonic()
        assert udp_query(gw, "x.example").rcode == w.SERVFAIL
        assert tcp_query(gw, "x.example").rcode == w.SERVFAIL
        assert time.monotonic() - t0 < 1.5                # refused: no need to wait for the timeout
        assert addresses(udp_query(gw, "web")) == records_for(gw)["web"]
        dnsd.stop(path)

        monkeypatch.setenv("DOCKYARD_DNS_UPSTREAMS", f"127.0.0.1:{silent.port}")
        dnsd.set_network(path, "net1", gw, records_for(gw))
        t0 = time.monotonic()
        m = udp_query(gw, "slow.example", timeout=5)
        assert m.rcode == w.SERVFAIL and m.questions[0].name == "slow.example"
        assert 1.8 < time.monotonic() - t0 < 4
        assert silent.seen == [("udp", "slow.example")]
    finally:
        dnsd.stop(path)
        silent.close()


def test_no_upstream_gives_servfail(tmp_path: Path, make_link: Callable[..., str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_DNS_UPSTREAMS", "")
    path = tmp_path / "dns.json"
    try:
        gw = make_link()
        dnsd.set_network(path, "net1", gw, records_for(gw))
        assert udp_query(gw, "x.example").rcode == w.SERVFAIL
        assert json.loads((tmp_path / "dns.json.status").read_text())["upstreams"] == []
    finally:
        dnsd.stop(path)


def test_two_networks_answer_only_their_own_names(table: Path, make_link: Callable[..., str],
                                                  upstream: FakeUpstream) -> None:
    gw1, gw2 = make_link(), make_link()
    dnsd.set_network(table, "net1", gw1, {"web": [gw1[:-1] + "2"]})
    dnsd.set_network(table, "net2", gw2, {"db": [gw2[:-1] + "2"]})
    assert addresses(udp_query(gw1, "web")) == [gw1[:-1] + "2"]
    assert addresses(udp_query(gw2, "db")) == [gw2[:-1] + "2"]
    assert addresses(udp_query(gw1, "db")) == [FAKE_PREFIX + "1"]     # forwarded, not net2's
    assert addresses(tcp_query(gw2, "web")) == [FAKE_PREFIX + "2"]
    assert upstream.seen == [("udp", "db"), ("tcp", "web")]


def test_reload_sees_new_records_at_once(table: Path, make_link: Callable[..., str], upstream: FakeUpstream) -> None:
    gw = make_link()
    dnsd.set_network(table, "net1", gw, {"web": [gw[:-1] + "2"]})
    pid = dnsd.server_pid(table)
    for i in range(3, 8):
        t0 = time.monotonic()
        dnsd.set_network(table, "net1", gw, {"web": [gw[:-1] + "2"], f"c{i}": [f"{gw[:-1]}{i}"]})
        assert time.monotonic() - t0 < 0.5
        assert addresses(udp_query(gw, f"c{i}")) == [f"{gw[:-1]}{i}"]
        if i > 3:
            assert addresses(udp_query(gw, f"c{i - 1}")) == [FAKE_PREFIX + str(i - 3)]   # gone: forwarded
    assert dnsd.server_pid(table) == pid                 # one server, reloaded in place


def test_drop_network_stops_listening_then_exits(table: Path, make_link: Callable[..., str]) -> None:
    gw1, gw2 = make_link(), make_link()
    dnsd.set_network(table, "net1", gw1, {"web": [gw1[:-1] + "2"]})
    dnsd.set_network(table, "net2", gw2, {"db": [gw2[:-1] + "2"]})
    pid = dnsd.server_pid(table)
    assert pid is not None
    dnsd.drop_network(table, "net1")
    with pytest.raises(OSError):                       # refused (ICMP) or timed out
        udp_query(gw1, "web", timeout=1)
    with pytest.raises(OSError):
        tcp_query(gw1, "web", timeout=1)
    assert addresses(udp_query(gw2, "db")) == [gw2[:-1] + "2"]
    dnsd.drop_network(table, "net1")                   # already gone: a no-op
    dnsd.drop_network(table, "net2")
    assert gone(pid)
    assert dnsd.server_pid(table) is None
    assert not Path(f"{table}.pid").exists() and not Path(f"{table}.status").exists()
    assert json.loads(table.read_text())["networks"] == {}


def test_garbage_does_not_crash_the_server(table: Path, make_link: Callable[..., str]) -> None:
    gw = make_link()
    dnsd.set_network(table, "net1", gw, records_for(gw))
    pid = dnsd.server_pid(table)
    q = w.encode(w.make_query("web", w.TYPE_A, 77))
    junk = [b"", b"x", b"\0" * 12, os.urandom(300), q[:15], q[:12] + b"\xc0\x0c" * 10,
            struct.pack("!6H", 9, 0x7800, 1, 0, 0, 0) + q[12:], struct.pack("!6H", 9, 0, 2, 0, 0, 0) + q[12:] * 2,
            struct.pack("!6H", 9, w.QR, 1, 0, 0, 0) + q[12:]]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        for data in junk:
            s.sendto(data, (gw, 53))
        replies = []
        try:
            while True:
                replies.append(w.parse(s.recv(4096)))
        except TimeoutError:
            pass
    rcodes = sorted(m.rcode for m in replies)
    assert w.NOTIMP in rcodes and w.FORMERR in rcodes and w.NOERROR not in rcodes
    for data in (b"\x00", b"\xff\xff" + b"a" * 100, struct.pack("!H", 5) + b"abcde"):
        with socket.create_connection((gw, 53), timeout=2) as c:
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            c.settimeout(2)
            while c.recv(4096):
                pass                                    # the server closes it
    # a half-closed TCP client still gets its answer
    with socket.create_connection((gw, 53), timeout=2) as c:
        c.sendall(struct.pack("!H", len(q)) + q)
        c.shutdown(socket.SHUT_WR)
        reply = w.parse(_recv_exact(c, struct.unpack("!H", _recv_exact(c, 2))[0]))
        assert reply.id == 77 and addresses(reply) == records_for(gw)["web"]
    assert dnsd.server_pid(table) == pid
    assert addresses(udp_query(gw, "web")) == records_for(gw)["web"]


def test_big_answers_truncate_over_udp_only(table: Path, make_link: Callable[..., str]) -> None:
    gw = make_link()
    many = [f"{gw[:-1]}{i}" for i in range(2, 62)]
    dnsd.set_network(table, "net1", gw, {"big": many})
    m = udp_query(gw, "big")
    assert m.truncated and m.answers == ()
    assert addresses(udp_query(gw, "big", edns=4096)) == many      # 60 A records fit in 1232
    assert addresses(tcp_query(gw, "big")) == many


def test_missing_address_fails_then_binds_when_it_appears(table: Path, make_link: Callable[..., str]) -> None:
    name, ip = make_link(address=False).split()
    with pytest.raises(FailedPrecondition, match="cannot listen"):
        dnsd.set_network(table, "net1", ip, {"web": [ip[:-1] + "2"]})
    assert dnsd.server_pid(table) is not None           # the server stays up and retries
    add_link(name, ip, make_link.links)                  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while ip not in json.loads(Path(f"{table}.status").read_text())["listening"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert addresses(udp_query(ip, "web")) == [ip[:-1] + "2"]


def test_stop_and_restart_and_foreign_pidfile(table: Path, make_link: Callable[..., str]) -> None:
    gw = make_link()
    dnsd.set_network(table, "net1", gw, records_for(gw))
    pid = dnsd.server_pid(table)
    assert pid is not None
    dnsd.stop(table)
    assert gone(pid) and dnsd.server_pid(table) is None
    Path(f"{table}.pid").write_text(f"{os.getpid()}\n")          # a pid that is not a server
    assert dnsd.server_pid(table) is None
    dnsd.stop(table)                                             # must not signal that pid
    dnsd.set_network(table, "net1", gw, records_for(gw))         # starts a new server
    new = dnsd.server_pid(table)
    assert new not in (None, pid, os.getpid())
    assert addresses(tcp_query(gw, "db")) == records_for(gw)["db"]


def test_concurrent_set_network_starts_one_server(table: Path, make_link: Callable[..., str]) -> None:
    gws = [make_link() for _ in range(4)]
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            dnsd.set_network(table, f"net{i}", gws[i], {f"c{i}": [gws[i][:-1] + "2"]})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    status = json.loads(Path(f"{table}.status").read_text())
    assert sorted(status["listening"]) == sorted(gws)
    for i, gw in enumerate(gws):
        assert addresses(udp_query(gw, f"c{i}")) == [gw[:-1] + "2"]
    servers = [p for p in os.listdir("/proc") if p.isdigit() and dnsd._proc_is_server(int(p), str(table))]
    assert servers == [str(status["pid"])]


def test_table_upstreams_when_no_env(tmp_path: Path, make_link: Callable[..., str], upstream: FakeUpstream,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_DNS_UPSTREAMS", raising=False)
    path = tmp_path / "dns.json"
    path.write_text(json.dumps({"networks": {}, "upstreams": [f"127.0.0.1:{upstream.port}"]}))
    try:
        gw = make_link()
        dnsd.set_network(path, "net1", gw, records_for(gw))
        assert json.loads(Path(f"{path}.status").read_text())["upstreams"] == [f"127.0.0.1:{upstream.port}"]
        assert addresses(udp_query(gw, "far.example")) == [FAKE_PREFIX + "1"]
        assert json.loads(path.read_text())["upstreams"] == [f"127.0.0.1:{upstream.port}"]   # kept
    finally:
        dnsd.stop(path)


def test_upstream_syntax() -> None:
    assert dnsserver._hostport("127.0.0.53") == ("127.0.0.53", 53)
    assert dnsserver._hostport(" 127.0.0.1:5399 ") == ("127.0.0.1", 5399)
    assert dnsserver._hostport("fe80::1%eth0") == ("fe80::1", 53)
    assert dnsserver._hostport("[::1]:5353") == ("::1", 5353)
    with pytest.raises(ValueError):
        dnsserver._hostport("1.2.3.4:x")
    with pytest.raises(OSError):
        dnsserver._hostport("not-an-ip")


def test_libc_and_busybox_resolvers_accept_the_answers(table: Path, make_link: Callable[..., str],
                                                       upstream: FakeUpstream, tmp_path: Path) -> None:
    """Real stub resolvers (glibc's via getent, busybox nslookup) pointed at the gateway by a
    private mount of /etc/resolv.conf, as a container's resolv.conf would point them."""
    gw = make_link()
    recs = records_for(gw)
    dnsd.set_network(table, "net1", gw, recs)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {gw}\noptions ndots:0 timeout:2 attempts:1\n")
    script = (f"mount --bind {resolv} /etc/resolv.conf && getent ahostsv4 web && getent hosts "
              f"{recs['db'][0]} && getent ahostsv4 outside.example")
    p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[0] == recs["web"][0]
    assert any(line.split() == [recs["db"][0], "db"] for line in lines)
    assert lines[-1].split()[0].startswith(FAKE_PREFIX)
    p = subprocess.run(["busybox", "nslookup", "web-alias", gw], capture_output=True, text=True, timeout=20)
    assert recs["web"][0] in p.stdout, p.stdout + p.stderr


def test_next_upstream_after_refusal_or_silence(tmp_path: Path, make_link: Callable[..., str],
                                                upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    silent = FakeUpstream(silent=True)
    path = tmp_path / "dns.json"
    try:
        monkeypatch.setenv("DOCKYARD_DNS_UPSTREAMS", f"127.0.0.1:{dead_port},127.0.0.1:{upstream.port}")
        gw = make_link()
        dnsd.set_network(path, "net1", gw, records_for(gw))
        t0 = time.monotonic()
        assert addresses(udp_query(gw, "a.example")) == [FAKE_PREFIX + "1"]
        assert addresses(tcp_query(gw, "b.example")) == [FAKE_PREFIX + "2"]
        assert time.monotonic() - t0 < 0.5
        dnsd.stop(path)

        monkeypatch.setenv("DOCKYARD_DNS_UPSTREAMS", f"127.0.0.1:{silent.port},127.0.0.1:{upstream.port}")
        dnsd.set_network(path, "net1", gw, records_for(gw))
        t0 = time.monotonic()
        assert addresses(udp_query(gw, "c.example")) == [FAKE_PREFIX + "3"]
        assert 0.8 < time.monotonic() - t0 < 1.8           # half the 2 s budget each
        assert silent.seen == [("udp", "c.example")]
    finally:
        dnsd.stop(path)
        silent.close()


def test_pipelined_tcp_queries_on_one_connection(table: Path, make_link: Callable[..., str],
                                                 upstream: FakeUpstream) -> None:
    gw = make_link()
    recs = records_for(gw)
    dnsd.set_network(table, "net1", gw, recs)
    names = ["web", "db", "far.example", "0123456789ab"]
    wire = b"".join(struct.pack("!H", len(d)) + d
                    for d in (w.encode(w.make_query(n, w.TYPE_A, i)) for i, n in enumerate(names)))
    got = {}
    with socket.create_connection((gw, 53), timeout=3) as c:
        c.sendall(wire)                                  # all four in one segment
        for _ in names:
            m = w.parse(_recv_exact(c, struct.unpack("!H", _recv_exact(c, 2))[0]))
            got[names[m.id]] = addresses(m)
    assert got == {"web": recs["web"], "db": recs["db"], "far.example": [FAKE_PREFIX + "1"],
                   "0123456789ab": recs["web"]}


def test_many_queries_stay_fast(table: Path, make_link: Callable[..., str]) -> None:
    gw = make_link()
    dnsd.set_network(table, "net1", gw, {f"c{i}": [f"{gw[:-1]}{i + 2}"] for i in range(200)})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((gw, 53))
        t0 = time.monotonic()
        for i in range(500):
            s.send(w.encode(w.make_query(f"c{i % 200}", w.TYPE_A, i)))
            m = w.parse(s.recv(4096))
            assert m.id == i and addresses(m) == [f"{gw[:-1]}{i % 200 + 2}"]
        assert time.monotonic() - t0 < 2.0
