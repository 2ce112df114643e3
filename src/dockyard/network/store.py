"""Network records and address allocations, persisted under <root>/network.

network/networks/<id>.json   one network (Docker's fields, flattened; see `Network`)
network/ipam/<id>.json       {address: owner} for the addresses handed out on that network
network/.lock                every change happens under this lock

The predefined networks (`bridge`, `host`, `none`) are made on first use and keep their IDs.
"""

from __future__ import annotations

import os
import re
from .._path import Path

from .._record import asdict, dataclass, field, fields, replace
from .. import _util
from ..errors import Conflict, InvalidArgument, NotFound
from . import ipam

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

PREDEFINED = ("bridge", "host", "none")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    driver: str  # bridge | host | null
    bridge: str = ""  # the Linux bridge (bridge driver only)
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    attachable: bool = False  # `network create --attachable`: recorded and shown, as Docker's

    @property
    def is_bridge(self) -> bool:
        return self.driver == "bridge"

    @property
    def user_defined(self) -> bool:
        """User networks resolve container names (Docker: not the default bridge)."""
        return self.is_bridge and self.name != "bridge"

    @property
    def prefixlen(self) -> int:
        return ipam.parse_subnet(self.subnet).prefixlen

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Network":
        return cls(**{k: d[k] for k in fields(cls) if k in d})


@dataclass(frozen=True)
class Settings:
    """Daemon-level choices (daemon.json's `bridge`, `bip`, `default-address-pools`)."""

    default_bridge: str = "dockyard0"
    bip: str = ""  # gateway/prefix of the default bridge, e.g. 10.200.0.1/16
    pools: tuple[ipam.Pool, ...] = ipam.DEFAULT_POOLS


