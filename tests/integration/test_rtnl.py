"""dockyard.network (rtnl, netns, veth) against the real kernel, as root.

Every link is named `dyt` + random hex and every namespace lives under the test's tmp dir;
fixtures remove them (links, mounts, files) even when a test fails. Traffic goes only between
a namespace made here and a bridge made here, on a random 10.231.X.0/24.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import subprocess
import threading
import time

import pytest

from dockyard.errors import AlreadyExists, Conflict, InvalidArgument
from dockyard.network import netns, veth
from dockyard.network.rtnl import Netlink

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates links and namespaces")


def ip(*args: str, ns: str | None = None) -> list[dict]:
    argv = (["nsenter", f"--net={ns}"] if ns else []) + ["ip", "-j", *args]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def ping(ns: str, address: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={ns}", "busybox", "ping", "-c1", "-W1", address],
                          capture_output=True, text=True, timeout=10)


def host_link(name: str) -> dict | None:
    return next((l for l in ip("link") if l["ifname"] == name), None)


def in_ns(path: str, method: str, *args):
    """Netlink().<method>(*args) inside the namespace at `path`."""
    def call():
        with Netlink() as nl:
            return getattr(nl, method)(*args)
    return netns.run_in(path, call)


def _wait_gone(name: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while host_link(name) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def names():
    """name() → a fresh 'dyt' + 6 hex link name; every such host link is deleted at the end."""
    made: list[str] = []

    def name(suffix: str = "") -> str:
        n = f"dyt{secrets.token_hex(3)}{suffix}"
        made.append(n)
        return n

    yield name
    with Netlink() as nl:
        for n in reversed(made):
            nl.del_link(n, missing_ok=True)


@pytest.fixture
def nsdir(tmp_path):
    """A directory for namespaces; every namespace mounted under it is removed at the end."""
    d = tmp_path / "netns"
    yield str(d)
    with open("/proc/mounts") as f:
        for line in f:
            target = line.split()[1]
            if target.startswith(str(d) + "/"):
                netns.remove(target)
    for parent, _dirs, files in os.walk(d):
        for f in files:
            netns.remove(os.path.join(parent, f))


@pytest.fixture
def subnet():
    """A random 10.231.X.0/24 as (prefix 'X.Y.Z.', bridge address)."""
    prefix = f"10.231.{secrets.randbelow(250) + 2}."
    return prefix, prefix + "1"


def test_netns_create_is_netns_remove(nsdir):
    path = f"{nsdir}/a/b"
    netns.create(path)
    assert netns.is_netns(path)
    links = ip("link", ns=path)
    assert [(l["ifname"], "UP" in l["flags"]) for l in links] == [("lo", True)]
    assert ping(path, "127.0.0.1").returncode == 0
    with pytest.raises(AlreadyExists, match="already exists"):
        netns.create(path)
    assert netns.is_netns(path)  # the refusal left it alone
    netns.remove(path)
    assert not os.path.exists(path)
    netns.remove(path)  # idempotent
    assert not netns.is_netns(path)
    assert not any(path in line for line in open("/proc/mounts"))


def test_is_netns_false_for_others(nsdir, tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    assert not netns.is_netns(str(plain))
    assert not netns.is_netns(str(tmp_path / "missing"))
    assert not netns.is_netns("/proc/self/ns/mnt")  # nsfs, but not a network namespace
    assert netns.is_netns("/proc/self/ns/net")
    os.mkfifo(tmp_path / "fifo")
    assert not netns.is_netns(str(tmp_path / "fifo"))  # and does not block opening it


def test_netns_create_failure_leaves_nothing(nsdir, monkeypatch):
    path = f"{nsdir}/broken"

    def failing_mount(*a, **k):
        raise OSError(errno.EPERM, "mount refused (test)", path)

    monkeypatch.setattr(netns, "mount", failing_mount)
    with pytest.raises(PermissionError):
        netns.create(path)
    assert not os.path.exists(path)


def test_netns_create_reuses_a_stale_file(nsdir):
    os.makedirs(nsdir)
    path = f"{nsdir}/stale"
    open(path, "w").close()
    netns.create(path)
    assert netns.is_netns(path)
    netns.remove(path)


def test_run_in_moves_only_a_helper_thread(nsdir):
    path = f"{nsdir}/r"
    netns.create(path)
    mine = os.stat("/proc/thread-self/ns/net").st_ino
    inside = netns.run_in(path, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
    assert inside == os.stat(path).st_ino != mine
    assert os.stat("/proc/thread-self/ns/net").st_ino == mine
    fd = os.open(path, os.O_RDONLY)
    try:
        assert netns.run_in(fd, lambda a, b: a + b, 2, 3) == 5
    finally:
        os.close(fd)

    def boom() -> None:
        raise ValueError("from inside")

    with pytest.raises(ValueError, match="from inside"):
        netns.run_in(path, boom)
    with pytest.raises(FileNotFoundError):
        netns.run_in(f"{nsdir}/missing", boom)
    # a socket made in there stays there
    with netns.run_in(path, Netlink) as nl:
        assert [l.name for l in nl.links()] == ["lo"]
    assert threading.active_count() >= 1


def test_bridge_address_mtu_and_errors(names, subnet):
    br = names()
    prefix, gw = subnet
    with Netlink() as nl:
        nl.add_bridge(br, mtu=1450)
        link = nl.link(br)
        assert link is not None and link.kind == "bridge" and link.mtu == 1450 and not link.up
        assert nl.link_index(br) == link.index == host_link(br)["ifindex"]
        assert link in nl.links()
        with pytest.raises(FileExistsError, match=br) as e:
            nl.add_bridge(br)
        assert e.value.errno == errno.EEXIST
        nl.add_addr(br, gw + "/24")
        with pytest.raises(FileExistsError, match=f"{gw}/24.*{br}"):
            nl.add_addr(br, gw + "/24")
        nl.set_up(br)
        nl.set_mtu(br, 1400)
        assert f"{gw}/24" in nl.addrs(br)
        (info,) = ip("addr", "show", "dev", br)
        v4 = [a for a in info["addr_info"] if a["family"] == "inet"]
        assert [(a["local"], a["prefixlen"], a["broadcast"]) for a in v4] == [(gw, 24, prefix + "255")]
        assert info["mtu"] == 1400 and "UP" in info["flags"]
        assert any(r["dst"] == prefix + "0/24" and r["dev"] == br for r in ip("route"))
        nl.del_addr(br, gw + "/24")
        assert f"{gw}/24" not in nl.addrs(br)
        nl.set_down(br)
        assert not nl.link(br).up
        nl.del_link(br)
        assert nl.link(br) is None and nl.link_index(br) is None and host_link(br) is None
        with pytest.raises(OSError, match=f"delete link {br}") as e:
            nl.del_link(br)
        assert e.value.errno == errno.ENODEV
        nl.del_link(br, missing_ok=True)
        for call in (lambda: nl.set_up(br), lambda: nl.add_addr(br, gw + "/24"), lambda: nl.addrs(br)):
            with pytest.raises(OSError, match=br) as e:
                call()
            assert e.value.errno == errno.ENODEV
        with pytest.raises(InvalidArgument):
            nl.add_bridge("dyt-name-too-long")


def test_veth_step_by_step_as_the_engine_does_it(names, nsdir, subnet):
    """The realistic sequence with single calls: veth with the peer made in the namespace,
    host end on the bridge, then rename, MAC, address, up and default route inside."""
    prefix, gw = subnet
    br, host = names("b"), names("v")
    path = f"{nsdir}/c1"
    mac = "02:42:0a:e7:00:02"
    with Netlink() as nl:
        nl.add_bridge(br)
        nl.add_addr(br, gw + "/24")
        nl.set_up(br)
        t0 = time.perf_counter()
        netns.create(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            nl.add_veth(host, "eth0tmp", peer_netns_fd=fd)
            assert nl.link("eth0tmp") is None  # never on the host
            nl.set_master(host, br)
            nl.set_up(host)

            def inside() -> None:
                with Netlink() as c:
                    c.rename("eth0tmp", "eth0")
                    c.set_mac("eth0", mac)
                    c.add_addr("eth0", prefix + "2/24")
                    c.set_up("eth0")
                    c.add_route("default", gw)

            netns.run_in(fd, inside)
        finally:
            os.close(fd)
        elapsed = time.perf_counter() - t0
        print(f"step-by-step netns + veth set-up: {elapsed * 1e3:.2f} ms")
        link = nl.link(host)
        assert link.kind == "veth" and link.master == nl.link_index(br) and link.up
    eth0 = next(l for l in ip("addr", ns=path) if l["ifname"] == "eth0")
    assert eth0["address"] == mac and "UP" in eth0["flags"]
    assert (prefix + "2", 24) in [(a["local"], a["prefixlen"]) for a in eth0["addr_info"]]
    assert {"dst": "default", "gateway": gw, "dev": "eth0"}.items() <= ip("route", ns=path)[0].items()
    assert ping(path, gw).returncode == 0, ping(path, gw).stdout
    netns.remove(path)
    assert _wait_gone(host), "the host end outlived the namespace"


def test_attach_fast_path_and_remove(names, nsdir, subnet):
    """What a container start and stop cost: netns.create + veth.attach, then netns.remove
    (the pair goes with the namespace, asynchronously); and veth.detach, the synchronous way."""
    prefix, gw = subnet
    br = names("b")
    veth.ensure_bridge(br, gw + "/24")
    path = f"{nsdir}/c2"
    runs = []
    for i in range(6):
        host = names("v")
        t0 = time.perf_counter()
        netns.create(path)
        veth.attach(path, br, host, "eth0", prefix + "2/24", gw, "02:42:0a:e7:00:03")
        t1 = time.perf_counter()
        if i == 0:
            links = {l.name: l for l in in_ns(path, "links")}
            assert set(links) == {"lo", "eth0"} and links["eth0"].mac == "02:42:0a:e7:00:03" and links["eth0"].up
            assert in_ns(path, "addrs", "eth0", 2) == [prefix + "2/24"]
            routes = in_ns(path, "routes")
            assert [(r.dst, r.gateway) for r in routes][0] == ("default", gw)
            assert ping(path, gw).returncode == 0
        t2 = time.perf_counter()
        if i == 5:
            veth.detach(host)
            assert host_link(host) is None
        t3 = time.perf_counter()
        netns.remove(path)
        t4 = time.perf_counter()
        assert not os.path.exists(path)
        assert _wait_gone(host), "the host end outlived the namespace"
        t5 = time.perf_counter()
        runs.append((t1 - t0, t3 - t2, t4 - t3, t5 - t4))
    print("\ncreate+attach / detach / remove / host end gone after (ms):\n  " + "\n  ".join(
        " / ".join(f"{x * 1e3:.2f}" for x in r) for r in runs))
    best = min(a + r for a, _, r, _ in runs[:5])
    assert best < 0.020, f"container network set-up and tear-down took {best * 1e3:.1f} ms"


def test_attach_right_after_remove_reuses_the_host_name(names, nsdir, subnet):
    """A quick restart: the old pair is still being freed when the same host name comes back."""
    prefix, gw = subnet
    br, host = names("b"), names("v")
    veth.ensure_bridge(br, gw + "/24")
    path = f"{nsdir}/again"
    for _ in range(3):
        netns.create(path)
        veth.attach(path, br, host, "eth0", prefix + "2/24", gw, None)
        assert host_link(host)["master"] == br
        netns.remove(path)
    assert _wait_gone(host)
    other = names("o")
    with Netlink() as nl:
        nl.add_bridge(other)  # a link of another kind under that name is not replaced
    netns.create(path)
    with pytest.raises(FileExistsError, match=other):
        veth.attach(path, br, other, "eth0", prefix + "2/24", gw, None)
    assert host_link(other)["link_type"] == "ether" and [l["ifname"] for l in ip("link", ns=path)] == ["lo"]


def test_attach_failure_removes_the_pair(names, nsdir, subnet):
    prefix, gw = subnet
    br, host = names("b"), names("v")
    veth.ensure_bridge(br, gw + "/24")
    path = f"{nsdir}/c3"
    netns.create(path)
    with pytest.raises(OSError) as e:  # the gateway is not on the container's subnet
        veth.attach(path, br, host, "eth0", "10.232.0.2/24", gw, None)
    assert e.value.errno == errno.ENETUNREACH and "route default" in str(e.value)
    assert host_link(host) is None
    assert [l["ifname"] for l in ip("link", ns=path)] == ["lo"]
    missing = names("x")
    with pytest.raises(OSError, match=missing) as e:  # the bridge is missing
        veth.attach(path, missing, host, "eth0", prefix + "2/24", gw, None)
    assert e.value.errno == errno.ENODEV


def test_ensure_bridge_is_idempotent(names, subnet):
    prefix, gw = subnet
    br, other = names("b"), names("v")
    first = veth.ensure_bridge(br, gw + "/24", mtu=1400)
    assert first.kind == "bridge" and first.up and first.mtu == 1400
    with Netlink() as nl:
        nl.set_down(br)
        nl.del_addr(br, gw + "/24")
        nl.add_addr(br, prefix + "9/24")
        again = veth.ensure_bridge(br, gw + "/24")
        assert again.index == first.index and again.up
        # an address left from an older network record goes: its route would shadow another network
        assert set(nl.addrs(br, 2)) == {f"{gw}/24"}
        veth.ensure_bridge(br, gw + "/24")
        assert set(nl.addrs(br, 2)) == {f"{gw}/24"}
        nl.add_veth(other, names("p"))
        with pytest.raises(Conflict, match="not a bridge"):
            veth.ensure_bridge(other, gw + "/24")


def test_links_move_rename_master_routes(names, nsdir, subnet):
    prefix, gw = subnet
    br, a, b = names("b"), names("a"), names("z")
    path = f"{nsdir}/m"
    netns.create(path)
    with Netlink() as nl:
        nl.add_bridge(br)
        nl.add_veth(a, b, mtu=1300, mac="02:00:00:00:00:aa", up=True)
        la, lb = nl.link(a), nl.link(b)
        assert (la.kind, lb.kind, la.mtu, lb.mtu, la.mac, la.up, lb.up) == \
            ("veth", "veth", 1300, 1300, "02:00:00:00:00:aa", True, False)
        with pytest.raises(FileExistsError, match=f"add veth {a}"):
            nl.add_veth(a, names("q"))
        nl.set_master(a, br)
        assert nl.link(a).master == nl.link_index(br)
        nl.set_master(a, None)
        assert nl.link(a).master is None
        new = names("n")
        nl.rename(a, new)
        assert nl.link(a) is None and nl.link(new).index == la.index
        nl.add_addr(new, prefix + "5/24")
        nl.add_route(prefix.replace("10.231", "10.233") + "0/24", None, new)
        nl.add_route(prefix.replace("10.231", "10.234") + "0/24", prefix + "6", None, metric=7)
        mine = {(r.dst, r.gateway) for r in nl.routes() if r.oif == la.index}
        assert {(prefix.replace("10.231", "10.233") + "0/24", None),
                (prefix.replace("10.231", "10.234") + "0/24", prefix + "6")} <= mine
        with pytest.raises(FileExistsError, match="route"):
            nl.add_route(prefix.replace("10.231", "10.233") + "0/24", None, new)
        nl.del_route(prefix.replace("10.231", "10.234") + "0/24", prefix + "6", metric=7)
        assert not any(r.gateway == prefix + "6" for r in nl.routes())
        fd = os.open(path, os.O_RDONLY)
        try:
            nl.set_netns(b, fd)
        finally:
            os.close(fd)
        assert nl.link(b) is None
        assert b in [l["ifname"] for l in ip("link", ns=path)]
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            with pytest.raises(OSError, match=f"move link {b}") as e:
                nl.set_netns(b, fd)
        finally:
            os.close(fd)
        assert e.value.errno == errno.ENODEV
        with pytest.raises(InvalidArgument):
            nl.set_mac(new, "not-a-mac")
        with pytest.raises(InvalidArgument):
            nl.add_route("default", None)
    netns.remove(path)
