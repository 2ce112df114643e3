"""Bridge networking on the real kernel: the default bridge, user networks with DNS, published
ports through nftables, --network container:, network commands, and cleanup.

Traffic goes only between the host and the containers and bridges these tests create.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/hello && exec httpd -f -p {port} -h /www"
# busybox-static's wget goes through glibc's NSS, which crashes without /etc/nsswitch.conf in a
# rootfs that has no NSS modules: "files" is enough for addresses (names are checked with nslookup,
# which has its own resolver, and with Python in test_flask_example).
WGET = 'echo "hosts: files" > /etc/nsswitch.conf; exec wget -qO- {url}'


def _wget(*flags: str, url: str):  # -> CompletedProcess
    return dy("run", "--rm", *flags, "busybox", "sh", "-c", WGET.format(url=url))


def _name(prefix: str = "net") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _inspect(ref: str) -> dict:
    return json.loads(dy("inspect", ref, check=True).stdout)[0]


def _get(url: str, timeout: float = 5.0) -> str:
    """GET with retries while the server in the container comes up."""
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _httpd(container_cleanup, *flags: str, port: int = 8000, name: str | None = None) -> str:
    name = name or _name("web")
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, *flags, "busybox", "sh", "-c", HTTPD.format(port=port), check=True)
    return name


@pytest.fixture
def network_cleanup(container_cleanup):
    made: list[str] = []
    yield made
    if container_cleanup:
        dy("rm", "-f", *container_cleanup)  # a network is removable once its containers are gone
    for n in made:
        dy("network", "rm", n)


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_default_bridge_gives_address_route_and_hosts(container_cleanup):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sleep", "300", check=True)
    info = _inspect(name)
    ns = info["NetworkSettings"]
    ep = ns["Networks"]["bridge"]
    subnet = json.loads(dy("network", "inspect", "bridge", check=True).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
    prefix = int(subnet.split("/")[1])  # /16 unless other data roots on this host took those pools
    assert ep["IPAddress"] and ep["Gateway"] and ep["IPPrefixLen"] == prefix
    assert ns["IPAddress"] == ep["IPAddress"] and ns["MacAddress"] == ep["MacAddress"]
    assert not ep["IPAddress"].startswith(("172.17.", "10.88."))
    assert ns["SandboxKey"] and os.path.exists(ns["SandboxKey"])
    inside = dy("exec", name, "sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/hosts", check=True).stdout
    assert f"{ep['IPAddress']}/{prefix}" in inside
    assert f"default via {ep['Gateway']}" in inside
    assert f"{ep['IPAddress']}\t{info['Config']['Hostname']}" in inside
    # the host sees the bridge and the container's veth on it, and reaches the container
    bridge = json.loads(dy("network", "inspect", "bridge", check=True).stdout)[0]["Options"][
        "com.docker.network.bridge.name"]
    assert os.listdir(f"/sys/class/net/{bridge}/brif"), "no veth on the bridge"
    ping = subprocess.run(["busybox", "ping", "-c1", "-W2", ep["IPAddress"]], capture_output=True)
    assert ping.returncode == 0, ping.stdout
    # the container reaches its gateway (the host's side of the bridge)
    assert dy("exec", name, "ping", "-c1", "-W2", ep["Gateway"]).returncode == 0


def test_published_port_on_loopback_host_address_and_container_ip(container_cleanup):
    port = _free_port()
    name = _httpd(container_cleanup, "-p", f"{port}:1234", port=1234)
    info = _inspect(name)
    assert info["NetworkSettings"]["Ports"]["1234/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)}]
    assert _get(f"http://127.0.0.1:{port}/hello").startswith("hello-from-")
    ip = info["NetworkSettings"]["IPAddress"]
    gw = info["NetworkSettings"]["Gateway"]  # an address of the host (the bridge's)
    assert _get(f"http://{gw}:{port}/hello").startswith("hello-from-")
    assert _get(f"http://{ip}:1234/hello").startswith("hello-from-")
    # from another container, through the host's address (hairpin through the bridge)
    other = _name("client")
    container_cleanup.append(other)
    got = _wget("--name", other, url=f"http://{gw}:{port}/hello")
    assert got.returncode == 0 and got.stdout.startswith("hello-from-"), got.stderr
    # and the container itself, through its own published port (hairpin on its bridge port)
    got = dy("exec", name, "sh", "-c", WGET.format(url=f"http://{gw}:{port}/hello"))
    assert got.returncode == 0 and got.stdout.startswith("hello-from-"), got.stderr
    assert dy("port", name).stdout.strip() == f"1234/tcp -> 0.0.0.0:{port}"
    assert dy("port", name, "1234").stdout.strip() == f"0.0.0.0:{port}"
    ps = dy("ps", "--filter", f"name={name}", "--format", "{{.Ports}}", check=True).stdout.strip()
    assert ps == f"0.0.0.0:{port}->1234/tcp"
    # stopped: the port is free again and nothing answers
    dy("stop", "-t", "0", name, check=True)
    s = socket.socket()
    s.bind(("0.0.0.0", port))
    s.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=2)


def test_port_taken_fails_start_cleanly(container_cleanup):
    port = _free_port()
    holder = socket.socket()
    holder.bind(("0.0.0.0", port))
    holder.listen(1)
    try:
        name = _name()
        container_cleanup.append(name)
        links = _links()
        p = dy("run", "-d", "--name", name, "-p", f"{port}:80", "busybox", "sleep", "300")
        assert p.returncode == 125
        assert f"{port}" in p.stderr and "already allocated" in p.stderr
        assert "Traceback" not in p.stderr
        info = _inspect(name)
        assert not info["State"]["Running"]
        assert info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
        assert _links() - links == set(), "a veth was left behind"
    finally:
        holder.close()


def test_two_containers_cannot_publish_the_same_port(container_cleanup):
    port = _free_port()
    _httpd(container_cleanup, "-p", f"{port}:80", port=80)
    second = _name()
    container_cleanup.append(second)
    p = dy("run", "-d", "--name", second, "-p", f"{port}:80", "busybox", "sleep", "300")
    assert p.returncode == 125 and "already allocated" in p.stderr


def test_publish_all_and_ranges(container_cleanup):
    img = _name("img")
    src = _name("src")
    container_cleanup.append(src)
    dy("create", "--name", src, "busybox", "true", check=True)
    dy("commit", "-c", "EXPOSE 1234", src, img, check=True)
    try:
        name = _httpd(container_cleanup, "-P", img, port=1234)
        ports = _inspect(name)["NetworkSettings"]["Ports"]
        hp = int(ports["1234/tcp"][0]["HostPort"])
        assert hp > 0
        assert _get(f"http://127.0.0.1:{hp}/hello").startswith("hello-from-")
        lo = _free_port()
        rng = _name()
        container_cleanup.append(rng)
        p = dy("run", "-d", "--name", rng, "-p", f"{lo}-{lo + 1}:7000-7001/udp", "busybox", "sleep", "300")
        if p.returncode == 0:
            got = _inspect(rng)["NetworkSettings"]["Ports"]
            assert got["7000/udp"][0]["HostPort"] == str(lo) and got["7001/udp"][0]["HostPort"] == str(lo + 1)
        else:
            assert "already allocated" in p.stderr  # the neighbour port happened to be taken
    finally:
        dy("rm", "-f", *container_cleanup)
        dy("rmi", img)


def test_user_network_resolves_names_aliases_and_ids(container_cleanup, network_cleanup):
    net = _name("n")
    network_cleanup.append(net)
    dy("network", "create", net, check=True)
    web = _httpd(container_cleanup, "--network", net, "--network-alias", "websvc", port=8000)
    web_id = _inspect(web)["Id"]
    for host in (web, "websvc", web_id[:12]):
        got = dy("run", "--rm", "--network", net, "busybox", "nslookup", host)
        assert got.returncode == 0 and _inspect(web)["NetworkSettings"]["Networks"][net]["IPAddress"] in got.stdout, (host, got.stdout, got.stderr)
    ip = _inspect(web)["NetworkSettings"]["Networks"][net]["IPAddress"]
    got = _wget("--network", net, url=f"http://{ip}:8000/hello")
    assert got.returncode == 0 and got.stdout.startswith("hello-from-"), got.stderr
    unknown = dy("run", "--rm", "--network", net, "busybox", "nslookup", "no-such-container-x")
    assert unknown.returncode != 0
    resolv = dy("run", "--rm", "--network", net, "busybox", "cat", "/etc/resolv.conf", check=True).stdout
    gw = json.loads(dy("network", "inspect", net, check=True).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"nameserver {gw}" in resolv
    ins = json.loads(dy("network", "inspect", net, check=True).stdout)[0]
    assert web_id in ins["Containers"] and ins["Containers"][web_id]["IPv4Address"].startswith(ip + "/")
    # the default bridge does not resolve names (Docker's behaviour)
    other = _httpd(container_cleanup, port=8000)
    got = dy("run", "--rm", "--dns", "127.0.0.1", "busybox", "nslookup", other)
    assert got.returncode != 0


def test_network_container_shares_loopback(container_cleanup):
    web = _name("web")
    container_cleanup.append(web)
    dy("run", "-d", "--name", web, "busybox", "sh", "-c",
       "mkdir /www && echo shared > /www/x && exec httpd -f -p 127.0.0.1:8000 -h /www", check=True)
    got = ""
    for _ in range(50):
        p = _wget("--network", f"container:{web}", url="http://127.0.0.1:8000/x")
        got = p.stdout
        if p.returncode == 0:
            break
        time.sleep(0.1)
    assert got.strip() == "shared"


def test_network_commands(container_cleanup, network_cleanup):
    net = _name("n")
    network_cleanup.append(net)
    nid = dy("network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254",
             "--ip-range", "10.231.7.128/25", "--label", "team=a", "--internal", net, check=True).stdout.strip()
    assert len(nid) == 64
    ls = dy("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout.splitlines()
    assert {"bridge bridge", "host host", "none null", f"{net} bridge"} <= set(ls)
    assert dy("network", "ls", "-q", "-f", f"name={net}", check=True).stdout.strip() == nid[:12]
    assert dy("network", "ls", "-q", "-f", "label=team=a", check=True).stdout.split() == [nid[:12]]
    ins = json.loads(dy("network", "inspect", net, check=True).stdout)[0]
    assert ins["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24", "Gateway": "10.231.7.254", "IPRange": "10.231.7.128/25"}]
    assert ins["Internal"] is True and ins["Labels"] == {"team": "a"} and ins["Driver"] == "bridge"
    c = _name()
    container_cleanup.append(c)
    dy("run", "-d", "--name", c, "--network", net, "--ip", "10.231.7.200", "--mac-address", "02:42:0a:e7:07:99",
       "busybox", "sleep", "300", check=True)
    ep = _inspect(c)["NetworkSettings"]["Networks"][net]
    assert ep["IPAddress"] == "10.231.7.200" and ep["MacAddress"] == "02:42:0a:e7:07:99"
    p = dy("network", "rm", net)
    assert p.returncode == 1 and "active endpoints" in p.stderr
    dup = dy("network", "create", net)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    bad = dy("run", "--rm", "--network", "no-such-net-x", "busybox", "true")
    assert bad.returncode == 125 and "network no-such-net-x not found" in bad.stderr
    # connect a second network to a running container, then disconnect it
    net2 = _name("n")
    network_cleanup.append(net2)
    dy("network", "create", net2, check=True)
    dy("network", "connect", "--alias", "second", net2, c, check=True)
    eps = _inspect(c)["NetworkSettings"]["Networks"]
    assert set(eps) == {net, net2} and eps[net2]["IPAddress"]
    assert eps[net2]["IPAddress"] in dy("exec", c, "ip", "-o", "-4", "addr", check=True).stdout
    dy("network", "disconnect", net2, c, check=True)
    assert set(_inspect(c)["NetworkSettings"]["Networks"]) == {net}
    dy("rm", "-f", c, check=True)
    dy("network", "rm", net, net2, check=True)
    assert dy("network", "inspect", net).returncode == 1
    assert dy("network", "rm", "bridge").returncode == 1


def test_prune_removes_unused_networks_only(container_cleanup, network_cleanup):
    used, unused = _name("n"), _name("n")
    network_cleanup.extend([used, unused])
    for n in (used, unused):
        dy("network", "create", "--label", "prunetest=1", n, check=True)
    c = _name()
    container_cleanup.append(c)
    dy("create", "--name", c, "--network", used, "busybox", "true", check=True)
    out = dy("network", "prune", "-f", "--filter", "label=prunetest=1", check=True).stdout
    assert unused in out and used not in out
    assert dy("network", "inspect", used).returncode == 0


def test_everything_goes_away_after_rm(container_cleanup):
    port = _free_port()
    links = _links()
    name = _httpd(container_cleanup, "-p", f"{port}:80", port=80)
    sandbox = _inspect(name)["NetworkSettings"]["SandboxKey"]
    assert len(_links() - links) >= 1
    dy("rm", "-f", name, check=True)
    assert _links() - links <= {n for n in _links() - links if not n.startswith("veth")}
    assert not os.path.exists(sandbox)
    s = socket.socket()
    s.bind(("0.0.0.0", port))  # the reservation is gone
    s.close()


def test_container_exiting_by_itself_releases_its_network(container_cleanup):
    name = _name()
    container_cleanup.append(name)
    port = _free_port()
    links = _links()
    dy("run", "-d", "--name", name, "-p", f"{port}:80", "busybox", "sleep", "1", check=True)
    assert dy("wait", name, check=True).stdout.strip() == "0"
    deadline = time.monotonic() + 10
    while {n for n in _links() - links if n.startswith("veth")} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not {n for n in _links() - links if n.startswith("veth")}
    info = _inspect(name)
    assert info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    # and it starts again with its port
    dy("start", name, check=True)
    assert _inspect(name)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)


def test_add_host_gateway_and_hostname(container_cleanup):
    out = dy("run", "--rm", "--hostname", "box1", "--add-host", "myhost:host-gateway", "busybox",
             "sh", "-c", "hostname; cat /etc/hosts", check=True).stdout
    gw = json.loads(dy("network", "inspect", "bridge", check=True).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert out.splitlines()[0] == "box1"
    assert f"{gw}\tmyhost" in out


def test_stale_port_rules_are_cleared_by_the_next_publish(container_cleanup):
    """Rules whose container is not running (everything but the shims crashed) go away."""
    from dockyard.engine import networks
    from dockyard.network import nft, ports
    from dockyard.paths import Paths

    table = networks.nft_table(Paths.from_env())
    c = _name()
    container_cleanup.append(c)
    dy("run", "-d", "--name", c, "-p", f"{_free_port()}:80", "busybox", "sleep", "300", check=True)
    ghost = "0123456789ab"
    nft.publish(table, ghost, networks.settings(Paths.from_env()).default_bridge,
                [ports.PortMapping("tcp", "", _free_port(), "10.0.0.9", 80)])
    try:
        assert ghost in nft.owners(table)
        other = _name()
        container_cleanup.append(other)
        dy("run", "-d", "--name", other, "-p", f"{_free_port()}:80", "busybox", "sleep", "300", check=True)
        assert ghost not in nft.owners(table)
        assert _inspect(c)["Id"][:12] in nft.owners(table)
    finally:
        nft.unpublish(table, ghost)


def test_default_bridge_moves_when_its_subnet_was_taken_while_it_was_gone(container_cleanup):
    """After a reboot (or a clean-up) another interface may route the default bridge's old
    subnet: the default bridge, whose subnet nobody chose, moves to a free one."""
    from dockyard.engine import networks
    from dockyard.paths import Paths

    paths = Paths.from_env()
    net = networks.store(type("E", (), {"paths": paths})()).get("bridge")  # type: ignore[arg-type]
    if os.path.isdir(f"/sys/class/net/{net.bridge}/brif") and os.listdir(f"/sys/class/net/{net.bridge}/brif"):
        pytest.skip("containers are attached to the default bridge")
    old = net.subnet
    intruder = f"dyt{secrets.token_hex(3)}"
    subprocess.run(["ip", "link", "del", net.bridge], capture_output=True)
    subprocess.run(["ip", "link", "add", intruder, "type", "bridge"], check=True)
    try:
        gw = old.split("/")[0].rsplit(".", 1)[0] + ".1/" + old.split("/")[1]
        subprocess.run(["ip", "addr", "add", gw, "dev", intruder], check=True)
        subprocess.run(["ip", "link", "set", intruder, "up"], check=True)
        name = _name()
        container_cleanup.append(name)
        dy("run", "-d", "--name", name, "busybox", "sleep", "300", check=True)
        ep = _inspect(name)["NetworkSettings"]["Networks"]["bridge"]
        new = json.loads(dy("network", "inspect", "bridge", check=True).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
        assert new != old and ep["IPAddress"] and ep["Gateway"] == new.split("/")[0].rsplit(".", 1)[0] + ".1"
        dy("rm", "-f", name, check=True)
    finally:
        subprocess.run(["ip", "link", "del", intruder], capture_output=True)
