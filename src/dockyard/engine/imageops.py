"""Image operations shared by the CLI and the Engine API: listing with Docker's filters
(dangling, label, before, since, reference), prune, and the containers that use an image.

Filters come as Docker's map (`{"dangling": ["true"], "label": ["a=b"]}`); the CLI turns its
`-f key=value` items into that map with `filter_map`.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Mapping, Sequence

from .._record import dataclass
from .. import _util
from ..errors import Conflict, DockyardError, InvalidArgument, NotFound
from . import events
from .core import Engine
from .query import label_match

if TYPE_CHECKING:
    from ..images.store import ContainersUsing, Image

Filters = Mapping[str, Sequence[str]]

LIST_FILTERS = ("dangling", "label", "label!", "before", "since", "reference")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")


def filter_map(items: Iterable[str]) -> dict[str, list[str]]:
    """`-f key=value` items as Docker's filter map."""
    out: dict[str, list[str]] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        out.setdefault(k, []).append(v)
    return out


def _check(filters: Filters, allowed: Sequence[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")


def containers_using(engine: Engine) -> "ContainersUsing":
    """`ImageStore.remove`'s callback: the (id, running) containers made from an image."""
    def using(image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.running) for c in engine.containers.all() if c.doc.get("Image") == image_id]
    return using


def _timestamp(value: str) -> float:
    try:
        return _util.parse_rfc3339(value)
    except ValueError:
        return 0.0


def _bool(key: str, values: Sequence[str]) -> bool:
    v = values[-1].lower()
    if v not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"Invalid filter '{key}=[{values[-1]}]'")
    return v in ("true", "1")


def labels_of(img: "Image") -> dict[str, str]:
    return dict((img.config.get("config") or {}).get("Labels") or {})


def path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: `*` and `?` never match `/`."""
    rx = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            rx += "[^/]*"
        elif ch == "?":
            rx += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                return False
            body = pattern[i + 1:end]
            rx += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            rx += re.escape(pattern[i])
        else:
            rx += re.escape(ch)
        i += 1
    return re.fullmatch(rx, name) is not None


def reference_match(pattern: str, familiar: str) -> bool:
    """Docker's reference.FamiliarMatch: the pattern against "name:tag" (or "name@digest"),
    then against the name alone."""
    if path_match(pattern, familiar):
        return True
    name = familiar.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return path_match(pattern, name)


@dataclass(frozen=True)
class Listed:
    """An image as `images` shows it: the references that passed the filters."""

    image: "Image"
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]

    @property
    def dangling(self) -> bool:
        return not self.image.repo_tags and not self.image.repo_digests


def list_images(engine: Engine, all_: bool = False, filters: Filters | None = None) -> list[Listed]:
    """Docker's image list: newest first; untagged images with children (intermediate build
    images) only with `all_`; `reference` filters narrow the tags shown."""
    flt = dict(filters or {})
    _check(flt, LIST_FILTERS)
    store = engine.images
    images = store.list_images()
    dangling = _bool("dangling", flt["dangling"]) if flt.get("dangling") else None
    before = _bound(engine, flt.get("before"))
    since = _bound(engine, flt.get("since"))
    refs = list(flt.get("reference") or [])
    parents = {img.parent for img in images if img.parent}
    out: list[Listed] = []
    for img in images:
        created = _timestamp(img.created)
        if before is not None and created >= before:
            continue
        if since is not None and created <= since:
            continue
        labels = labels_of(img)
        if not all(label_match(labels, s) for s in flt.get("label") or []):
            continue
        if any(label_match(labels, s) for s in flt.get("label!") or []):
            continue
        tags = tuple(t for t in img.repo_tags if not refs or any(reference_match(r, t) for r in refs))
        digests = tuple(d for d in img.repo_digests if not refs or any(reference_match(r, d) for r in refs))
        untagged = not img.repo_tags and not img.repo_digests
        if refs and not tags and not digests:
            continue
        if untagged:
            if dangling is False or (img.id in parents and (not all_ or dangling is True)):
                continue
        elif dangling is True and img.repo_tags:
            continue
        out.append(Listed(img, tags, digests))
    return out


def _bound(engine: Engine, values: Sequence[str] | None) -> float | None:
    """`before`/`since`: the created time of the image named by the filter's value."""
    if not values:
        return None
    return _timestamp(engine.images.resolve(values[-1]).created)


