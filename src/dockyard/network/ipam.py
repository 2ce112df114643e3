"""IP address management: subnets from address pools, addresses within a subnet.

Pure logic over `ipaddress`; the store (network/store.py) persists the results. Subnets are
chosen as Docker chooses them: the first pool subnet that overlaps neither another network
nor a route of the host (so a bridge never shadows the host's own networks).
"""

from __future__ import annotations

import ipaddress
import struct

from .._record import dataclass
from ..errors import Conflict, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class Pool:
    base: str
    size: int


#: the default bridge and user networks come from here: clear of Docker's 172.17.0.0/16 (and
#: its 172.18-31 user networks) and Podman's 10.88.0.0/16 and 10.89.x user networks
DEFAULT_POOLS = (Pool("10.200.0.0/14", 16), Pool("10.204.0.0/14", 24))


def parse_subnet(value: str) -> Net:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {value!r}: not an IPv4 CIDR") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidArgument(f"invalid subnet {value}: only IPv4 networks are supported")
    if str(net) != value and "/" in value:
        ip = ipaddress.ip_address(value.split("/")[0])
        if ip != net.network_address:
            raise InvalidArgument(f"invalid subnet {value}: it should be {net}")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {value}: too small for a network (at most /30)")
    return net


def parse_ip(value: str, what: str = "IP address") -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {value!r}") from None
    if not isinstance(ip, ipaddress.IPv4Address):
        raise InvalidArgument(f"invalid {what} {value}: only IPv4 is supported")
    return ip


def host_routes() -> list[Net]:
    """The host's IPv4 routes except the default route (from /proc/net/route)."""
    out: list[Net] = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                parts = line.split()
                dest = str(ipaddress.IPv4Address(struct.pack("<I", int(parts[1], 16))))
                mask = str(ipaddress.IPv4Address(struct.pack("<I", int(parts[7], 16))))
                if dest == "0.0.0.0" and mask == "0.0.0.0":
                    continue
                out.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return out


def pick_subnet(pools: Iterable[Pool], taken: Iterable[Net], avoid_routes: bool = True) -> Net:
    used = list(taken) + (host_routes() if avoid_routes else [])
    for pool in pools:
        base = parse_subnet(pool.base)
        if pool.size < base.prefixlen:
            candidates: Iterable[Net] = [base]
        else:
            candidates = base.subnets(new_prefix=pool.size)
        for cand in candidates:
            if not any(cand.overlaps(u) for u in used):
                return cand
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the "
                   "defaults to assign to the network")


def gateway_for(subnet: Net) -> ipaddress.IPv4Address:
    return subnet.network_address + 1


def allocate(subnet: Net, ip_range: Net | None, gateway: ipaddress.IPv4Address,
             used: Iterable[str], requested: str | None = None) -> ipaddress.IPv4Address:
    """The requested address (checked), or the lowest free one in ip_range (or subnet)."""
    taken = set(used) | {str(gateway)}
    if requested:
        ip = parse_ip(requested)
        if ip not in subnet:
            raise InvalidArgument(f"invalid IP address {requested}: it does not belong to the network's subnet {subnet}")
        if ip in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"invalid IP address {requested}: it is the network or broadcast address of {subnet}")
        if str(ip) in taken:
            raise Conflict(f"Address already in use: {requested}")
        return ip
    pool = ip_range or subnet
    for ip in pool.hosts():
        if str(ip) not in taken and ip in subnet:
            return ip
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {pool}")


def mac_for(ip: ipaddress.IPv4Address | str) -> str:
    """A locally administered MAC derived from the address (Docker's classic 02:42:…)."""
    b = ipaddress.IPv4Address(str(ip)).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)
