"""ps, inspect, top, stats."""

from __future__ import annotations

import sys

from ..engine import query
from ..errors import DockyardError, NotFound
from .args import Parser, engine
from .formatting import print_inspect, print_rows, trunc

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Label": "LABEL"}


def cmd_ps(argv: list[str]) -> int:
    p = Parser("ps", usage="dockyard ps [OPTIONS]", description="List containers")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all states)")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    ns = p.parse_args(argv)
    eng = engine()
    cs = query.list_containers(eng, ns.all, ns.filter, 1 if ns.latest else ns.last)
    if ns.quiet:
        for c in cs:
            print(c.id if ns.no_trunc else c.id[:12])
        return 0
    rows = []
    fmt = ns.format
    want_size = ns.size or bool(fmt and ".Size" in fmt)
    for c in cs:
        r = query.ps_row(eng, c, size=want_size)
        if not ns.no_trunc:
            r["ID"] = r["ID"][:12]
            r["Command"] = '"' + trunc(r["Command"], 20) + '"'
        else:
            r["Command"] = '"' + r["Command"] + '"'
        rows.append(r)
    table = PS_TABLE + ("\t{{.Size}}" if ns.size else "")
    print_rows(rows, fmt, table, PS_HEADERS)
    return 0


def cmd_inspect(argv: list[str]) -> int:
    p = Parser("inspect", usage="dockyard inspect [OPTIONS] NAME|ID [NAME|ID...]",
               description="Return low-level information on Dockyard objects")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", help="Return JSON for specified type")
    p.add_argument("names", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    objs = []
    failed = False
    for ref in ns.names:
        try:
            if ns.type in (None, "container"):
                try:
                    c = eng.containers.resolve(ref)
                    objs.append(query.inspect(eng, c))
                    continue
                except NotFound:
                    if ns.type == "container":
                        print(f"Error: No such container: {ref}", file=sys.stderr)
                        failed = True
                        continue
            if ns.type in (None, "image"):
                img = eng.images.resolve(ref)
                objs.append(eng.images.inspect(img))
                continue
            raise NotFound(f"No such object: {ref}")
        except NotFound:
            print(f"Error: No such object: {ref}", file=sys.stderr)
            failed = True
    if objs or not ns.format:
        print_inspect(objs, ns.format)
    return 1 if failed else 0


def cmd_container_inspect(argv: list[str]) -> int:
    return cmd_inspect(["--type", "container", *argv])


def cmd_top(argv: list[str]) -> int:
    p = Parser("top", usage="dockyard top CONTAINER [ps OPTIONS]", description="Display the running processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs="*")
    ns, extra = p.parse_known_args(argv)
    eng = engine()
    header, rows = query.top(eng, eng.containers.resolve(ns.container), list(ns.ps_args) + extra)
    from .tabwriter import tabwrite

    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    sys.stdout.write(tabwrite("\n".join(lines) + "\n", minwidth=20, tabwidth=1, padding=3))
    return 0


STATS_TABLE = "table {{.Container}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_HEADERS = {"Container": "CONTAINER ID", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}


def cmd_stats(argv: list[str]) -> int:
    p = Parser("stats", usage="dockyard stats [OPTIONS] [CONTAINER...]", description="Display a live stream of container(s) resource usage statistics")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("containers", nargs="*")
    ns = p.parse_args(argv)
    eng = engine()
    import time

    while True:
        if ns.containers:
            cs = [eng.containers.resolve(r) for r in ns.containers]
        else:
            cs = query.list_containers(eng, ns.all)
        rows = []
        for c in cs:
            try:
                rows.append(query.stats(eng, c))
            except DockyardError as e:
                print(f"Error: {e}", file=sys.stderr)
        if not ns.no_stream:
            sys.stdout.write("\033[2J\033[H")
        print_rows(rows, ns.format, STATS_TABLE, STATS_HEADERS)
        if ns.no_stream:
            return 0
        time.sleep(1)
