"""The packet filter for bridge networks: masquerade, forwarding and published ports (nftables).

This is the one module that runs the external `nft` command: writes are whole scripts fed to
`nft -f -` (one netlink transaction each: all or nothing), reads are `nft -j list ...`.
Everything lives in one `ip` table per data root (the caller names it), laid out as:

    prerouting  nat dstnat   fib daddr type local jump published
    output      nat -100     fib daddr type local jump published
    published   regular      per owner and protocol: tcp dport P|{P,...} jump o_<owner> comment "<owner>"
    o_<owner>   regular      [ip daddr A] tcp|udp dport P dnat to C:Q   (one rule per mapping)
    postrouting nat srcnat   oifname vmap @post_out;  ip saddr vmap @post_src
    forward     filter       ct state established,related accept; iifname vmap @fwd_in; oifname vmap @fwd_out
    input       filter       iifname != "lo" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop

Per network (bridge B, subnet S) the maps point at chains named after the bridge:
`po_B` (out of B: masquerade DNAT'd traffic from S or from 127.0.0.0/8, i.e. hairpin and
localhost), `ms_B` (from S: masquerade unless leaving through B; not in the map when internal),
`fi_B`/`fo_B` (forwarding from/to B: internal networks drop everything crossing B; other
networks let out what leaves (`fi_B` stays empty: an accept there would skip the other
network's `fo_`) and let in only DNAT'd or established traffic).

Costs (one `nft` process is about 2 ms): `ensure_base` is one read once the base exists;
`publish` of a new owner is one write and no read; `unpublish`, `add_network` and
`remove_network` read one object (rule handles, the old subnet), then write once. Any
transaction that deletes something makes nft's exit wait for an RCU grace period (10-20 ms).
The input rule stops machines on a bridge from reaching the host's 127.0.0.1 services through
`route_localnet` (which DNAT of 127.0.0.1 needs): only DNAT'd traffic may do that. A container
reaching itself through its own published port also needs hairpin mode on its bridge port
(with br_netfilter the DNAT'd frame is bridged back out of the port it came in on).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from dockyard.errors import FailedPrecondition, InvalidArgument, NotFound
from dockyard.network.ports import PROTOCOLS, PortMapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_BRIDGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")

OWNER_PREFIX = "o_"
#: an empty chain whose presence says the base of this layout is complete (bump on change)
BASE_MARKER = "base_v1"
_PROC_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
_nft_path: str | None = None
#: attempts of a read-then-write operation racing another process on the same object
_RETRIES = 4


# ---------------------------------------------------------------------------- running nft

def _nft() -> str:
    global _nft_path
    if _nft_path is None:
        found = shutil.which("nft", path=_SEARCH_PATH)
        if found is None:
            raise FailedPrecondition("packet filter: the nft command is not installed (Debian: apt-get install nftables)")
        _nft_path = found
    return _nft_path


def _failure(stderr: str) -> str:
    """nft's multi-line error as one line: the message and the command it refers to."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    message = lines[0]
    if "Error:" in message:
        message = message.split("Error:", 1)[1].strip()
    if len(lines) > 1 and not set(lines[1]) <= {"^", "~", " "}:
        message += f" ({lines[1]})"
    return message


def _raced(err: FailedPrecondition, attempt: int) -> bool:
    """A read-then-write lost to a concurrent caller (a handle or element it read is gone)."""
    return "No such file or directory" in str(err) and attempt < _RETRIES - 1