class NetworkStore:
    def __init__(self, root: Path, settings: Settings,
                 materialize: Callable[[Network], None] | None = None) -> None:
        self.dir = root / "network"
        self.settings = settings
        #: called (under the store lock) for a predefined bridge network just recorded, so its
        #: bridge and route exist before another data root picks a subnet
        self.materialize = materialize

    @property
    def lock(self) -> Path:
        return self.dir / ".lock"

    def _path(self, nid: str) -> Path:
        return self.dir / "networks" / f"{nid}.json"

    def _ipam_path(self, nid: str) -> Path:
        return self.dir / "ipam" / f"{nid}.json"

    # -- records -----------------------------------------------------------------------
    def _load_all(self) -> list[Network]:
        out = []
        try:
            entries = list(os.scandir(self.dir / "networks"))
        except FileNotFoundError:
            return []
        for e in entries:
            if e.name.endswith(".json"):
                try:
                    out.append(Network.from_json(_util.read_json(e.path)))
                except (OSError, ValueError, TypeError):
                    continue
        return out

    def list(self) -> list[Network]:
        nets = self._load_all()
        if not {n.name for n in nets} >= set(PREDEFINED):
            with _util.locked(self.lock):
                nets = self._load_all()
                have = {n.name for n in nets}
                for name in PREDEFINED:
                    if name not in have:
                        made = self._predefined(name, nets)
                        if made.is_bridge and self.materialize is not None:
                            self.materialize(made)
                        nets.append(self._save(made))
        order = {name: i for i, name in enumerate(PREDEFINED)}
        return sorted(nets, key=lambda n: (order.get(n.name, 9), n.created, n.name))

    def _predefined(self, name: str, existing: list[Network]) -> Network:
        nid = _util.new_id()
        if name != "bridge":
            return Network(id=nid, name=name, driver="null" if name == "none" else "host", created=_util.now_rfc3339())
        if self.settings.bip:
            iface = ipam.parse_subnet(self.settings.bip)
            gateway = self.settings.bip.split("/")[0]
        else:
            iface = ipam.pick_subnet(self.settings.pools, [ipam.parse_subnet(n.subnet) for n in existing if n.subnet])
            gateway = str(ipam.gateway_for(iface))
        return Network(id=nid, name="bridge", driver="bridge", bridge=self.settings.default_bridge,
                       subnet=str(iface), gateway=gateway, created=_util.now_rfc3339(),
                       options={BRIDGE_NAME_OPTION: self.settings.default_bridge,
                                "com.docker.network.bridge.default_bridge": "true",
                                "com.docker.network.bridge.enable_ip_masquerade": "true"})

    def _save(self, net: Network) -> Network:
        self._path(net.id).parent.mkdir(parents=True, exist_ok=True)
        _util.write_json(self._path(net.id), net.to_json())
        return net

    def get(self, ref: str) -> Network:
        nets = self.list()
        for n in nets:
            if n.id == ref or n.name == ref:
                return n
        found = [n for n in nets if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"network {ref} not found")

    def create(self, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "",
               ip_range: str = "", internal: bool = False, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, attachable: bool = False) -> Network:
        if not _NAME.match(name):
            raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if driver != "bridge":
            raise InvalidArgument(f"network driver {driver!r} is not supported: only bridge networks can be created")
        options = dict(options or {})
        nid = _util.new_id()
        self.list()  # makes the predefined networks first, under the lock (flock is not re-entrant)
        with _util.locked(self.lock):
            nets = self._load_all()
            if any(n.name == name for n in nets):
                raise Conflict(f"network with name {name} already exists")
            taken = [ipam.parse_subnet(n.subnet) for n in nets if n.subnet]
            if subnet:
                net = ipam.parse_subnet(subnet)
                for n in nets:
                    if n.subnet and ipam.parse_subnet(n.subnet).overlaps(net):
                        raise Conflict(f"invalid pool request: Pool overlaps with other one on this address space ({n.name}: {n.subnet})")
            else:
                if gateway or ip_range:
                    raise InvalidArgument("--gateway and --ip-range need --subnet")
                net = ipam.pick_subnet(self.settings.pools, taken)
            gw = ipam.parse_ip(gateway, "gateway") if gateway else ipam.gateway_for(net)
            if gw not in net:
                raise InvalidArgument(f"invalid gateway {gateway}: it is not in the subnet {net}")
            rng = ""
            if ip_range:
                r = ipam.parse_subnet(ip_range)
                if not r.subnet_of(net):
                    raise InvalidArgument(f"invalid ip-range {ip_range}: it is not within the subnet {net}")
                rng = str(r)
            bridge = options.get(BRIDGE_NAME_OPTION) or f"dy-{nid[:12]}"
            if len(bridge) > 15 or "/" in bridge or " " in bridge:
                raise InvalidArgument(f"invalid bridge name {bridge!r}: at most 15 characters, no '/' or spaces")
            if any(n.bridge == bridge for n in nets):
                raise Conflict(f"bridge name {bridge} is already used by another network")
            created = Network(id=nid, name=name, driver="bridge", bridge=bridge, subnet=str(net),
                              gateway=str(gw), ip_range=rng, internal=internal, labels=dict(labels or {}),
                              options=options, created=_util.now_rfc3339(), attachable=attachable)
            return self._save(created)

    def remove(self, net: Network) -> None:
        with _util.locked(self.lock):
            for p in (self._path(net.id), self._ipam_path(net.id)):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass

    def move_subnet(self, net: Network) -> Network:
        """Give `net` (the default bridge, while its bridge does not exist) a subnet that
        overlaps neither another network nor a host route; its address allocations go."""

        with _util.locked(self.lock):
            others = [ipam.parse_subnet(n.subnet) for n in self._load_all() if n.subnet and n.id != net.id]
            subnet = ipam.pick_subnet(self.settings.pools, others)
            moved = replace(net, subnet=str(subnet), gateway=str(ipam.gateway_for(subnet)), ip_range="")
            self._save(moved)
            try:
                os.unlink(self._ipam_path(net.id))
            except FileNotFoundError:
                pass
            return moved

    # -- addresses ---------------------------------------------------------------------
    def allocations(self, net: Network) -> dict[str, str]:
        try:
            return _util.read_json(self._ipam_path(net.id))  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return {}

    def allocate(self, net: Network, owner: str, requested: str | None = None,
                 alive: Any = None) -> str:
        """An address for `owner` (a container ID). `alive(owner) -> bool`, when given, lets
        addresses of owners that no longer exist be reclaimed."""
        with _util.locked(self.lock):
            used = self.allocations(net)
            if alive is not None:
                used = {ip: o for ip, o in used.items() if o == owner or alive(o)}
            for ip, o in list(used.items()):
                if o == owner and (not requested or ip == requested):
                    return ip
            subnet = ipam.parse_subnet(net.subnet)
            rng = ipam.parse_subnet(net.ip_range) if net.ip_range else None
            ip = str(ipam.allocate(subnet, rng, ipam.parse_ip(net.gateway), used.keys(), requested))
            used[ip] = owner
            self._ipam_path(net.id).parent.mkdir(parents=True, exist_ok=True)
            _util.write_json(self._ipam_path(net.id), used, durable=False)
            return ip

    def release(self, net: Network, owner: str) -> None:
        with _util.locked(self.lock):
            used = self.allocations(net)
            kept = {ip: o for ip, o in used.items() if o != owner}
            if kept != used:
                _util.write_json(self._ipam_path(net.id), kept, durable=False)
