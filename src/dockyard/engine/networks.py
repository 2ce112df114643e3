"""Networks as objects: daemon settings, create/remove/prune, Docker's inspect shape.

A bridge network is a Linux bridge (made at `network create`, so its route keeps later
subnets from overlapping it), an nftables part (masquerade, forwarding) and an address pool.
Containers attach to networks in engine/netattach.py.
"""

from __future__ import annotations

import os
from .._path import Path

from .. import _util
from ..errors import Conflict, InvalidArgument
from ..network import ipam
from ..network.store import Network, NetworkStore, Settings
from ..paths import DEFAULT_ROOT, Paths
from . import events
from .core import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

daemon_config = _util.daemon_config


def _root_tag(paths: Paths) -> str:
    """'' for the default data root; a short hash for a relocated one, so two data roots on
    one host never share a bridge or a packet-filter table."""
    if str(paths.root) == DEFAULT_ROOT:
        return ""
    from ..paths import sha256_hex

    return sha256_hex(str(paths.root))[:8]


def settings(paths: Paths) -> Settings:
    cfg = daemon_config()
    tag = _root_tag(paths)
    bridge = cfg.get("bridge") or ("dockyard0" if not tag else f"dy{tag}0")
    pools = tuple(ipam.Pool(str(p["base"]), int(p["size"])) for p in cfg.get("default-address-pools") or [])
    bip = str(cfg.get("bip") or "")
    if bip:
        ipam.parse_subnet(bip)
    return Settings(default_bridge=str(bridge), bip=bip, pools=pools or ipam.DEFAULT_POOLS)


def nft_table(paths: Paths) -> str:
    tag = _root_tag(paths)
    return "dockyard" if not tag else f"dockyard_{tag}"


def dns_table(paths: Paths) -> Path:
    return paths.runroot / "dns" / "table.json"


def store(engine: Engine) -> NetworkStore:
    return NetworkStore(engine.paths.root, settings(engine.paths), lambda net: ensure_bridge(engine, net))


def ensure_bridge(engine: Engine, net: Network) -> Network:
    """The network's bridge with its gateway address, up, and its packet-filter rules.
    Returns the network (the default bridge's subnet may have moved: see _claim_subnet)."""
    from ..network import veth
    from ..network.rtnl import Netlink

    with Netlink() as nl:
        existed = nl.link_index(net.bridge) is not None
    if not existed:
        net = _claim_subnet(engine, net)
    veth.ensure_bridge(net.bridge, f"{net.gateway}/{net.prefixlen}")
    if not existed or not _table_has(engine, net):
        restore_rules(engine, net)
    return net


def _claim_subnet(engine: Engine, net: Network) -> Network:
    """A network whose bridge is gone (a reboot, a clean-up) may find its subnet routed through
    another interface meanwhile (another data root's bridge, a VPN). The default bridge, whose
    subnet nobody chose, moves to a free one; for a user network that is an error."""
    clash = [r for r in ipam.host_routes() if r.overlaps(ipam.parse_subnet(net.subnet))]
    if not clash:
        return net
    if net.name == "bridge" and not settings(engine.paths).bip:
        return store(engine).move_subnet(net)
    raise Conflict(f"network {net.name}: its subnet {net.subnet} is now routed through another interface "
                   f"on this host ({clash[0]}); remove the network and create it again")


def restore_rules(engine: Engine, net: Network) -> None:
    """(Re)install the network's packet-filter part (also after someone flushed the ruleset)."""
    from ..network import nft

    table = nft_table(engine.paths)
    nft.ensure_base(table)
    nft.add_network(table, net.bridge, net.subnet, net.internal)
    _mark(engine, net)


def _marker(engine: Engine, net: Network) -> Path:
    return engine.paths.runroot / "network" / f"{net.id}.up"


def _table_has(engine: Engine, net: Network) -> bool:
    return _marker(engine, net).exists()


def _mark(engine: Engine, net: Network) -> None:
    p = _marker(engine, net)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch()


def drop_bridge(engine: Engine, net: Network) -> None:
    from ..network import nft
    from ..network.rtnl import Netlink

    nft.remove_network(nft_table(engine.paths), net.bridge)
    with Netlink() as nl:
        nl.del_link(net.bridge, missing_ok=True)
    try:
        os.unlink(_marker(engine, net))
    except FileNotFoundError:
        pass