def run_script(table: str, script: str, what: str) -> None:
    """Apply `script` as one transaction (`nft -f -`); on failure nothing has changed."""
    proc = subprocess.run([_nft(), "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FailedPrecondition(f"packet filter table {table}: {what} failed: {_failure(proc.stderr)}")


def _read(table: str, *obj: str) -> list[dict[str, Any]] | None:
    """`nft -j list <obj...>` as its list of objects; None when the object does not exist."""
    proc = subprocess.run([_nft(), "-j", "list", *obj], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return None
        raise FailedPrecondition(f"packet filter table {table}: listing {' '.join(obj)} failed: {_failure(proc.stderr)}")
    items: list[dict[str, Any]] = json.loads(proc.stdout).get("nftables", [])
    return items


# ---------------------------------------------------------------------------- validation

def _check_table(table: str) -> str:
    if not _NAME.fullmatch(table):
        raise InvalidArgument(f"packet filter table {table!r}: name must be a letter then up to 63 letters, digits or '_'")
    return table


def _check_owner(owner: str) -> str:
    if not _OWNER.fullmatch(owner):
        raise InvalidArgument(f"port owner {owner!r}: must be 1-128 letters, digits, '_', '.' or '-'")
    return owner


def _check_bridge(bridge: str) -> str:
    if not _BRIDGE.fullmatch(bridge):
        raise InvalidArgument(f"bridge {bridge!r}: must be an interface name of 1-15 letters, digits, '_', '.' or '-'")
    return bridge


def _write_proc(path: str, value: str, what: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        raise NotFound(f"{what}: {path} does not exist") from None
    except OSError as e:
        raise FailedPrecondition(f"{what}: cannot write {path}: {e.strerror}") from None


# ---------------------------------------------------------------------------- base

def ensure_base(table: str) -> None:
    """Create the table, its hooked chains and dispatch maps (idempotent); enable ip_forward."""
    t = f"ip {_check_table(table)}"
    script = f"""\
add table {t}
add chain {t} {BASE_MARKER}
add chain {t} published
add map {t} post_out {{ type ifname : verdict; }}
add map {t} post_src {{ type ipv4_addr : verdict; flags interval; }}
add map {t} fwd_in {{ type ifname : verdict; }}
add map {t} fwd_out {{ type ifname : verdict; }}
add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {t} output {{ type nat hook output priority -100; policy accept; }}
add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}
add chain {t} input {{ type filter hook input priority filter; policy accept; }}
flush chain {t} prerouting
add rule {t} prerouting fib daddr type local jump published
flush chain {t} output
add rule {t} output fib daddr type local jump published
flush chain {t} postrouting
add rule {t} postrouting oifname vmap @post_out
add rule {t} postrouting ip saddr vmap @post_src
flush chain {t} forward
add rule {t} forward ct state established,related accept
add rule {t} forward iifname vmap @fwd_in
add rule {t} forward oifname vmap @fwd_out
flush chain {t} input
add rule {t} input iifname != "lo" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop
"""
    # a read when the base is there: any transaction that flushes, deletes or fails costs
    # the kernel an RCU grace period (10-20 ms here) when nft closes its socket
    if _read(table, "chain", "ip", table, BASE_MARKER) is None:
        run_script(table, script, "creating the base chains")
    _write_proc(_PROC_FORWARD, "1", "enabling IPv4 forwarding")


def remove_table(table: str) -> None:
    """Delete the whole table (idempotent)."""
    t = f"ip {_check_table(table)}"
    run_script(table, f"add table {t}\ndelete table {t}\n", "deleting the table")


# ---------------------------------------------------------------------------- networks

_NET_CHAINS = ("po", "ms", "fi", "fo")


def _network_teardown(t: str, bridge: str, old_subnets: Iterable[str]) -> list[str]:
    """Commands removing a network's elements and chains, valid whether or not they exist."""
    cmds = [f"add chain {t} {p}_{bridge}" for p in _NET_CHAINS]
    for m, p in (("post_out", "po"), ("fwd_in", "fi"), ("fwd_out", "fo")):
        cmds.append(f'add element {t} {m} {{ "{bridge}" : jump {p}_{bridge} }}')
        cmds.append(f'delete element {t} {m} {{ "{bridge}" }}')
    cmds += [f"delete element {t} post_src {{ {s} }}" for s in old_subnets]
    for p in _NET_CHAINS:
        cmds += [f"flush chain {t} {p}_{bridge}", f"delete chain {t} {p}_{bridge}"]
    return cmds


def _subnets_of(table: str, bridge: str) -> list[str]:
    """The post_src keys that jump to this bridge's masquerade chain."""
    items = _read(table, "map", "ip", table, "post_src")
    if items is None:
        raise FailedPrecondition(f"packet filter table {table}: no base chains (ensure_base was not called)")
    found = []
    for item in items:
        for key, verdict in item.get("map", {}).get("elem", []):
            target = (verdict.get("jump") or verdict.get("goto") or {}).get("target")
            if target == f"ms_{bridge}":
                if isinstance(key, dict) and "prefix" in key:
                    found.append(f"{key['prefix']['addr']}/{key['prefix']['len']}")
                elif isinstance(key, dict) and "range" in key:
                    found.append(f"{key['range'][0]}-{key['range'][1]}")
                else:
                    found.append(str(key))
    return found


def add_network(table: str, bridge: str, subnet: str, internal: bool) -> None:
    """Install (or replace) the masquerade, hairpin and forwarding rules of one bridge network."""
    t = f"ip {_check_table(table)}"
    _check_bridge(bridge)
    try:
        net = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"network {bridge}: subnet {subnet!r} is not an IPv4 network") from None
    sysctl = f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"
    if not os.path.exists(sysctl):
        raise NotFound(f"network {bridge}: bridge {bridge} does not exist")
    cmds = _network_teardown(t, bridge, _subnets_of(table, bridge))
    b = f'"{bridge}"'
    cmds += [f"add chain {t} {p}_{bridge}" for p in _NET_CHAINS]
    cmds.append(f"add rule {t} po_{bridge} ct status dnat ip saddr {{ {net}, 127.0.0.0/8 }} masquerade")
    cmds.append(f'add element {t} post_out {{ {b} : jump po_{bridge} }}')
    if internal:
        cmds.append(f"add rule {t} fi_{bridge} oifname != {b} drop")
        cmds.append(f"add rule {t} fo_{bridge} iifname != {b} drop")
    else:
        cmds.append(f"add rule {t} ms_{bridge} oifname != {b} masquerade")
        cmds.append(f"add element {t} post_src {{ {net} : jump ms_{bridge} }}")
        cmds.append(f"add rule {t} fo_{bridge} ct status dnat accept")
        cmds.append(f"add rule {t} fo_{bridge} iifname != {b} drop")
    cmds.append(f'add element {t} fwd_in {{ {b} : jump fi_{bridge} }}')
    cmds.append(f'add element {t} fwd_out {{ {b} : jump fo_{bridge} }}')
    run_script(table, "\n".join(cmds) + "\n", f"adding network {bridge} ({net})")
    _write_proc(sysctl, "1", f"network {bridge}: enabling route_localnet")


def remove_network(table: str, bridge: str) -> None:
    """Remove one network's rules (idempotent; a missing table is fine)."""
    t = f"ip {_check_table(table)}"
    _check_bridge(bridge)
    for attempt in range(_RETRIES):
        try:
            old = _subnets_of(table, bridge)
        except FailedPrecondition:
            return
        try:
            run_script(table, "\n".join(_network_teardown(t, bridge, old)) + "\n", f"removing network {bridge}")
            return
        except FailedPrecondition as e:
            if not _raced(e, attempt):
                raise


# ---------------------------------------------------------------------------- published ports

def _dnat_rule(t: str, chain: str, m: PortMapping) -> str:
    if ":" in m.host_ip or ":" in m.container_ip:
        raise InvalidArgument(f"published port {m}: IPv6 is not supported by the packet filter")
    match = f"ip daddr {m.host_ip} " if m.host_ip and m.host_ip != "0.0.0.0" else ""
    return f"add rule {t} {chain} {match}{m.proto} dport {m.host_port} dnat to {m.container_ip}:{m.container_port}"


def _publish_cmds(t: str, owner: str, mappings: Sequence[PortMapping], create: bool) -> list[str]:
    chain = OWNER_PREFIX + owner
    cmds = [f"{'create' if create else 'add'} chain {t} {chain}"]
    cmds += [_dnat_rule(t, chain, m) for m in mappings]
    # one dispatch rule per protocol; an anonymous set only for several ports (each set makes
    # every listing of the chain slower: 340 owners, 7 ms without sets, 36 ms with)
    for proto in PROTOCOLS:
        found = sorted({m.host_port for m in mappings if m.proto == proto})
        if found:
            match = str(found[0]) if len(found) == 1 else "{ " + ", ".join(map(str, found)) + " }"
            cmds.append(f'add rule {t} published {proto} dport {match} jump {chain} comment "{owner}"')
    return cmds


def _owner_rules(table: str) -> list[tuple[str, int]] | None:
    """(owner, handle) of each dispatch rule in the published chain; None without the chain."""
    items = _read(table, "chain", "ip", table, "published")
    if items is None:
        return None
    found = []
    for item in items:
        rule = item.get("rule")
        if not rule:
            continue
        for expr in rule.get("expr", []):
            target = (expr.get("jump") or expr.get("goto") or {}).get("target", "") if isinstance(expr, dict) else ""
            if target.startswith(OWNER_PREFIX):
                found.append((target[len(OWNER_PREFIX):], int(rule["handle"])))
    return found


def _unpublish_cmds(t: str, owner: str, handles: Iterable[int]) -> list[str]:
    chain = OWNER_PREFIX + owner
    cmds = [f"delete rule {t} published handle {h}" for h in handles]
    return cmds + [f"add chain {t} {chain}", f"flush chain {t} {chain}", f"delete chain {t} {chain}"]


def publish(table: str, owner: str, bridge: str, mappings: Sequence[PortMapping]) -> None:
    """DNAT each mapping's host port (all local addresses, or its host_ip) to the container.

    One transaction; a new owner costs one `nft` call, re-publishing an owner replaces its
    rules (a read, then one call). `bridge` names the container's network (checked only).
    """
    t = f"ip {_check_table(table)}"
    _check_owner(owner)
    _check_bridge(bridge)
    mappings = list(mappings)
    for m in mappings:
        if m.host_port == 0:
            raise InvalidArgument(f"published port {m}: host port 0 must be resolved (ports.reserve) before publishing")
    if not mappings:
        unpublish(table, owner)
        return
    what = f"publishing ports of {owner}"
    try:
        run_script(table, "\n".join(_publish_cmds(t, owner, mappings, create=True)) + "\n", what)
    except FailedPrecondition as first:
        if "File exists" not in str(first):
            raise
        rules = _owner_rules(table) or []
        handles = [h for o, h in rules if o == owner]
        cmds = _unpublish_cmds(t, owner, handles) + _publish_cmds(t, owner, mappings, create=False)
        run_script(table, "\n".join(cmds) + "\n", what)


def unpublish(table: str, owner: str) -> None:
    """Remove an owner's published ports (idempotent; a missing table is fine)."""
    t = f"ip {_check_table(table)}"
    _check_owner(owner)
    for attempt in range(_RETRIES):
        handles = [h for o, h in _owner_rules(table) or [] if o == owner]
        if not handles:
            return  # publish is atomic: no dispatch rule means no owner chain either
        try:
            run_script(table, "\n".join(_unpublish_cmds(t, owner, handles)) + "\n", f"unpublishing ports of {owner}")
            return
        except FailedPrecondition as e:
            if not _raced(e, attempt):
                raise


def owners(table: str) -> set[str]:
    """Owners that currently have published ports (empty when the table does not exist).

    Read from the chain names alone (publish makes chain and dispatch rule together), which
    nft lists without fetching any rule: a few ms even with hundreds of owners.
    """
    _check_table(table)
    found = set()
    for item in _read(table, "chains", "ip") or []:
        chain = item.get("chain")
        if chain and chain.get("table") == table and chain.get("name", "").startswith(OWNER_PREFIX):
            found.add(chain["name"][len(OWNER_PREFIX):])
    return found
