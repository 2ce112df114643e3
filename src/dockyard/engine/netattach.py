"""Containers on networks: endpoints at create, the sandbox at start, teardown at exit.

At start a container on bridge networks gets a network namespace of its own, bind-mounted at
<runroot>/netns/<id> (Docker's SandboxKey), one veth pair per network (eth0, eth1, …) with an
address from the network's pool, its published ports (host ports reserved by sockets the
shim holds, DNAT in nftables) and, on user networks, its names in the embedded DNS. All of it
is undone when the container stops, and a stale leftover (a crash of everything but the
shims) is cleared the next time the same container starts.
"""

from __future__ import annotations

import os
import sys

from .. import _util
from ..errors import Conflict, DockyardError, InvalidArgument, NotFound
from ..network.store import Network
from . import networks
from .core import Engine
from .netmodes import BRIDGE_MODES, Sandbox, empty_settings, endpoint_of, mode_of  # noqa: F401 (re-exported)
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def endpoint(net: Network, ipam_config: dict[str, Any] | None = None, aliases: list[str] | None = None,
             mac: str = "") -> dict[str, Any]:
    """Docker's EndpointSettings of a container that is not running (no address yet)."""
    return endpoint_of(net.id, ipam_config, aliases, mac)


def prepare(engine: Engine, hc: dict[str, Any], endpoints_config: dict[str, Any] | None) -> dict[str, Any]:
    """Validate the network options of a new container; its initial NetworkSettings."""
    mode = mode_of(hc)
    hc["NetworkMode"] = mode
    ns = empty_settings()
    eps = dict(endpoints_config or {})
    if mode.startswith("container:"):
        if eps:
            raise InvalidArgument("conflicting options: networking options (--ip, --network-alias, "
                                  "--mac-address) cannot be used with --network container:")
        engine.containers.resolve(mode.split(":", 1)[1])
        return ns
    net = networks.store(engine).get(mode)
    cfg = eps.pop(net.name, None) or eps.pop(mode, None) or {}
    if eps:
        raise InvalidArgument("Container cannot be connected to network endpoints: "
                              + ", ".join(sorted(eps)) + " (connect more networks with `network connect`)")
    ns["Networks"][net.name] = _endpoint_from_config(net, cfg)
    return ns


def _endpoint_from_config(net: Network, cfg: dict[str, Any]) -> dict[str, Any]:
    ipam_cfg = cfg.get("IPAMConfig") or {}
    ip = ipam_cfg.get("IPv4Address") or ""
    aliases = list(cfg.get("Aliases") or [])
    mac = cfg.get("MacAddress") or ""
    if (ip or aliases) and not net.user_defined:
        what = "IP address" if ip else "network-scoped alias"
        raise InvalidArgument(f"user specified {what} is supported only for user defined networks" if ip
                              else f"{what} is supported only for containers in user defined networks")
    if ip:
        from ..network import ipam

        addr = ipam.parse_ip(ip)
        if net.subnet and addr not in ipam.parse_subnet(net.subnet):
            raise InvalidArgument(f"invalid IP address {ip}: it does not belong to the network {net.name}'s subnet {net.subnet}")
    if mac:
        _check_mac(mac)
    if not net.is_bridge:
        return endpoint(net)
    return endpoint(net, {"IPv4Address": ip} if ip else None, aliases, mac)


def _check_mac(mac: str) -> None:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address: {mac}")


def resolv_nameservers(engine: Engine, settings: dict[str, Any]) -> list[str] | None:
    """On a user network the embedded DNS (at the network's gateway) is the nameserver."""
    for name, ep in (settings.get("Networks") or {}).items():
        try:
            net = networks.store(engine).get(ep.get("NetworkID") or name)
        except NotFound:
            continue
        if net.user_defined:
            return [net.gateway]
    return None


def resolve_host_gateway(engine: Engine, hc: dict[str, Any]) -> None:
    """--add-host NAME:host-gateway names the host, at the default bridge's gateway (Docker's)."""
    extra = hc.get("ExtraHosts") or []
    if any(e.endswith(":host-gateway") for e in extra):
        gw = networks.store(engine).get("bridge").gateway
        hc["ExtraHosts"] = [e[: -len("host-gateway")] + gw if e.endswith(":host-gateway") else e for e in extra]