def parse_until(value: str, now: float) -> float:
    """A Docker `until` filter value: a Go duration before now, a unix time, or a date."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", value)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        return now - float(m.group(1)) * mult
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            pass
    try:
        return _util.parse_rfc3339(value)
    except ValueError:
        raise InvalidArgument(f"failed to parse value as time or duration: \"{value}\"") from None


def prune_candidates(engine: Engine, all_: bool, filters: Filters | None = None) -> list["Image"]:
    """Images `image prune` would remove now: unused, not a parent, dangling unless `all_`
    (or `dangling=false`), older than `until`, matching the label filters."""
    flt = dict(filters or {})
    _check(flt, PRUNE_FILTERS)
    until = parse_until(flt["until"][-1], time.time()) if flt.get("until") else None
    if flt.get("dangling"):
        all_ = not _bool("dangling", flt["dangling"])
    images = engine.images.list_images()
    used = {str(c.doc.get("Image")) for c in engine.containers.all() if c.doc.get("Image")}
    parents = {img.parent for img in images if img.parent}
    out = []
    for img in images:
        if img.id in used or img.id in parents:  # parents go with their children (rmi prunes them)
            continue
        if not all_ and (img.repo_tags or img.repo_digests):
            continue
        if until is not None and _timestamp(img.created) >= until:
            continue
        labels = labels_of(img)
        if not all(label_match(labels, s) for s in flt.get("label") or []):
            continue
        if any(label_match(labels, s) for s in flt.get("label!") or []):
            continue
        out.append(img)
    return out


@dataclass
class PruneReport:
    records: list[tuple[str, str]]  # ("Untagged", ref) / ("Deleted", id or chain id)
    reclaimed: int
    errors: list[str]


def prune(engine: Engine, all_: bool = False, filters: Filters | None = None) -> PruneReport:
    """`docker image prune`: remove candidates pass after pass (removing a child can free
    its parent); images another user removed or started using meanwhile are skipped."""
    sizes = {layer.chain_id: layer.size for layer in engine.layers.list_layers()}
    report = PruneReport([], 0, [])
    failed: set[str] = set()
    for _ in range(100):
        progress = False
        for img in prune_candidates(engine, all_, filters):
            if img.id in failed:
                continue
            try:
                records = remove(engine, img.id, all_, prune=True)
            except (Conflict, NotFound):  # raced with another user of the image: skip it, as Docker
                failed.add(img.id)
                continue
            except DockyardError as e:
                report.errors.append(str(e))
                failed.add(img.id)
                continue
            progress = True
            for kind, what in records:
                report.records.append((kind, what))
                if kind == "Deleted":
                    report.reclaimed += sizes.get(what, 0)
        if not progress:
            break
    return report


# ---- changes that Docker reports as image events -----------------------------------------

def _image_attrs(engine: Engine, image_id: str, name: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    try:
        attrs.update(labels_of(engine.images.get(image_id)))
    except (NotFound, ValueError):
        pass
    attrs["name"] = name
    return attrs


def tag(engine: Engine, source: str, target: str) -> str:
    """`docker tag`; returns the image ID. Event: image tag."""
    ref = engine.images.tag(source, target)
    image_id = engine.images.resolve(ref.familiar()).id
    events.emit(engine, "image", "tag", image_id, _image_attrs(engine, image_id, ref.familiar()))
    return image_id


def remove(engine: Engine, name: str, force: bool = False, prune: bool = True) -> list[tuple[str, str]]:
    """`docker rmi`: Docker's records. Events: image untag (per reference), delete (per image)."""
    images_before = set(engine.images.ids())
    try:
        image_id = engine.images.resolve(name).id
    except NotFound:
        image_id = ""
    labels = _image_attrs(engine, image_id, name) if image_id else {}
    records = engine.images.remove(name, force, containers_using(engine), prune=prune)
    for kind, what in records:
        if kind == "Untagged":
            events.emit(engine, "image", "untag", image_id or what, {**labels, "name": what})
        elif kind == "Deleted" and what in images_before:
            events.emit(engine, "image", "delete", what, {**labels, "name": what})
    return records


def import_tar(engine: Engine, stream: BinaryIO, ref: str | None, changes: list[str], message: str = "",
               src: str = "-") -> str:
    """`docker import`; returns the image ID. Event: image import."""
    image_id = engine.images.import_tar(stream, ref, changes, message, src)
    events.emit(engine, "image", "import", image_id, _image_attrs(engine, image_id, image_id))
    return image_id


def load(engine: Engine, stream: BinaryIO, say: Callable[[str], None],
         platform: tuple[str, str, str | None] | None = None) -> list[str]:
    """`docker load`; returns the loaded image IDs. Event: image load (per image)."""
    from ..images.archive_load import load as load_archive

    ids = load_archive(engine.images, stream, say, platform)
    for image_id in ids:
        events.emit(engine, "image", "load", image_id, _image_attrs(engine, image_id, image_id))
    return ids


def save(engine: Engine, names: list[str], out: BinaryIO,
         platform: tuple[str, str, str | None] | None = None) -> None:
    """`docker save` of `names` as one tar on `out`. Event: image save (per name)."""
    from ..images.archive import save as save_archive

    save_archive(engine.images, names, out, platform)
    for name in names:
        try:
            image_id = engine.images.resolve(name).id
        except NotFound:
            continue
        events.emit(engine, "image", "save", image_id, _image_attrs(engine, image_id, name))


def merge_commit_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Docker's commit `merge(userConf, containerConf)`: a Config given with `commit` keeps
    what it sets; what it leaves empty comes from the container's config (Env and Labels
    merged by key, ExposedPorts and Volumes unioned, Cmd only when it sets no Entrypoint)."""
    out = dict(user)
    for key in ("User", "WorkingDir", "StopSignal", "Healthcheck", "Hostname", "Domainname", "Image"):
        if not out.get(key) and container.get(key):
            out[key] = container[key]
    for key in ("ExposedPorts", "Volumes", "Labels"):
        if container.get(key):
            out[key] = {**container[key], **(out.get(key) or {})}
    if container.get("Env"):
        names = {e.split("=", 1)[0] for e in out.get("Env") or []}
        out["Env"] = [*(out.get("Env") or []), *(e for e in container["Env"] if e.split("=", 1)[0] not in names)]
    if not out.get("Entrypoint") and not out.get("Cmd"):
        out["Cmd"] = container.get("Cmd")
        if not out.get("Entrypoint"):
            out["Entrypoint"] = container.get("Entrypoint")
    return out
