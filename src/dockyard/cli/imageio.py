"""history, save, load, image prune, system df."""

from __future__ import annotations

import os
import sys
import time

from .. import _util
from ..errors import DockyardError, InvalidArgument
from .args import Parser, confirm, engine
from .formatting import print_rows, trunc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from ..engine.core import Engine
    from ..images.store import Image

HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def _bool_flag(value: str) -> bool:
    v = value.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise InvalidArgument(f'invalid argument "{value}" for "-H, --human" flag: strconv.ParseBool: '
                          f'parsing "{value}": invalid syntax')


def cmd_history(argv: list[str]) -> int:
    p = Parser("history", usage="dockyard history [OPTIONS] IMAGE", description="Show the history of an image")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-H", "--human", default="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("image")
    # a bool flag, as pflag's: a bare -H takes no value (`-H IMAGE` is not `-H=IMAGE`)
    ns = p.parse_args([f"{a}=true" if a in ("-H", "--human") else a for a in argv])
    try:
        human = _bool_flag(ns.human)
    except InvalidArgument as e:
        p.error(str(e))
    from ..images.history import MISSING, image_history

    eng = engine()
    rows = image_history(eng.images, eng.images.resolve(ns.image))
    now = time.time()
    out: list[dict[str, Any]] = []
    for r in rows:
        ident = r.id if ns.no_trunc or r.id == MISSING else _util.short_id(r.id)
        created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.created))
        created_by = r.created_by.replace("\t", " ")
        out.append({
            "ID": ident,
            "CreatedSince": (_util.human_duration(now - r.created) + " ago") if human else created_at,
            "CreatedAt": created_at,
            "CreatedBy": created_by if ns.no_trunc else trunc(created_by, 45),
            "Size": _util.human_size(r.size, 3) if human else str(r.size),
            "Comment": r.comment,
        })
    if ns.quiet:
        for row in out:
            print(row["ID"])
        return 0
    print_rows(out, ns.format, HISTORY_TABLE, HISTORY_HEADERS)
    return 0


def _platform(spec: str | None) -> "tuple[str, str, str | None] | None":
    """--platform os/arch[/variant], as `pull --platform` reads it; None when not given."""
    if not spec:
        return None
    from ..engine.distmeta import parse_platform

    return parse_platform(spec)