# ---- start / stop -------------------------------------------------------------------

def netns_path(engine: Engine, cid: str) -> str:
    return str(engine.paths.runroot / "netns" / cid)


def _bridge_endpoints(engine: Engine, c: Container) -> list[tuple[Network, dict[str, Any]]]:
    out = []
    st = networks.store(engine)
    for name, ep in ((c.doc.get("NetworkSettings") or {}).get("Networks") or {}).items():
        try:
            net = st.get(ep.get("NetworkID") or name)
        except NotFound:
            raise NotFound(f"network {name} not found: it was removed; disconnect the container from it "
                           f"(dockyard network disconnect {name} {c.name})") from None
        if net.is_bridge:
            out.append((net, ep))
    return out


def host_ifname(cid: str, net: Network) -> str:
    """The host end's name, stable per (container, network) so a leftover can be found."""
    import zlib

    return "veth" + format(zlib.crc32(f"{cid}:{net.id}".encode()), "08x")[:7]


def setup(engine: Engine, c: Container) -> Sandbox:
    """Build the container's network sandbox (bridge modes); updates c.doc in place."""
    mode = mode_of(c.host_config)
    ns = c.doc.setdefault("NetworkSettings", empty_settings())
    if mode.startswith("container:"):
        other = engine.containers.resolve(mode.split(":", 1)[1])
        if not other.running:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        path = netns_path(engine, other.id)
        return Sandbox(netns=path if os.path.exists(path) else f"/proc/{other.state['Pid']}/ns/net")
    eps = _bridge_endpoints(engine, c)
    if not eps:
        return Sandbox()  # none or host: the runtime decides
    from ..network import netns

    path = netns_path(engine, c.id)
    if os.path.lexists(path):
        teardown(engine, c)  # whatever a crash left behind (the namespace is made first)
    netns.create(path)
    sandbox = Sandbox(netns=path)
    try:
        for i, (net, ep) in enumerate(eps):
            _attach(engine, c, net, ep, f"eth{i}", path, first=(i == 0))
        ns["SandboxKey"] = path
        ns["SandboxID"] = _util.new_id()
        first = eps[0][1]
        if eps[0][0].name == "bridge":
            for key in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress"):
                ns[key] = first[key]
        _publish(engine, c, eps[0][1]["IPAddress"], eps[0][0], sandbox)
        _update_dns(engine, [n for n, _ in eps])
        _write_hosts(engine, c, [ep["IPAddress"] for _, ep in eps])
    except BaseException:
        sandbox.close()
        teardown(engine, c)
        raise
    return sandbox


def _attach(engine: Engine, c: Container, net: Network, ep: dict[str, Any], ifname: str,
            path: str, first: bool) -> None:
    from ..network import ipam, veth

    net = networks.ensure_bridge(engine, net)
    st = networks.store(engine)
    requested = (ep.get("IPAMConfig") or {}).get("IPv4Address") or None
    ip = st.allocate(net, c.id, requested, alive=lambda o: _running(engine, o))
    mac = (c.config.get("MacAddress") if first else "") or ep.get("MacAddress") or ipam.mac_for(ip)
    try:
        veth.attach(path, net.bridge, host_ifname(c.id, net), ifname, f"{ip}/{net.prefixlen}",
                    net.gateway if first else None, mac)
        # hairpin: the container may reach itself through its own published port
        with open(f"/sys/class/net/{host_ifname(c.id, net)}/brport/hairpin_mode", "w") as f:
            f.write("1")
    except BaseException:
        st.release(net, c.id)
        raise
    _event(engine, "connect", net, c)
    ep.update(NetworkID=net.id, EndpointID=_util.new_id(), Gateway=net.gateway, IPAddress=ip,
              IPPrefixLen=net.prefixlen, MacAddress=mac,
              DNSNames=_dns_names(c, ep) if net.user_defined else None)


def _dns_names(c: Container, ep: dict[str, Any]) -> list[str]:
    names = [c.name] + [a for a in ep.get("Aliases") or [] if a != c.name] + [c.id[:12]]
    host = c.config.get("Hostname") or ""
    if host and host not in names:
        names.append(host)
    return names


