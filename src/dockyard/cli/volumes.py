"""`dockyard volume create|ls|inspect|rm|prune`."""

from __future__ import annotations

import sys

from .. import _util
from ..errors import DockyardError, InvalidArgument
from .args import Parser, confirm, engine
from .formatting import print_inspect, print_rows

LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
              "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Label": "LABEL",
              "Availability": "AVAILABILITY", "Group": "GROUP", "Status": "STATUS"}
USAGE = """Usage:  dockyard volume COMMAND

Manage volumes

Commands:
  create      Create a volume
  inspect     Display detailed information on one or more volumes
  ls          List volumes
  prune       Remove unused local volumes
  rm          Remove one or more volumes

Run 'dockyard volume COMMAND --help' for more information on a command."""


def cmd_volume(argv: list[str]) -> int:
    if not argv or argv[0] in ("--help", "-h"):
        print(USAGE)
        return 0
    sub, rest = argv[0], argv[1:]
    func = {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm, "remove": _rm,
            "prune": _prune}.get(sub)
    if func is None:
        print(f"dockyard: 'volume {sub}' is not a dockyard command.\nSee 'dockyard volume --help'",
              file=sys.stderr)
        return 125
    return func(rest)


def _opts(items: list[str]) -> dict[str, str]:
    """-o KEY=VALUE driver options (Docker refuses an item without '=')."""
    for it in items:
        if it.startswith("=") or "=" not in it:
            raise InvalidArgument(f"invalid argument \"{it}\" for \"-o, --opt\" flag: "
                                  f"invalid key value pair format in driver options")
    return _util.kv_map(items, "opt")


def _create(argv: list[str]) -> int:
    from ..engine import volumes

    p = Parser("volume create", usage="dockyard volume create [OPTIONS] [VOLUME]", description="Create a volume")
    p.add_argument("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("--name", help="Specify volume name")
    p.add_argument("name_arg", nargs="?", metavar="VOLUME")
    ns = p.parse_args(argv)
    if ns.name and ns.name_arg and ns.name != ns.name_arg:
        raise InvalidArgument("conflicting options: either specify --name or provide positional arg, not both")
    v = volumes.create(engine(), ns.name_arg or ns.name, ns.driver, _opts(ns.opt), _util.kv_map(ns.label, "label"))
    print(v.name)
    return 0


def _ls(argv: list[str]) -> int:
    from ..engine import volumes

    p = Parser("volume ls", usage="dockyard volume ls [OPTIONS]", description="List volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. 'dangling=true')")
    p.add_argument("--format", help="Format output using a custom template")
    ns = p.parse_args(argv)
    vols = volumes.list_volumes(engine(), ns.filter)
    if ns.quiet:
        for v in vols:
            print(v.name)
        return 0
    print_rows([volumes.row(v) for v in vols], ns.format, LS_TABLE, LS_HEADERS)
    return 0


def _inspect(argv: list[str]) -> int:
    from ..engine import volumes

    p = Parser("volume inspect", usage="dockyard volume inspect [OPTIONS] VOLUME [VOLUME...]",
               description="Display detailed information on one or more volumes")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("names", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    objs = []
    failed = False
    for name in ns.names:
        try:
            objs.append(volumes.get(eng, name).inspect())
        except DockyardError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    if objs or not ns.format:
        print_inspect(objs, ns.format)
    return 1 if failed else 0


def _rm(argv: list[str]) -> int:
    from ..engine import volumes

    p = Parser("volume rm", usage="dockyard volume rm [OPTIONS] VOLUME [VOLUME...]",
               description="Remove one or more volumes")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
    p.add_argument("names", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    failed = False
    for name in ns.names:
        try:
            volumes.remove(eng, name, ns.force)
            print(name)
        except DockyardError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _prune(argv: list[str]) -> int:
    from ..engine import volumes

    p = Parser("volume prune", usage="dockyard volume prune [OPTIONS]", description="Remove unused local volumes")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'label=<label>')")
    ns = p.parse_args(argv)
    if not ns.force:
        what = "all local volumes not used by at least one container" if ns.all else \
            "anonymous local volumes not used by at least one container"
        if not confirm(what):
            return 0
    removed, size = volumes.prune(engine(), ns.all, ns.filter)
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
        print()
    print(f"Total reclaimed space: {_util.human_size(size)}")
    return 0
