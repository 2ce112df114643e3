"""Image endpoints: list, inspect, history, tag, remove, prune, save (get), load, import
(create with fromSrc), search (offline: always empty) and commit.

Pull and push (`/images/create?fromImage=`, `/images/{name}/push`) are in `distribution`.
Every handler translates: query and body in, one engine call, Docker's JSON out.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from .. import _util
from ..engine import imageops
from ..errors import InvalidArgument, NotFound
from ..images.config import container_config
from . import jsonstream
from .router import Empty, Json, Raw, Request, Stream, route

TAR = "application/x-tar"
JSON_STREAM = "application/json"


def api_version(req: Request) -> tuple[int, int]:
    """The request's API version as (1, 45)."""
    v = getattr(req, "api_version", None) or "1.45"
    if isinstance(v, tuple):
        return (int(v[0]), int(v[1]))
    major, _, minor = str(v).partition(".")
    try:
        return (int(major), int(minor or 0))
    except ValueError:
        return (1, 45)


def _created(value: str) -> int:
    try:
        return int(_util.parse_rfc3339(value))
    except ValueError:
        return 0


# ---- list, inspect, history ------------------------------------------------------------

def _shared_sizes(req: Request, listed: list[imageops.Listed]) -> dict[str, int]:
    """SharedSize per image: the size of its layers that another image also uses."""
    eng = req.engine
    chains: dict[str, dict[str, int]] = {}
    for img in eng.images.list_images():
        chain: dict[str, int] = {}
        if img.top_chain_id and eng.layers.exists(img.top_chain_id):
            chain = {layer.chain_id: layer.size for layer in eng.layers.chain(img.top_chain_id)}
        chains[img.id] = chain
    users: dict[str, int] = {}
    for chain in chains.values():
        for cid in chain:
            users[cid] = users.get(cid, 0) + 1
    return {item.image.id: sum(size for cid, size in chains.get(item.image.id, {}).items() if users[cid] > 1)
            for item in listed}


@route("GET", "/images/json")
def list_images(req: Request) -> Json:
    filters = req.filters()
    legacy = req.q("filter", "")  # API < 1.41: ?filter=<reference>
    if legacy:
        filters.setdefault("reference", []).append(legacy)
    listed = imageops.list_images(req.engine, req.qbool("all", False), filters)
    version = api_version(req)
    shared = _shared_sizes(req, listed) if req.qbool("shared-size", False) else {}
    counts: dict[str, int] = {}
    if shared:
        for c in req.engine.containers.all():
            counts[str(c.doc.get("Image"))] = counts.get(str(c.doc.get("Image")), 0) + 1
    out = []
    for item in listed:
        img = item.image
        tags, digests = list(item.repo_tags), list(item.repo_digests)
        if version < (1, 44) and not tags and not digests:
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        summary: dict[str, Any] = {
            "Containers": counts.get(img.id, 0) if shared else -1,
            "Created": _created(img.created),
            "Id": img.id,
            "Labels": imageops.labels_of(img),
            "ParentId": img.parent,
            "RepoDigests": digests,
            "RepoTags": tags,
            "SharedSize": shared.get(img.id, -1) if shared else -1,
            "Size": img.size,
        }
        if version < (1, 44):
            summary["VirtualSize"] = img.size
        out.append(summary)
    return Json(out)


@route("GET", "/images/{name:path}/json")
def inspect_image(req: Request) -> Json:
    eng = req.engine
    doc = eng.images.inspect(eng.images.resolve(req.params["name"]))
    version = api_version(req)
    # Docker dropped these in API 1.45, but docker-compose 1.29 (which asks for the newest
    # version) reads ContainerConfig.Volumes when it recreates a container: keep them
    doc.setdefault("Container", "")
    doc.setdefault("ContainerConfig", doc.get("Config") or container_config(None))
    if version < (1, 44):
        doc["VirtualSize"] = doc.get("Size", 0)
    return Json(doc)