def _running(engine: Engine, cid: str) -> bool:
    """Whether `cid` still holds its addresses: running, or being started (its network
    namespace is made before any address is taken, so two containers starting at once,
    as `compose up` does, never get the same address)."""
    if os.path.lexists(netns_path(engine, cid)):
        return True
    try:
        return engine.containers.load(cid).running
    except NotFound:
        return False


def teardown(engine: Engine, c: Container) -> None:
    """Undo setup; idempotent, and quiet about what is already gone."""
    if mode_of(c.host_config) in ("none", "host") or mode_of(c.host_config).startswith("container:"):
        return  # the runtime's own namespace (or none, or another container's): nothing of ours
    eps = []
    try:
        eps = _bridge_endpoints(engine, c)
    except NotFound:
        pass
    try:
        if (c.host_config.get("PortBindings") or c.host_config.get("PublishAllPorts")):
            from ..network import nft

            nft.unpublish(networks.nft_table(engine.paths), _owner(c.id))
    except (OSError, DockyardError) as e:
        _warn(c, f"removing its port rules: {e}")
    path = netns_path(engine, c.id)
    if os.path.lexists(path):
        from ..network import netns

        netns.remove(path)
    st = networks.store(engine)
    for net, ep in eps:
        if ep.get("EndpointID"):
            _event(engine, "disconnect", net, c)
        st.release(net, c.id)
        ep.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, DNSNames=None, MacAddress="")
    ns = c.doc.get("NetworkSettings")
    if ns is not None:
        for key in ("EndpointID", "Gateway", "IPAddress", "MacAddress", "SandboxKey", "SandboxID"):
            ns[key] = ""
        ns["IPPrefixLen"] = 0
        ns["Ports"] = {}
    user = [n for n, _ in eps if n.user_defined]
    if user:
        _update_dns(engine, user, leaving=c.id)


# ---- ports --------------------------------------------------------------------------

def _wanted_ports(c: Container) -> list[tuple[str, int, str, int]]:
    """(proto, container port, host ip, host port) from PortBindings and -P."""
    hc = c.host_config
    out = []
    bindings = hc.get("PortBindings") or {}
    for key, binds in bindings.items():
        port, _, proto = key.partition("/")
        for b in binds or [{}]:
            hp = (b or {}).get("HostPort") or "0"
            out.append((proto or "tcp", int(port), (b or {}).get("HostIp") or "", int(hp)))
    if hc.get("PublishAllPorts"):
        for key in (c.config.get("ExposedPorts") or {}):
            if key not in bindings:
                port, _, proto = key.partition("/")
                out.append((proto or "tcp", int(port), "", 0))
    return out