def cmd_save(argv: list[str]) -> int:
    p = Parser("save", usage="dockyard save [OPTIONS] IMAGE [IMAGE...]",
               description="Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("--platform", help="Save only the given platform variant")
    p.add_argument("images", nargs="+")
    ns = p.parse_args(argv)
    from ..engine.imageops import save

    plat = _platform(ns.platform)
    eng = engine()
    if not ns.output:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        save(eng, ns.images, sys.stdout.buffer, plat)
        sys.stdout.buffer.flush()
        return 0
    target = os.path.abspath(ns.output)
    if not os.path.isdir(os.path.dirname(target)):
        raise InvalidArgument(f"failed to save image: invalid output path: directory "
                              f"{os.path.dirname(target)!r} does not exist")
    if os.path.isdir(target):
        raise InvalidArgument(f"failed to save image: invalid output path: {ns.output!r} is a directory")
    tmp = os.path.join(os.path.dirname(target) or ".", f".{os.path.basename(target)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            save(eng, ns.images, f, plat)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return 0


def cmd_load(argv: list[str]) -> int:
    p = Parser("load", usage="dockyard load [OPTIONS]",
               description="Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.add_argument("--platform", help="Load only the given platform variant")
    ns = p.parse_args(argv)
    from ..engine.imageops import load

    plat = _platform(ns.platform)
    eng = engine()

    def say(line: str) -> None:
        print(line, flush=True)

    if ns.input:
        try:
            f = open(ns.input, "rb")
        except OSError as e:
            raise InvalidArgument(f"open {ns.input}: {(e.strerror or str(e)).lower()}") from None
        with f:
            load(eng, f, say, plat)
        return 0
    if sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty")
    load(eng, sys.stdin.buffer, say, plat)
    return 0


# ---- prune and df ---------------------------------------------------------------------


def _timestamp(value: str) -> float:
    try:
        return _util.parse_rfc3339(value)
    except ValueError:
        return 0.0


def cmd_image_prune(argv: list[str]) -> int:
    p = Parser("image prune", usage="dockyard image prune [OPTIONS]", description="Remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help='Provide filter values (e.g. "until=<timestamp>")')
    ns = p.parse_args(argv)
    if not ns.force:
        what = ("all images without at least one container associated to them" if ns.all
                else "all dangling images")
        if not confirm(what):
            return 0
    from ..engine import imageops

    report = imageops.prune(engine(), ns.all, imageops.filter_map(ns.filter))
    for err in report.errors:
        print(f"Error: {err}", file=sys.stderr)
    lines = [f"{kind.lower()}: {what}" for kind, what in report.records]
    reclaimed = report.reclaimed
    if lines:
        print("Deleted Images:")
        print("\n".join(lines))
        print()
    print(f"Total reclaimed space: {_util.human_size(reclaimed)}")
    return 0


def _pct(part: int, total: int) -> str:
    h = _util.human_size(part)
    return f"{h} ({part * 100 // total}%)" if total > 0 else h


def cmd_system_df(argv: list[str]) -> int:
    p = Parser("system df", usage="dockyard system df [OPTIONS]", description="Show docker disk usage")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    p.add_argument("--format", help="Format output using a custom template")
    ns = p.parse_args(argv)
    eng = engine()
    images = eng.images.list_images()
    containers = eng.containers.all()
    layer_sizes = {layer.chain_id: layer.size for layer in eng.layers.list_layers()}
    chains: dict[str, set[str]] = {}
    for img in images:
        chain: set[str] = set()
        if img.top_chain_id and eng.layers.exists(img.top_chain_id):
            chain = {layer.chain_id for layer in eng.layers.chain(img.top_chain_id)}
        chains[img.id] = chain
    users: dict[str, int] = {}
    for c in containers:
        users[str(c.doc.get("Image"))] = users.get(str(c.doc.get("Image")), 0) + 1
    all_layers: set[str] = set().union(*chains.values()) if chains else set()
    active_layers: set[str] = set()
    for img in images:
        if users.get(img.id):
            active_layers |= chains[img.id]
    total = sum(layer_sizes.get(c, 0) for c in all_layers)
    active_size = sum(layer_sizes.get(c, 0) for c in active_layers)
    rw: dict[str, int] = {}
    for c in containers:
        try:
            rw[c.id] = eng.layers.rw_size(c.id)
        except (DockyardError, OSError):
            rw[c.id] = 0
    c_total = sum(rw.values())
    c_recl = sum(rw[c.id] for c in containers if not c.running)
    rows = [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(sum(1 for img in images if users.get(img.id))),
         "Size": _util.human_size(total), "Reclaimable": _pct(total - active_size, total)},
        {"Type": "Containers", "TotalCount": str(len(containers)),
         "Active": str(sum(1 for c in containers if c.running)),
         "Size": _util.human_size(c_total), "Reclaimable": _pct(c_recl, c_total)},
        {"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]
    if not ns.verbose:
        print_rows(rows, ns.format, "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                   {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                    "Reclaimable": "RECLAIMABLE"})
        return 0
    _df_verbose(eng, images, containers, chains, users, layer_sizes, rw)
    return 0


def _df_verbose(eng: "Engine", images: list["Image"], containers: list[Any], chains: dict[str, set[str]],
                users: dict[str, int], layer_sizes: dict[str, int], rw: dict[str, int]) -> None:
    from ..engine import query

    now = time.time()
    count: dict[str, int] = {}
    for chain in chains.values():
        for cid in chain:
            count[cid] = count.get(cid, 0) + 1
    print("Images space usage:\n")
    irows = []
    for img in images:
        size = sum(layer_sizes.get(c, 0) for c in chains[img.id])
        shared = sum(layer_sizes.get(c, 0) for c in chains[img.id] if count.get(c, 0) > 1)
        for tag in img.repo_tags or ("<none>:<none>",):
            repo, _, t = tag.rpartition(":")
            irows.append({"Repository": repo, "Tag": t, "ID": _util.short_id(img.id),
                          "CreatedSince": _util.human_duration(now - _timestamp(img.created)) + " ago",
                          "Size": _util.human_size(size), "SharedSize": _util.human_size(shared),
                          "UniqueSize": _util.human_size(size - shared), "Containers": str(users.get(img.id, 0))})
    print_rows(irows, None, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
               "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
               {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                "Containers": "CONTAINERS"})
    print("\nContainers space usage:\n")
    crows = []
    for c in containers:
        r = query.ps_row(eng, c)
        crows.append({"ID": c.id[:12], "Image": r.get("Image", ""),
                      "Command": '"' + trunc(str(r.get("Command", "")), 20) + '"', "LocalVolumes": "0",
                      "Size": _util.human_size(rw.get(c.id, 0)), "RunningFor": r.get("RunningFor", ""),
                      "Status": r.get("Status", ""), "Names": r.get("Names", "")})
    print_rows(crows, None, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
               "{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
               {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
                "Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"})
    print("\nLocal Volumes space usage:\n")
    print("VOLUME NAME   LINKS     SIZE")
    print("\nBuild cache usage: 0B\n")
    print("CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED")
