"""`network create|ls|inspect|rm|prune|connect|disconnect` and `port`."""

from __future__ import annotations

import sys
import time

from .. import _util
from ..errors import DockyardError, InvalidArgument, NotFound
from .args import Parser, confirm, engine
from .formatting import print_inspect, print_rows

NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def cmd_network_create(argv: list[str]) -> int:
    from ..engine import networks

    p = Parser("network create", usage="dockyard network create [OPTIONS] NETWORK", description="Create a network")
    p.add_argument("-d", "--driver", default="bridge", help="Driver to manage the Network")
    p.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format that represents a network segment")
    p.add_argument("--gateway", action="append", default=[], help="IPv4 Gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[], help="Allocate container ip from a sub-range")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("name")
    ns = p.parse_args(argv)
    for flag in ("subnet", "gateway", "ip_range"):
        if len(getattr(ns, flag)) > 1:
            raise InvalidArgument(f"--{flag.replace('_', '-')}: only one IPv4 pool per network is supported")
    net = networks.create(engine(), ns.name, ns.driver, (ns.subnet or [""])[0], (ns.gateway or [""])[0],
                          (ns.ip_range or [""])[0], ns.internal, _util.kv_map(ns.label, "label"), _util.kv_map(ns.opt, "option"),
                          attachable=ns.attachable)
    print(net.id)
    return 0


def cmd_network_ls(argv: list[str]) -> int:
    from ..engine import networks

    p = Parser("network ls", usage="dockyard network ls [OPTIONS]", description="List networks")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    ns = p.parse_args(argv)
    filters = _util.filter_map(ns.filter)
    eng = engine()
    rows = []
    for net in networks.list_networks(eng, filters):
        rows.append({"ID": net.id if ns.no_trunc else net.id[:12], "Name": net.name, "Driver": net.driver,
                     "Scope": "local", "IPv6": "false", "Internal": str(net.internal).lower(),
                     "Labels": ",".join(f"{k}={v}" for k, v in net.labels.items()),
                     "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                                                time.gmtime(networks.created_ts(net)))})
    if ns.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    print_rows(rows, ns.format, NETWORK_TABLE, NETWORK_HEADERS)
    return 0


def cmd_network_inspect(argv: list[str]) -> int:
    from ..engine import networks

    p = Parser("network inspect", usage="dockyard network inspect [OPTIONS] NETWORK [NETWORK...]",
               description="Display detailed information on one or more networks")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
    p.add_argument("names", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    st = networks.store(eng)
    out, missing = [], []
    for ref in ns.names:
        try:
            out.append(networks.inspect(eng, st.get(ref)))
        except NotFound as e:
            missing.append(str(e))
    if out or not missing:
        print_inspect(out, ns.format)
    for m in missing:
        print(f"Error: {m}", file=sys.stderr)
    return 1 if missing else 0


def cmd_network_rm(argv: list[str]) -> int:
    from ..engine import networks

    p = Parser("network rm", usage="dockyard network rm NETWORK [NETWORK...]", description="Remove one or more networks")
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")
    p.add_argument("names", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    st = networks.store(eng)
    failed = False
    for ref in ns.names:
        try:
            networks.remove(eng, st.get(ref))
            print(ref)
        except NotFound as e:
            if not ns.force:
                print(f"Error: {e}", file=sys.stderr)
                failed = True
        except DockyardError as e:
            print(f"Error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_network_prune(argv: list[str]) -> int:
    from ..engine import networks

    p = Parser("network prune", usage="dockyard network prune [OPTIONS]", description="Remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'label=<label>')")
    ns = p.parse_args(argv)
    filters = _util.filter_map(ns.filter)
    if set(filters) - {"label"}:
        raise InvalidArgument(f"invalid filter '{sorted(set(filters) - {'label'})[0]}'")
    if not ns.force and sys.stdin.isatty() and not confirm("all custom networks not used by at least one container"):
        return 0
    removed = networks.prune(engine(), filters.get("label"))
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
    return 0


def cmd_network_connect(argv: list[str]) -> int:
    from ..engine import netattach, networks

    p = Parser("network connect", usage="dockyard network connect [OPTIONS] NETWORK CONTAINER",
               description="Connect a container to a network")
    p.add_argument("--ip", default="", help="IPv4 address (e.g., \"172.30.100.104\")")
    p.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("network")
    p.add_argument("container")
    ns = p.parse_args(argv)
    eng = engine()
    net = networks.store(eng).get(ns.network)
    c = eng.containers.resolve(ns.container)
    with eng.containers.lock(c.id):
        c = eng.containers.load(c.id)
        netattach.connect(eng, c, net, ns.ip, ns.alias)
    return 0


def cmd_network_disconnect(argv: list[str]) -> int:
    from ..engine import netattach, networks

    p = Parser("network disconnect", usage="dockyard network disconnect [OPTIONS] NETWORK CONTAINER",
               description="Disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")
    p.add_argument("network")
    p.add_argument("container")
    ns = p.parse_args(argv)
    eng = engine()
    net = networks.store(eng).get(ns.network)
    c = eng.containers.resolve(ns.container)
    with eng.containers.lock(c.id):
        c = eng.containers.load(c.id)
        netattach.disconnect(eng, c, net, ns.force)
    return 0


def cmd_port(argv: list[str]) -> int:
    p = Parser("port", usage="dockyard port CONTAINER [PRIVATE_PORT[/PROTO]]",
               description="List port mappings or a specific mapping for the container")
    p.add_argument("container")
    p.add_argument("port", nargs="?")
    ns = p.parse_args(argv)
    from ..engine import lifecycle

    eng = engine()
    c = lifecycle.refresh(eng, eng.containers.resolve(ns.container))
    ports = ((c.doc.get("NetworkSettings") or {}).get("Ports") or {}) if c.running else {}
    if ns.port:
        key = ns.port if "/" in ns.port else f"{ns.port}/tcp"
        binds = ports.get(key)
        if not binds:
            raise NotFound(f"No public port '{key}' published for {ns.container}")
        for b in binds:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0

