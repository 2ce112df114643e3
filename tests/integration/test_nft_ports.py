"""Packet filter and host-port reservation on the real kernel (network.nft, network.ports).

A lab per module: bridge A (subnet 10.213.x.0/24) with a server netns and a client netns,
bridge B (10.213.y.0/24) with a second server netns; its address doubles as "a non-loopback
address of the host". Traffic goes only between the host and these namespaces. Everything
(servers by PID, netns, links, the nft table) is removed even when a test fails.
"""

from __future__ import annotations

import inspect
import json
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.network import nft, ports
from dockyard.network.ports import PortMapping

pytestmark = pytest.mark.kernel

SERVER = r"""
import selectors, socket, sys
tag, port = sys.argv[1], int(sys.argv[2])
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", port)); t.listen(16)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
sel = selectors.DefaultSelector(); sel.register(t, selectors.EVENT_READ); sel.register(u, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        if key.fileobj is t:
            c, peer = t.accept()
            c.sendall(f"{tag} {peer[0]}\n".encode()); c.close()
        else:
            data, peer = u.recvfrom(100)
            u.sendto(f"{tag} {peer[0]} {data.decode()}\n".encode(), peer)
"""

SERVER_PORT = 8000


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def request(host: str, port: int, proto: str = "tcp", timeout: float = 2.0) -> str:
    """One TCP connection (read the server's line) or one UDP round trip; 'ERR <kind>' on failure."""
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=timeout) as s:
                return s.makefile().readline().strip()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(b"ping", (host, port))
            return s.recv(200).decode().strip()
    except OSError as e:
        return f"ERR {type(e).__name__}"


# the same function, run inside a namespace
NS_CLIENT = ("import socket, sys\n" + inspect.getsource(request)
             + "print(request(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))\n")


@dataclass
class Lab:
    sfx: str
    table: str
    bridge_a: str
    bridge_b: str
    net_a: str  # "10.213.x"
    net_b: str
    ns: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def gw(self, net: str) -> str:
        return f"{net}.1"

    def ns_request(self, ns: str, host: str, port: int, proto: str = "tcp", timeout: float = 2.0) -> str:
        p = subprocess.run(["ip", "netns", "exec", self.ns[ns], sys.executable, "-c", NS_CLIENT,
                            host, str(port), proto, str(timeout)],
                           capture_output=True, text=True, timeout=timeout + 20)
        return p.stdout.strip() or f"ERR {p.stderr.strip()}"


def _free_nets(n: int) -> list[str]:
    used = {r.get("dst", "") for r in json.loads(sh("ip", "-j", "route", "show", "table", "all"))}
    used |= {a["local"] for link in json.loads(sh("ip", "-j", "addr")) for a in link.get("addr_info", [])}
    free = [x for x in range(16, 250) if not any(u.startswith(f"10.213.{x}.") for u in used)]
    return [f"10.213.{x}" for x in random.sample(free, n)]


