"""import, images, tag, rmi, image inspect."""

from __future__ import annotations

import sys
import time

from .. import _util
from ..errors import DockyardError, InvalidArgument
from .args import Parser, engine
from .formatting import print_inspect, print_rows

IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
                  "Containers": "CONTAINERS"}


def cmd_import(argv: list[str]) -> int:
    p = Parser("import", usage="dockyard import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
               description="Import the contents from a tarball to create a filesystem image")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("source")
    p.add_argument("reference", nargs="?")
    ns = p.parse_args(argv)
    eng = engine()
    from ..engine import imageops

    if ns.source == "-":
        iid = imageops.import_tar(eng, sys.stdin.buffer, ns.reference, ns.change, ns.message, "-")
    else:
        if "://" in ns.source:
            raise InvalidArgument(f"importing from a URL is not supported offline: {ns.source}")
        try:
            f = open(ns.source, "rb")
        except OSError as e:
            raise InvalidArgument(f"open {ns.source}: {(e.strerror or str(e)).lower()}") from None
        with f:
            iid = imageops.import_tar(eng, f, ns.reference, ns.change, ns.message, ns.source)
    print(iid)
    return 0


def cmd_images(argv: list[str]) -> int:
    p = Parser("images", usage="dockyard images [OPTIONS] [REPOSITORY[:TAG]]", description="List images")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("repository", nargs="?")
    ns = p.parse_args(argv)
    from ..engine import imageops

    eng = engine()
    filters = imageops.filter_map(ns.filter)
    if ns.repository:
        filters.setdefault("reference", []).append(ns.repository)
    rows = []
    seen_ids = []
    for listed in imageops.list_images(eng, ns.all, filters):
        img = listed.image
        for tag in listed.repo_tags or ("<none>:<none>",):
            repo, _, t = tag.rpartition(":")
            digest = "<none>"
            for d in img.repo_digests:
                if d.split("@")[0] == repo:
                    digest = d.split("@")[1]
            created = _util.parse_rfc3339(img.created)
            rows.append({
                "Repository": repo, "Tag": t, "Digest": digest,
                "ID": img.id if ns.no_trunc else _util.short_id(img.id),
                "CreatedSince": _util.human_duration(time.time() - created) + " ago",
                "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
                "Size": _util.human_size(img.size), "VirtualSize": _util.human_size(img.size),
                "SharedSize": "N/A", "UniqueSize": "N/A", "Containers": "N/A",
            })
            seen_ids.append(rows[-1]["ID"])
    if ns.quiet:
        done = set()
        for i in seen_ids:
            if i not in done:
                print(i)
                done.add(i)
        return 0
    print_rows(rows, ns.format, IMAGES_TABLE_DIGESTS if ns.digests else IMAGES_TABLE, IMAGES_HEADERS)
    return 0


def cmd_tag(argv: list[str]) -> int:
    p = Parser("tag", usage="dockyard tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
               description="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source")
    p.add_argument("target")
    ns = p.parse_args(argv)
    from ..engine import imageops

    imageops.tag(engine(), ns.source, ns.target)
    return 0


def cmd_rmi(argv: list[str]) -> int:
    p = Parser("rmi", usage="dockyard rmi [OPTIONS] IMAGE [IMAGE...]", description="Remove one or more images")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="+")
    ns = p.parse_args(argv)
    from ..engine import imageops

    eng = engine()
    failed = False
    for ref in ns.images:
        try:
            for kind, what in imageops.remove(eng, ref, ns.force, prune=not ns.no_prune):
                print(f"{kind}: {what}")
        except DockyardError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_image_inspect(argv: list[str]) -> int:
    p = Parser("image inspect", usage="dockyard image inspect [OPTIONS] IMAGE [IMAGE...]",
               description="Display detailed information on one or more images")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("images", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    objs = []
    failed = False
    for ref in ns.images:
        try:
            objs.append(eng.images.inspect(eng.images.resolve(ref)))
        except DockyardError as e:
            print(f"Error: {e}", file=sys.stderr)
            failed = True
    if objs or not ns.format:
        print_inspect(objs, ns.format)
    return 1 if failed else 0
