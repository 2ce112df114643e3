"""The volume commands' engine side: create, list (with Docker's filters), inspect,
remove (refused while any container, running or not, uses the volume) and prune."""

from __future__ import annotations

import os

from .. import _util
from ..errors import InvalidArgument, NotFound
from . import events
from .core import Engine
from .mounts import check_unused, forget, local_mounts, users_of, volume_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from ..volumes.store import Volume


def create(engine: Engine, name: str | None, driver: str, options: dict[str, str],
           labels: dict[str, str]) -> "Volume":
    store = volume_store(engine)
    with store.lock():
        v, _ = store.create(name or None, driver or "local", options, labels)
    events.emit(engine, "volume", "create", v.name, {"driver": v.driver})
    return v


def get(engine: Engine, name: str) -> "Volume":
    return volume_store(engine).get(name)


def _filters(items: list[str]) -> dict[str, list[str]]:
    return _util.filter_map(items, ("dangling", "name", "label", "label!", "driver"))


def _label_match(labels: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    return k in labels and (not sep or labels[k] == v)


def list_volumes(engine: Engine, filters: list[str] | None = None) -> list["Volume"]:
    flt = _filters(filters or [])
    vols = volume_store(engine).list()
    used: set[str] | None = None
    if "dangling" in flt:
        want = set()
        for d in flt["dangling"]:
            if d.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={d}'")
            want.add(d.lower() in ("true", "1"))
        used = {mp.get("Name") for c in engine.containers.all()
                for mp in (c.doc.get("MountPoints") or {}).values() if mp.get("Type") == "volume"}
    out = []
    for v in vols:
        if used is not None and (v.name not in used) not in want:
            continue
        if "name" in flt and not any(n in v.name for n in flt["name"]):
            continue
        if "driver" in flt and v.driver not in flt["driver"]:
            continue
        if "label" in flt and not all(_label_match(v.labels, s) for s in flt["label"]):
            continue
        if "label!" in flt and any(_label_match(v.labels, s) for s in flt["label!"]):
            continue
        out.append(v)
    return out


def remove(engine: Engine, name: str, force: bool = False) -> None:
    store = volume_store(engine)
    with store.lock():
        try:
            store.get(name)
        except NotFound:
            if force:
                return
            raise
        check_unused(engine, name)
        store.remove(name)
        forget(engine, name)
    events.emit(engine, "volume", "destroy", name, {"driver": "local"})


def disk_usage(path: str) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


def prune(engine: Engine, all_volumes: bool = False, filters: list[str] | None = None) -> tuple[list[str], int]:
    """Docker 23+: unused anonymous volumes (all unused ones with `all_volumes`).
    Returns (removed names, bytes reclaimed)."""
    labels = [f.partition("=")[2] for f in filters or [] if f.startswith("label=")]
    not_labels = [f.partition("=")[2] for f in filters or [] if f.startswith("label!=")]
    for f in filters or []:
        key = f.partition("=")[0]
        if key == "all":
            all_volumes = f.partition("=")[2].lower() in ("1", "true")
        elif key not in ("label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    store = volume_store(engine)
    removed: list[str] = []
    reclaimed = 0
    with store.lock():
        for v in store.list():
            if not all_volumes and not v.anonymous:
                continue
            if labels and not all(_label_match(v.labels, s) for s in labels):
                continue
            if not_labels and any(_label_match(v.labels, s) for s in not_labels):
                continue
            if users_of(engine, v.name) or local_mounts(engine).users(v.name):
                continue
            size = disk_usage(str(v.mountpoint))
            store.remove(v.name)
            forget(engine, v.name)
            removed.append(v.name)
            reclaimed += size
    return removed, reclaimed


def row(v: "Volume") -> dict[str, Any]:
    """A `volume ls` row for --format."""
    labels = v.labels
    r: dict[str, Any] = {"Name": v.name, "Driver": v.driver, "Scope": "local", "Mountpoint": str(v.mountpoint),
                         "Labels": ",".join(f"{k}={val}" for k, val in labels.items()), "Links": "N/A",
                         "Size": "N/A", "Availability": "N/A", "Group": "N/A", "Status": "N/A"}
    r["Label"] = lambda name: labels.get(name, "")
    return r