def _publish(engine: Engine, c: Container, ip: str, net: Network, sandbox: Sandbox) -> None:
    ports_view: dict[str, Any] = {k: None for k in (c.config.get("ExposedPorts") or {})}
    wanted = _wanted_ports(c)
    if wanted:
        from ..network import nft, ports

        maps = [ports.PortMapping(proto, hip, hport, ip, cport) for proto, cport, hip, hport in wanted]
        reserved = ports.reserve(maps)
        sandbox.hold.extend(s for _, s in reserved)
        table = networks.nft_table(engine.paths)
        _clear_stale_rules(engine, table)
        try:
            nft.publish(table, _owner(c.id), net.bridge, [m for m, _ in reserved])
        except DockyardError:
            networks.restore_rules(engine, net)  # the table was flushed behind our back
            nft.publish(table, _owner(c.id), net.bridge, [m for m, _ in reserved])
        for m, _ in reserved:
            ports_view.setdefault(f"{m.container_port}/{m.proto}", None)
            ports_view[f"{m.container_port}/{m.proto}"] = (ports_view[f"{m.container_port}/{m.proto}"] or []) + [
                {"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}]
    c.doc["NetworkSettings"]["Ports"] = ports_view


def _owner(cid: str) -> str:
    """Rules are grouped under the short ID (nftables limits chain names)."""
    return cid[:12]


def _clear_stale_rules(engine: Engine, table: str) -> None:
    """Rules of containers that are not running (everything but the shims crashed)."""
    from ..network import nft

    running = {c.id[:12] for c in engine.containers.all() if c.running}
    for owner in nft.owners(table) - running:
        nft.unpublish(table, owner)


# ---- DNS and /etc/hosts ---------------------------------------------------------------

def _update_dns(engine: Engine, nets: list[Network], leaving: str | None = None) -> None:
    nets = [n for n in nets if n.user_defined]
    if not nets:
        return
    from ..network import dnsd

    table = networks.dns_table(engine.paths)
    st = networks.store(engine)
    for net in nets:
        if not net.user_defined:
            continue
        records: dict[str, list[str]] = {}
        for ip, owner in st.allocations(net).items():
            if owner == leaving:
                continue
            try:
                other = engine.containers.load(owner)
            except NotFound:
                continue
            ep = (other.doc.get("NetworkSettings") or {}).get("Networks", {}).get(net.name) or {}
            for name in ep.get("DNSNames") or _dns_names(other, ep):
                records.setdefault(name, [])
                if ip not in records[name]:
                    records[name].append(ip)
        try:
            if records:
                dnsd.set_network(table, net.id, net.gateway, records)
            else:
                dnsd.drop_network(table, net.id)
        except DockyardError as e:  # names do not resolve, but the container runs
            print(f"warning: network {net.name}: embedded DNS: {e}", file=sys.stderr)


def _event(engine: Engine, action: str, net: Network, c: Container) -> None:
    from . import events

    events.emit(engine, "network", action, net.id, {"container": c.id, "name": net.name, "type": net.driver})


def _warn(c: Container, what: str) -> None:
    print(f"warning: container {c.id[:12]}: {what}", file=sys.stderr)


def _write_hosts(engine: Engine, c: Container, ips: list[str]) -> None:
    """/etc/hosts names the container's own addresses, as Docker's does (init layer + HostsPath)."""
    from .configs import HOSTS

    hosts = HOSTS
    for extra in c.host_config.get("ExtraHosts") or []:
        h, _, addr = extra.rpartition(":")
        hosts += f"{addr}\t{h}\n"
    host = c.config.get("Hostname") or c.id[:12]
    for ip in ips:
        hosts += f"{ip}\t{host}\n"
    init_diff = engine.layers.rw_paths(c.id).lower_dirs[0]
    _util.atomic_write(init_diff / "etc" / "hosts", hosts, durable=False)
    if c.doc.get("HostsPath"):
        _util.atomic_write(c.doc["HostsPath"], hosts, durable=False)


# ---- connect / disconnect -------------------------------------------------------------

def connect(engine: Engine, c: Container, net: Network, ip: str = "", aliases: list[str] | None = None) -> None:
    mode = mode_of(c.host_config)
    if mode in ("host", "none") or mode.startswith("container:"):
        raise Conflict(f"container {c.name} is in network mode {mode}: it cannot be connected to other networks")
    nets = c.doc.setdefault("NetworkSettings", empty_settings()).setdefault("Networks", {})
    if net.name in nets:
        raise Conflict(f"endpoint with name {c.name} already exists in network {net.name}")
    if not net.is_bridge:
        raise Conflict("container cannot be disconnected from host network or connected to host network"
                       if net.driver == "host" else f"container {c.name} cannot be connected to network {net.name}")
    ep = _endpoint_from_config(net, {"IPAMConfig": {"IPv4Address": ip} if ip else None, "Aliases": aliases})
    if c.running:
        path = netns_path(engine, c.id)
        if not os.path.exists(path):
            raise Conflict(f"container {c.name} has no network namespace of its own to connect")
        _attach(engine, c, net, ep, f"eth{len(nets)}", path, first=False)
        nets[net.name] = ep
        _update_dns(engine, [net])
    else:
        nets[net.name] = ep
    engine.containers.save(c)


def disconnect(engine: Engine, c: Container, net: Network, force: bool = False) -> None:
    from ..network.rtnl import Netlink

    nets = ((c.doc.get("NetworkSettings") or {}).get("Networks") or {})
    if net.name not in nets:
        if force:
            return
        raise Conflict(f"container {c.id} is not connected to network {net.name}")
    if c.running and net.is_bridge:
        with Netlink() as nl:
            nl.del_link(host_ifname(c.id, net), missing_ok=True)
        networks.store(engine).release(net, c.id)
    if c.running and net.is_bridge:
        _event(engine, "disconnect", net, c)
    del nets[net.name]
    engine.containers.save(c)
    if net.user_defined:
        _update_dns(engine, [net])