def _add_netns(lab: Lab, key: str, bridge: str, net: str, host_octet: int) -> None:
    name = f"dyt-{lab.sfx}-{key}"
    veth = f"dyv{lab.sfx}{key}"
    sh("ip", "netns", "add", name)
    lab.ns[key] = name
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
    lab.links.append(veth)
    sh("ip", "link", "set", veth, "master", bridge, "up")
    # a container reaching itself through a published port: with br_netfilter the DNAT'd
    # frame is bridged back out of the port it came in on (the engine must set this too)
    sh("ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
    for cmd in (["addr", "add", f"{net}.{host_octet}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                ["link", "set", "lo", "up"], ["route", "add", "default", "via", f"{net}.1"]):
        sh("ip", "-n", name, *cmd)


def _start_server(lab: Lab, key: str, tag: str) -> None:
    p = subprocess.Popen(["ip", "netns", "exec", lab.ns[key], sys.executable, "-c", SERVER, tag, str(SERVER_PORT)],
                         stdout=subprocess.PIPE, text=True)
    lab.servers.append(p)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    sfx = secrets.token_hex(3)
    net_a, net_b = _free_nets(2)
    lab = Lab(sfx=sfx, table=f"dyt_{sfx}", bridge_a=f"dyt{sfx}", bridge_b=f"dyu{sfx}", net_a=net_a, net_b=net_b)
    try:
        for br, net in ((lab.bridge_a, net_a), (lab.bridge_b, net_b)):
            sh("ip", "link", "add", br, "type", "bridge")
            lab.links.append(br)
            sh("ip", "addr", "add", f"{net}.1/24", "dev", br)
            sh("ip", "link", "set", br, "up")
        _add_netns(lab, "1", lab.bridge_a, net_a, 2)  # server A
        _add_netns(lab, "2", lab.bridge_a, net_a, 3)  # client on A
        _add_netns(lab, "3", lab.bridge_b, net_b, 2)  # server B
        _start_server(lab, "1", "A")
        _start_server(lab, "3", "B")
        nft.ensure_base(lab.table)
        nft.add_network(lab.table, lab.bridge_a, f"{net_a}.0/24", internal=False)
        nft.add_network(lab.table, lab.bridge_b, f"{net_b}.0/24", internal=False)
        yield lab
    finally:
        for p in lab.servers:
            p.kill()
            p.wait()
        for name in lab.ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for link in reversed(lab.links):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        nft.remove_table(lab.table)


@pytest.fixture
def published(lab: Lab) -> Iterator[list[tuple[str, list[PortMapping], list[socket.socket]]]]:
    """Publish helper: records owners and sockets, unpublishes and closes them after the test."""
    made: list[tuple[str, list[PortMapping], list[socket.socket]]] = []
    yield made
    for owner, _, socks in made:
        nft.unpublish(lab.table, owner)
        for s in socks:
            s.close()


def _publish(lab: Lab, made: list, server: str, *specs: tuple[str, str, int]) -> list[PortMapping]:
    """Reserve and publish (proto, host_ip, host_port) → server:8000 under a fresh owner."""
    ip = f"{lab.net_a}.2" if server == "A" else f"{lab.net_b}.2"
    bridge = lab.bridge_a if server == "A" else lab.bridge_b
    reserved = ports.reserve([PortMapping(p, h, hp, ip, SERVER_PORT) for p, h, hp in specs])
    owner = secrets.token_hex(32)
    made.append((owner, [m for m, _ in reserved], [s for _, s in reserved]))
    nft.publish(lab.table, owner, bridge, [m for m, _ in reserved])
    return [m for m, _ in reserved]


def test_loopback_and_host_address_reach_the_container(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "A", ("tcp", "", 0))
    assert m.host_port != 0
    # from 127.0.0.1: DNAT in output, route_localnet, masqueraded to the bridge address
    assert request("127.0.0.1", m.host_port) == f"A {lab.gw(lab.net_a)}"
    # a non-loopback address of the host (bridge B's); that source is in B's subnet, so it
    # leaves through A masqueraded, as Docker's `-s subnet ! -o bridge` rule does
    assert request(lab.gw(lab.net_b), m.host_port) == f"A {lab.gw(lab.net_a)}"
    # the reservation socket is still bound and took none of it
    _, socks = published[0][1], published[0][2]
    assert socks[0].getsockname()[1] == m.host_port


def test_hairpin_from_the_same_bridge(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "A", ("tcp", "", 0))
    for host in (lab.gw(lab.net_b), lab.gw(lab.net_a)):
        assert lab.ns_request("2", host, m.host_port) == f"A {lab.gw(lab.net_a)}"
    # the container reaching itself through the host port
    assert lab.ns_request("1", lab.gw(lab.net_b), m.host_port) == f"A {lab.gw(lab.net_a)}"


def test_udp_mapping(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "A", ("udp", "", 0))
    assert request("127.0.0.1", m.host_port, "udp") == f"A {lab.gw(lab.net_a)} ping"
    assert request(lab.gw(lab.net_b), m.host_port, "udp") == f"A {lab.gw(lab.net_a)} ping"
    assert lab.ns_request("2", lab.gw(lab.net_b), m.host_port, "udp") == f"A {lab.gw(lab.net_a)} ping"


def test_one_owner_several_ports_and_protocols(lab: Lab, published: list) -> None:
    m1, m2, m3 = _publish(lab, published, "A", ("tcp", "", 0), ("tcp", "127.0.0.1", 0), ("udp", "", 0))
    assert request("127.0.0.1", m1.host_port).startswith("A ")
    assert request("127.0.0.1", m2.host_port).startswith("A ")
    assert request(lab.gw(lab.net_b), m2.host_port) == "ERR ConnectionRefusedError"
    assert request(lab.gw(lab.net_b), m3.host_port, "udp").endswith(" ping")
    nft.unpublish(lab.table, published[0][0])
    assert request("127.0.0.1", m1.host_port) == "ERR ConnectionRefusedError"
    assert request("127.0.0.1", m2.host_port) == "ERR ConnectionRefusedError"


def test_host_ip_limits_the_addresses(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "A", ("tcp", "127.0.0.1", 0))
    assert request("127.0.0.1", m.host_port) == f"A {lab.gw(lab.net_a)}"
    assert request(lab.gw(lab.net_b), m.host_port) == "ERR ConnectionRefusedError"


def test_reserve_conflicts_like_docker(lab: Lab) -> None:
    (first, sock), = ports.reserve([PortMapping("tcp", "", 0, "10.0.0.2", 80)])
    try:
        port = first.host_port
        with pytest.raises(Conflict) as e:
            ports.reserve([PortMapping("tcp", "", port, "10.0.0.3", 80)])
        assert str(e.value) == f"Bind for 0.0.0.0:{port} failed: port is already allocated"
        with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
            ports.reserve([PortMapping("tcp", "127.0.0.1", port, "10.0.0.3", 80)])
        # another program holding a UDP port
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.1", 0))
        uport = other.getsockname()[1]
        try:
            free = socket.socket()
            free.bind(("0.0.0.0", 0))
            fport = free.getsockname()[1]
            free.close()
            with pytest.raises(Conflict, match=f"Bind for 0.0.0.0:{uport} failed"):
                ports.reserve([PortMapping("tcp", "", fport, "10.0.0.3", 80),
                               PortMapping("udp", "", uport, "10.0.0.3", 53)])
            # all or nothing: the first socket was closed again
            again = ports.reserve([PortMapping("tcp", "", fport, "10.0.0.3", 80)])
            ports.release(again)
        finally:
            other.close()
        assert not sock.get_inheritable()
    finally:
        sock.close()


def test_unpublish_and_owners(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "A", ("tcp", "", 0))
    owner = published[0][0]
    assert owner in nft.owners(lab.table)
    assert request("127.0.0.1", m.host_port).startswith("A ")
    nft.unpublish(lab.table, owner)
    assert owner not in nft.owners(lab.table)
    # the reservation still holds the port, so a connection is refused, not intercepted
    assert request("127.0.0.1", m.host_port) == "ERR ConnectionRefusedError"
    nft.unpublish(lab.table, owner)  # idempotent
    # publishing again (and re-publishing with other ports) replaces the owner's rules
    nft.publish(lab.table, owner, lab.bridge_a, [m])
    assert request("127.0.0.1", m.host_port).startswith("A ")
    (m2, s2), = ports.reserve([PortMapping("tcp", "", 0, f"{lab.net_b}.2", SERVER_PORT)])
    published[0][2].append(s2)
    nft.publish(lab.table, owner, lab.bridge_b, [m2])
    assert request("127.0.0.1", m2.host_port) == f"B {lab.gw(lab.net_b)}"
    assert request("127.0.0.1", m.host_port) == "ERR ConnectionRefusedError"
    assert nft.owners(lab.table) >= {owner}
    assert nft.owners("dyt_missing_" + lab.sfx) == set()


def test_publish_validates_before_touching_the_table(lab: Lab) -> None:
    with pytest.raises(InvalidArgument):
        nft.publish(lab.table, "x", lab.bridge_a, [PortMapping("tcp", "", 0, "10.0.0.2", 80)])
    with pytest.raises(InvalidArgument):
        nft.publish(lab.table, "bad owner", lab.bridge_a, [PortMapping("tcp", "", 1, "10.0.0.2", 80)])
    with pytest.raises(InvalidArgument):
        PortMapping("sctp", "", 1, "10.0.0.2", 80)
    assert "x" not in nft.owners(lab.table)


def test_networks_masquerade_isolate_and_internal(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "B", ("tcp", "", 0))
    server_b = f"{lab.net_b}.2"
    # A → published port of a container on B: forwarded, masqueraded out of B
    assert lab.ns_request("2", lab.gw(lab.net_a), m.host_port) == f"B {lab.gw(lab.net_b)}"
    # A → B's container directly (not published): dropped
    assert lab.ns_request("2", server_b, SERVER_PORT, timeout=1.0) == "ERR TimeoutError"
    # an internal network cannot leave its bridge, not even through a published port
    nft.add_network(lab.table, lab.bridge_a, f"{lab.net_a}.0/24", internal=True)
    try:
        assert lab.ns_request("2", lab.gw(lab.net_a), m.host_port, timeout=1.0) == "ERR TimeoutError"
    finally:
        nft.add_network(lab.table, lab.bridge_a, f"{lab.net_a}.0/24", internal=False)
    assert lab.ns_request("2", lab.gw(lab.net_a), m.host_port) == f"B {lab.gw(lab.net_b)}"


def test_add_and_remove_network_are_idempotent(lab: Lab) -> None:
    br = f"dyw{lab.sfx}"
    sh("ip", "link", "add", br, "type", "bridge")
    try:
        (net,) = _free_nets(1)
        nft.add_network(lab.table, br, f"{net}.0/24", internal=False)
        nft.add_network(lab.table, br, f"{net}.7/24", internal=False)  # same subnet, replaced
        listing = sh("nft", "list", "table", "ip", lab.table)
        assert listing.count(f"{net}.0/24 : jump ms_{br}") == 1
        with open(f"/proc/sys/net/ipv4/conf/{br}/route_localnet") as f:
            assert f.read().strip() == "1"
        (net2,) = _free_nets(1)
        nft.add_network(lab.table, br, f"{net2}.0/24", internal=True)  # other subnet, internal
        listing = sh("nft", "list", "table", "ip", lab.table)
        assert f"{net}.0/24" not in listing
        assert f"{net2}.0/24 : jump" not in listing  # internal: no masquerade out
        nft.remove_network(lab.table, br)
        nft.remove_network(lab.table, br)
        assert br not in sh("nft", "list", "table", "ip", lab.table)
        nft.remove_network("dyt_missing_" + lab.sfx, br)
    finally:
        subprocess.run(["ip", "link", "del", br], capture_output=True)
    with pytest.raises(NotFound, match="does not exist"):
        nft.add_network(lab.table, br, "10.213.1.0/24", internal=False)


def test_ensure_base_is_idempotent_and_keeps_state(lab: Lab, published: list) -> None:
    (m,) = _publish(lab, published, "A", ("tcp", "", 0))
    nft.ensure_base(lab.table)
    assert published[0][0] in nft.owners(lab.table)
    assert request("127.0.0.1", m.host_port).startswith("A ")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == "1"


def test_bridge_cannot_reach_host_loopback_services(lab: Lab) -> None:
    """route_localnet on the bridge must not open the host's 127.0.0.1 to containers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    ns = lab.ns["2"]
    try:
        # a hostile container routes 127.0.0.1 to its gateway instead of its own lo and sends
        # one datagram (a blind attack: the host's answer could not even get back)
        sh("ip", "-n", ns, "route", "del", "table", "local", "127.0.0.0/8", "dev", "lo")
        sh("ip", "-n", ns, "route", "del", "table", "local", "127.0.0.1", "dev", "lo")
        sh("ip", "-n", ns, "route", "add", "127.0.0.1/32", "via", lab.gw(lab.net_a))
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
        lab.ns_request("2", "127.0.0.1", port, "udp", timeout=0.2)
        with pytest.raises(TimeoutError):
            listener.recv(100)
    finally:
        listener.close()
        subprocess.run(["ip", "-n", ns, "route", "del", "127.0.0.1/32"], capture_output=True)
        subprocess.run(["ip", "-n", ns, "route", "add", "table", "local", "local", "127.0.0.0/8", "dev", "lo",
                        "proto", "kernel", "scope", "host", "src", "127.0.0.1"], capture_output=True)
        subprocess.run(["ip", "-n", ns, "route", "add", "table", "local", "local", "127.0.0.1", "dev", "lo",
                        "proto", "kernel", "scope", "host", "src", "127.0.0.1"], capture_output=True)


def test_concurrent_callers(lab: Lab) -> None:
    """Several engine processes clearing the same stale owner, or publishing at once."""
    script = (
        "import sys\n"
        "from dockyard.network import nft\n"
        "from dockyard.network.ports import PortMapping\n"
        "table, bridge, ip, base, what = sys.argv[1:6]\n"
        "if what == 'publish':\n"
        "    for i in range(5):\n"
        "        p = int(base) + i\n"
        "        nft.publish(table, f'cc{base}x{i}', bridge, [PortMapping('tcp', '', p, ip, 8000)])\n"
        "else:\n"
        "    for i in range(5):\n"
        "        nft.unpublish(table, f'cc{what}x{i}')\n"
    )
    env_ip = f"{lab.net_a}.2"
    base_ports = [41000 + 10 * i for i in range(4)]

    def run_all(whats: list[str]) -> None:
        procs = [subprocess.Popen([sys.executable, "-c", script, lab.table, lab.bridge_a, env_ip, str(b), w],
                                  stderr=subprocess.PIPE, text=True) for b, w in zip(base_ports, whats)]
        errors = [p.communicate()[1] for p in procs if p.wait() != 0]
        assert not errors, errors

    run_all(["publish"] * 4)
    assert {f"cc{b}x{i}" for b in base_ports for i in range(5)} <= nft.owners(lab.table)
    run_all([str(base_ports[0])] * 4)  # four processes unpublish the same five owners
    run_all([str(b) for b in base_ports[1:]] + [str(base_ports[0])])
    assert not {o for o in nft.owners(lab.table) if o.startswith("cc")}
