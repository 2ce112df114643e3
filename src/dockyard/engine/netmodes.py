"""Network modes, the light part: what `--network none|host|container:X` containers need.

A container in one of those modes gets nothing from Dockyard's network stack (the runtime makes
its namespace, or it joins the host's or another container's), so `create` and `start` of such
a container do not import that stack (`netattach`, the network store, IPAM, nftables): ~3 ms of
every `run --network none`. The full path in `netattach` handles everything else, and these
too when the predefined networks do not exist yet (a fresh data root).
"""

from __future__ import annotations

import os

from .._record import dataclass, field
from .. import _util
from .core import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

BRIDGE_MODES = ("bridge", "default")


def mode_of(hc: dict[str, Any]) -> str:
    mode = hc.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def runtime_owned(hc: dict[str, Any]) -> bool:
    """none, host, container:X: a namespace Dockyard's network stack does not manage."""
    mode = mode_of(hc)
    return mode in ("none", "host") or mode.startswith("container:")


def empty_settings() -> dict[str, Any]:
    return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "MacAddress": "", "Networks": {}}


def endpoint_of(network_id: str, ipam_config: dict[str, Any] | None = None, aliases: list[str] | None = None,
                mac: str = "") -> dict[str, Any]:
    """Docker's EndpointSettings of a container that is not running (no address yet)."""
    return {"IPAMConfig": ipam_config or None, "Links": None, "Aliases": aliases or None, "MacAddress": mac,
            "DriverOpts": None, "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None}


def quick_prepare(engine: Engine, hc: dict[str, Any], endpoints_config: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """The initial NetworkSettings of a `none` or `host` container with no endpoint options,
    read straight from the predefined network's record; None: take netattach.prepare."""
    mode = mode_of(hc)
    if mode not in ("none", "host") or endpoints_config:
        return None
    if any(e.endswith(":host-gateway") for e in hc.get("ExtraHosts") or []):
        return None
    d = os.path.join(engine.paths.root, "network", "networks")
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return None
    for n in names:
        if not n.endswith(".json"):
            continue
        try:
            rec = _util.read_json(os.path.join(d, n))
        except (OSError, ValueError):
            continue
        if rec.get("name") == mode and rec.get("driver") == ("null" if mode == "none" else "host"):
            hc["NetworkMode"] = mode
            ns = empty_settings()
            ns["Networks"][mode] = endpoint_of(rec["id"])
            return ns
    return None


@dataclass
class Sandbox:
    netns: str | None = None  # path to join; None = the runtime makes a fresh one (or host)
    hold: list[socket.socket] = field(default_factory=list)  # socket: for type checkers only

    def close(self) -> None:
        for s in self.hold:
            s.close()
        self.hold = []