def create(engine: Engine, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "",
           ip_range: str = "", internal: bool = False, labels: dict[str, str] | None = None,
           options: dict[str, str] | None = None, attachable: bool = False) -> Network:
    st = store(engine)
    net = st.create(name, driver or "bridge", subnet, gateway, ip_range, internal, labels, options, attachable)
    try:
        ensure_bridge(engine, net)
    except BaseException:
        st.remove(net)
        try:
            drop_bridge(engine, net)
        except (OSError, Exception):
            pass
        raise
    events.emit(engine, "network", "create", net.id, {"name": net.name, "type": net.driver})
    return net


def users(engine: Engine, net: Network, running_only: bool = True) -> list[Any]:
    """Containers attached to `net` (running ones, unless asked for all)."""
    out = []
    for c in engine.containers.all():
        if running_only and not c.running:
            continue
        if net.name in ((c.doc.get("NetworkSettings") or {}).get("Networks") or {}):
            out.append(c)
    return out


def remove(engine: Engine, net: Network) -> None:
    if net.name in ("bridge", "host", "none"):
        raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
    active = users(engine, net)
    if active:
        raise Conflict(f"error while removing network: network {net.name} id {net.id} has active endpoints")
    drop_bridge(engine, net)
    store(engine).remove(net)
    events.emit(engine, "network", "destroy", net.id, {"name": net.name, "type": net.driver})
    from ..network import dnsd

    dnsd.drop_network(dns_table(engine.paths), net.id)


def prune(engine: Engine, label_filters: list[str] | None = None) -> list[str]:
    from .query import label_match

    removed = []
    for net in store(engine).list():
        if net.name in ("bridge", "host", "none"):
            continue
        if label_filters and not all(label_match(net.labels, f) for f in label_filters):
            continue
        if users(engine, net, running_only=False):
            continue
        remove(engine, net)
        removed.append(net.name)
    return removed


def inspect(engine: Engine, net: Network) -> dict[str, Any]:
    containers: dict[str, Any] = {}
    for c in users(engine, net):
        ep = (c.doc.get("NetworkSettings") or {}).get("Networks", {}).get(net.name) or {}
        containers[c.id] = {"Name": c.name, "EndpointID": ep.get("EndpointID", ""),
                            "MacAddress": ep.get("MacAddress", ""),
                            "IPv4Address": f"{ep['IPAddress']}/{ep.get('IPPrefixLen', 0)}" if ep.get("IPAddress") else "",
                            "IPv6Address": ""}
    config = []
    if net.subnet:
        entry = {"Subnet": net.subnet, "Gateway": net.gateway}
        if net.ip_range:
            entry["IPRange"] = net.ip_range
        config.append(entry)
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None if net.name in ("host", "none") else {},
                                      "Config": config},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": containers, "Options": dict(net.options),
        "Labels": dict(net.labels),
    }


def matches(net: Network, filters: dict[str, list[str]]) -> bool:
    """`network ls -f`: name (substring), id (prefix), driver, label, type (custom|builtin)."""
    from .query import label_match

    for key, values in filters.items():
        if key == "name" and not any(v in net.name for v in values):
            return False
        if key == "id" and not any(net.id.startswith(v) for v in values):
            return False
        if key == "driver" and net.driver not in values:
            return False
        if key == "label" and not all(label_match(net.labels, v) for v in values):
            return False
        if key == "type":
            kind = "builtin" if net.name in ("bridge", "host", "none") else "custom"
            if kind not in values:
                return False
        if key not in ("name", "id", "driver", "label", "type", "scope", "dangling"):
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


def list_networks(engine: Engine, filters: dict[str, list[str]] | None = None) -> list[Network]:
    """`network ls` / GET /networks: the networks passing `matches`, and Docker's `dangling`
    (true: user networks no running container is on; false: the others and the predefined)."""
    flt = dict(filters or {})
    dangling = flt.pop("dangling", None)
    nets = [n for n in store(engine).list() if matches(n, flt)]
    if not dangling:
        return nets
    value = dangling[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid filter 'dangling={dangling[-1]}'")
    want = value in ("true", "1")
    used = {name for c in engine.containers.all() if c.running
            for name in ((c.doc.get("NetworkSettings") or {}).get("Networks") or {})}
    return [n for n in nets if (n.name not in used and n.name not in ("bridge", "host", "none")) == want]


def created_ts(net: Network) -> float:
    try:
        return _util.parse_rfc3339(net.created)
    except (ValueError, TypeError):
        return 0.0