@route("GET", "/images/{name:path}/history")
def image_history(req: Request) -> Json:
    from ..images.history import MISSING, image_history as history

    eng = req.engine
    rows = history(eng.images, eng.images.resolve(req.params["name"]))
    return Json([{"Id": r.id, "Created": int(r.created), "CreatedBy": r.created_by,
                  "Tags": list(r.tags) if r.id != MISSING and r.tags else None,
                  "Size": r.size, "Comment": r.comment} for r in rows])


# ---- tag, remove, prune ----------------------------------------------------------------

@route("POST", "/images/{name:path}/tag")
def tag_image(req: Request) -> Empty:
    repo = req.q("repo", "")
    tag = req.q("tag", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    imageops.tag(req.engine, req.params["name"], f"{repo}:{tag}" if tag else repo)
    return Empty(201)


@route("DELETE", "/images/{name:path}")
def remove_image(req: Request) -> Json:
    eng = req.engine
    records = imageops.remove(eng, req.params["name"], req.qbool("force", False),
                              prune=not req.qbool("noprune", False))
    return Json([{kind: what} for kind, what in records])


@route("POST", "/images/prune")
def prune_images(req: Request) -> Json:
    report = imageops.prune(req.engine, False, req.filters())
    return Json({"ImagesDeleted": [{kind: what} for kind, what in report.records] or None,
                 "SpaceReclaimed": report.reclaimed})


# ---- save, load, import ----------------------------------------------------------------

def _save_stream(req: Request, names: list[str]) -> Stream:
    from ..images.archive import select

    if not names:
        raise InvalidArgument("no images named to save")
    eng = req.engine
    select(eng.images, names)  # a missing image is a 404 before the stream starts
    return Stream(jsonstream.produce_file(lambda out: imageops.save(eng, names, cast(BinaryIO, out))), TAR)


@route("GET", "/images/{name:path}/get")
def save_image(req: Request) -> Stream:
    return _save_stream(req, [req.params["name"]])


@route("GET", "/images/get")
def save_images(req: Request) -> Stream:
    return _save_stream(req, list(req.query.get("names") or []))


@route("POST", "/images/load", stream_body=True)
def load_images(req: Request) -> Raw:
    lines: list[str] = []
    imageops.load(req.engine, cast(BinaryIO, req.rfile), lines.append)
    return Raw(b"".join(jsonstream.stream_line(line + "\n") for line in lines), JSON_STREAM)


@route("POST", "/images/create", stream_body=True)
def create_image(req: Request) -> Raw | Stream:
    if req.q("fromImage", ""):
        from . import distribution

        return distribution.pull(req)
    src = req.q("fromSrc", "")
    if not src:
        raise InvalidArgument("either fromImage or fromSrc must be given")
    if src != "-":
        raise InvalidArgument(f"importing from a URL is not supported offline: {src}")
    repo, tag = req.q("repo", ""), req.q("tag", "")
    ref = (f"{repo}:{tag}" if tag else repo) or None
    changes = list(req.query.get("changes") or [])
    image_id = imageops.import_tar(req.engine, cast(BinaryIO, req.rfile), ref, changes,
                                   req.q("message", "") or "", "-")
    return Raw(jsonstream.status(image_id), JSON_STREAM)


@route("GET", "/images/search")
def search_images(req: Request) -> Json:
    return Json([])  # offline: there is no index to search, and that is not an error


# ---- commit ----------------------------------------------------------------------------

@route("POST", "/commit")
def commit(req: Request) -> Json:
    from ..engine import files

    eng = req.engine
    name = req.q("container", "")
    if not name:
        raise InvalidArgument("container is required")
    try:
        c = eng.containers.resolve(name)
    except NotFound:
        raise NotFound(f"No such container: {name}") from None
    body = req.json()
    if body is not None and not isinstance(body, dict):
        raise InvalidArgument("invalid commit config: not a JSON object")
    repo, tag = req.q("repo", ""), req.q("tag", "")
    ref = (f"{repo}:{tag}" if tag else repo) or None
    image_id = files.commit(eng, c, ref, author=req.q("author", "") or "", comment=req.q("comment", "") or "",
                            changes=list(req.query.get("changes") or []),
                            pause=req.qbool("pause", True), config=body or None)
    return Json({"Id": image_id}, status=201)

