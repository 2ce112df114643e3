"""Bridge networking for one container: the host bridge and the container's veth pair.

`ensure_bridge` makes (or repairs) the host bridge; `attach` wires a container's network
namespace to it with one RTM_NEWLINK that creates both veth ends at once (the container end
directly inside the namespace, already named and with its MAC; the host end enslaved
to the bridge and up), then adds the address and default route from inside the namespace.
`detach` deletes the host end, which takes the container end with it at once (otherwise the
pair goes when the namespace is freed, asynchronously, after `netns.remove`).
"""

from __future__ import annotations

import os

from dockyard.errors import Conflict
from dockyard.network.netns import run_in
from dockyard.network.rtnl import Link, Netlink, parse_cidr


def _has_addr(nl: Netlink, name: str, cidr: str) -> bool:
    want = parse_cidr(cidr)
    return any(parse_cidr(have) == want for have in nl.addrs(name, want[0]))


def ensure_bridge(name: str, cidr: str, mtu: int | None = None) -> Link:
    """Bridge `name` exists, has address `cidr` (e.g. '10.200.0.1/16'), the MTU if given, and is
    up. Idempotent: an existing bridge keeps its ports; other IPv4 addresses it has (left from a
    network record that no longer exists) are removed, so its route cannot shadow another
    network's subnet. Conflict if `name` is a link of another kind."""
    with Netlink() as nl:
        link = nl.link(name)
        if link is None:
            try:
                nl.add_bridge(name, mtu)
            except FileExistsError:
                pass  # made concurrently by another engine process
            link = nl.link(name)
        if link is None or link.kind != "bridge":
            raise Conflict(f"network interface {name} exists and is not a bridge")
        if mtu and link.mtu != mtu:
            nl.set_mtu(name, mtu)
        want = parse_cidr(cidr)
        for have in nl.addrs(name, want[0]):
            if parse_cidr(have) != want:
                nl.del_addr(name, have)
        if not _has_addr(nl, name, cidr):
            try:
                nl.add_addr(name, cidr)
            except FileExistsError:
                pass
        if not link.up:
            nl.set_up(name)
        return nl.link(name) or link


def _configure(ifname: str, cidr: str, gateway: str | None) -> None:
    with Netlink() as nl:
        nl.add_addr(ifname, cidr)
        nl.set_up(ifname)
        if gateway:
            nl.add_route("default", gateway, ifname)


def attach(netns_path: str, bridge: str, host_ifname: str, ifname: str, cidr: str,
           gateway: str | None, mac: str | None, mtu: int | None = None) -> None:
    """Veth pair `host_ifname` (on the host, port of `bridge`, up) ⇄ `ifname` (in the namespace
    at `netns_path`, MAC `mac` or a random one, address `cidr`, up, default route via
    `gateway` when given). On failure the pair is deleted again.

    A veth already called `host_ifname` on the host is taken for the leftover of an earlier
    start (after `netns.remove` the kernel frees the namespace and its pair asynchronously,
    some 20-70 ms later) and deleted first, so host names derived from the container work
    across a quick restart."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Netlink() as nl:
            try:
                nl.add_veth(host_ifname, ifname, fd, mtu=mtu, master=bridge, up=True, peer_mac=mac)
            except FileExistsError:
                old = nl.link(host_ifname)
                if old is None or old.kind != "veth":
                    raise
                # the pair of an earlier start whose namespace the kernel has not freed yet
                nl.del_link(host_ifname, missing_ok=True)
                nl.add_veth(host_ifname, ifname, fd, mtu=mtu, master=bridge, up=True, peer_mac=mac)
            try:
                run_in(fd, _configure, ifname, cidr, gateway)
            except BaseException:
                nl.del_link(host_ifname, missing_ok=True)
                raise
    finally:
        os.close(fd)


def detach(host_ifname: str) -> None:
    """Delete the host end of a container's veth pair (and so both ends); missing is fine."""
    with Netlink() as nl:
        nl.del_link(host_ifname, missing_ok=True)
