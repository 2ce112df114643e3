"""`-p/--publish`, `--expose` and the network flags of run/create -> Docker's documents.

`-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]` with ranges (`8000-8010:80-90`) becomes
HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8000"}]} and
Config.ExposedPorts, as the docker CLI builds them.
"""

from __future__ import annotations

from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROTOS = ("tcp", "udp", "sctp")


def _range(text: str, what: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r} in port spec {spec!r}") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise InvalidArgument(f"invalid {what} {text!r} in port spec {spec!r}: ports are 1-65535, low-high")
    return a, b


def parse_publish(spec: str) -> list[tuple[str, str, str]]:
    """One -p value -> [(container port/proto, host ip, host port or '')]."""
    rest, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    if rest.startswith("["):
        raise InvalidArgument(f"invalid port spec {spec!r}: IPv6 host addresses are not supported")
    parts = rest.split(":")
    if len(parts) == 1:
        host_ip, host_port, cport = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, host_port, cport = "", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_port, cport = parts
    else:
        raise InvalidArgument(f"invalid port spec {spec!r}: too many colons")
    if host_ip:
        import ipaddress  # not at module level: ~1 ms of every `run`, needed only here

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    if not cport:
        raise InvalidArgument(f"no port specified: {spec}<empty>")
    c_lo, c_hi = _range(cport, "containerPort", spec)
    out = []
    if host_port:
        h_lo, h_hi = _range(host_port, "hostPort", spec)
        if (h_hi - h_lo) != (c_hi - c_lo):
            if c_lo == c_hi:
                # Docker: a single container port with a host range takes one port of the range
                return [(f"{c_lo}/{proto}", host_ip, f"{h_lo}-{h_hi}")]
            raise InvalidArgument(f"invalid ranges specified for container and host Ports: {cport} and {host_port}")
        for i in range(c_hi - c_lo + 1):
            out.append((f"{c_lo + i}/{proto}", host_ip, str(h_lo + i)))
    else:
        for port in range(c_lo, c_hi + 1):
            out.append((f"{port}/{proto}", host_ip, ""))
    return out


def port_bindings(publish: list[str]) -> tuple[dict[str, list[dict[str, str]]], dict[str, dict[str, Any]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    exposed: dict[str, dict[str, Any]] = {}
    for spec in publish:
        for key, hip, hport in parse_publish(spec):
            bindings.setdefault(key, []).append({"HostIp": hip, "HostPort": hport})
            exposed[key] = {}
    return bindings, exposed


def expose(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for it in items:
        port, _, proto = it.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in PROTOS:
            raise InvalidArgument(f"invalid proto: {proto}")
        lo, hi = _range(port, "port", it)
        for p in range(lo, hi + 1):
            out[f"{p}/{proto}"] = {}
    return out


def endpoints_config(network: str, ip: str, aliases: list[str], mac: str) -> dict[str, Any] | None:
    """NetworkingConfig.EndpointsConfig for --ip/--network-alias/--mac-address."""
    if not (ip or aliases or mac):
        return None
    if network in ("host", "none") or network.startswith("container:"):
        raise InvalidArgument(f"conflicting options: --ip, --network-alias and --mac-address cannot be "
                              f"used with --network {network}")
    name = "bridge" if network == "default" else network
    cfg: dict[str, Any] = {}
    if ip:
        import ipaddress

        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {ip}") from None
        cfg["IPAMConfig"] = {"IPv4Address": ip}
    if aliases:
        cfg["Aliases"] = list(aliases)
    if mac:
        cfg["MacAddress"] = mac
    return {name: cfg}
