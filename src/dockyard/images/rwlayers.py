"""Container read-write layers: Docker's init layer + container layer on overlay2.

On disk::

    image/overlay2/layerdb/mounts/<container-id>/{mount-id, init-id, parent}
    overlay2/<mount-id>-init/{diff/, link, lower, work/}   /etc/hosts, /.dockerenv, /dev/pts …
    overlay2/<mount-id>/{diff/, link, lower, work/, merged/}

The container layer's ``lower`` is the init layer's short link, then the image layers'.
These functions are reached through `LayerStore` methods of the same names.
"""

from __future__ import annotations

import errno
import os
import stat
from .._lean import suppress
from .._path import Path, PurePosixPath

from .._record import dataclass
from .._util import atomic_write, new_id, rmtree
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ._lock import store_lock
from ._mount import MNT_DETACH, PAGE_SIZE, mount, mount_from, umount2
from .layers import _read_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

if TYPE_CHECKING:
    from .layers import LayerStore

#: Docker's initlayer: what every container's root gets unless the image has it
INIT_SKELETON: tuple[tuple[str, str], ...] = (
    ("dev/pts", "dir"),
    ("dev/shm", "dir"),
    ("proc", "dir"),
    ("sys", "dir"),
    (".dockerenv", "file"),
    ("etc/resolv.conf", "file"),
    ("etc/hosts", "file"),
    ("etc/hostname", "file"),
    ("dev/console", "file"),
    ("etc/mtab", "/proc/mounts"),
)


@dataclass(frozen=True)
class RWLayer:
    container_id: str
    mount_id: str
    init_id: str
    parent: str | None


@dataclass(frozen=True)
class RWPaths:
    lower_dirs: tuple[Path, ...]  # init diff first, then image diffs top first
    upper: Path
    work: Path
    merged: Path
    mount_id: str
    init_id: str


def get_rw(store: LayerStore, container_id: str) -> RWLayer:
    d = store.mounts_db / container_id
    try:
        mount_id = _read_text(d / "mount-id")
        init_id = _read_text(d / "init-id")
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no read-write layer for container {container_id}") from None
    parent: str | None
    try:
        parent = _read_text(d / "parent") or None
    except FileNotFoundError:
        parent = None
    return RWLayer(container_id, mount_id, init_id, parent)


def list_rw(store: LayerStore) -> list[RWLayer]:
    out: list[RWLayer] = []
    if store.mounts_db.is_dir():
        for entry in sorted(store.mounts_db.iterdir()):
            if not entry.name.startswith("."):
                with suppress(NotFound):
                    out.append(get_rw(store, entry.name))
    return out


def create_rw(
    store: LayerStore,
    container_id: str,
    parent: str | None,
    init_files: Mapping[str, tuple[bytes, int]],
) -> RWLayer:
    if not container_id or "/" in container_id or container_id.startswith("."):
        raise InvalidArgument(f"invalid container ID: {container_id!r}")
    with store_lock(store.paths):
        entry = store.mounts_db / container_id
        if entry.exists():
            raise AlreadyExists(f"read-write layer for container {container_id} already exists")
        parent_lower = store.lower_string(parent) if parent else None
        image_diffs = store.diff_dirs(parent) if parent else []
        mount_id = new_id()
        init_id = f"{mount_id}-init"
        store.home.mkdir(parents=True, exist_ok=True, mode=0o710)
        made: list[str] = []
        try:
            init_short = _make_layer_dir(store, init_id, parent_lower)
            made.append(init_id)
            _populate_init(store.home / init_id / "diff", init_files, image_diffs)
            lower = f"l/{init_short}" + (f":{parent_lower}" if parent_lower else "")
            _make_layer_dir(store, mount_id, lower)
            made.append(mount_id)
            (store.home / mount_id / "merged").mkdir(mode=0o755)
            # No fsync/syncfs here: a container's rw layer is scratch space, and one that a
            # crash leaves half-made has no layerdb entry, so gc() removes it.
            _write_entry(store, container_id, mount_id, init_id, parent)
        except BaseException:
            for name in made:
                store.remove_layer_dir(name)
            raise
    return RWLayer(container_id, mount_id, init_id, parent)


def _make_layer_dir(store: LayerStore, name: str, lower: str | None) -> str:
    d = store.home / name
    d.mkdir(mode=0o710)
    (d / "diff").mkdir(mode=0o755)
    short = store.prepare_dir(d, lower, durable=False)
    store.link(short, name)
    return short


def _write_entry(store: LayerStore, container_id: str, mount_id: str, init_id: str,
                 parent: str | None) -> None:
    store.mounts_db.mkdir(parents=True, exist_ok=True)
    tmp = store.mounts_db / f".tmp-{container_id}-{os.urandom(4).hex()}"
    tmp.mkdir()
    try:
        atomic_write(tmp / "mount-id", mount_id, durable=False)
        atomic_write(tmp / "init-id", init_id, durable=False)
        if parent:
            atomic_write(tmp / "parent", parent, durable=False)
        os.rename(tmp, store.mounts_db / container_id)
    except BaseException:
        rmtree(tmp)
        raise


def _safe_rel(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel.lstrip("/"))
    if not p.parts or ".." in p.parts:
        raise InvalidArgument(f"invalid init file path: {rel!r}")
    return p


def _in_image(image_diffs: list[Path], rel: PurePosixPath) -> bool:
    """Whether the image (top layer first) has `rel`; a whiteout hides lower copies."""
    for diff in image_diffs:
        try:
            st = os.lstat(diff / rel)
        except OSError:
            wh = diff / rel.parent / f".wh.{rel.name}"
            if os.path.lexists(wh):
                return False
            continue
        return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    return False


def _populate_init(diff: Path, init_files: Mapping[str, tuple[bytes, int]],
                   image_diffs: list[Path]) -> None:
    wanted = {_safe_rel(k): v for k, v in init_files.items()}
    for rel_s, kind in INIT_SKELETON:
        rel = PurePosixPath(rel_s)
        if rel in wanted or _in_image(image_diffs, rel):
            continue
        path = diff / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if kind == "dir":
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        elif kind == "file":
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755)
            os.close(fd)
        else:
            os.symlink(kind, path)
    for rel, (data, mode) in wanted.items():
        path = diff / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)


def rw_paths(store: LayerStore, container_id: str) -> RWPaths:
    rw = get_rw(store, container_id)
    top = store.home / rw.mount_id
    lowers = [store.home / rw.init_id / "diff"]
    if rw.parent:
        lowers.extend(store.diff_dirs(rw.parent))
    return RWPaths(tuple(lowers), top / "diff", top / "work", top / "merged",
                   rw.mount_id, rw.init_id)


def mount_rw(store: LayerStore, container_id: str, volatile: bool = False) -> Path:
    """Mount the container's overlay at merged/ (no-op if mounted); return merged/.

    `volatile` (for containers removed at exit, as Podman does for --rm) skips every sync of
    the upper layer, which makes the unmount at exit cheap; such a layer does not survive a
    crash of the host, which does not matter for a layer deleted at exit anyway."""
    p = rw_paths(store, container_id)
    opt = ",volatile" if volatile else ""
    with store_lock(store.paths):
        # an overlay is its own device: two stats instead of reading all of mountinfo
        if os.path.ismount(p.merged):
            return p.merged
        p.merged.mkdir(mode=0o755, exist_ok=True)
        lower = ":".join(str(d) for d in p.lower_dirs)
        data = f"lowerdir={lower},upperdir={p.upper},workdir={p.work}{opt}"
        if len(data) < PAGE_SIZE:
            mount("overlay", p.merged, "overlay", 0, data)
            return p.merged
        # Too long for one page: relative short links from overlay2/, as Docker does.
        rel_lower = _read_text(store.home / p.mount_id / "lower")
        data = f"lowerdir={rel_lower},upperdir={p.mount_id}/diff,workdir={p.mount_id}/work{opt}"
        if len(data) >= PAGE_SIZE:
            raise FailedPrecondition(
                f"cannot mount layer of container {container_id}: mount options too long"
            )
        mount_from(store.home, "overlay", p.merged, "overlay", 0, data)
    return p.merged


def unmount_rw(store: LayerStore, container_id: str) -> None:
    """Unmount merged/ (all stacked mounts); lazily (MNT_DETACH) if it is busy."""
    merged = rw_paths(store, container_id).merged
    for _ in range(16):  # until umount says EINVAL: not a mount point (any more)
        try:
            umount2(merged)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT, errno.ENODEV):
                return  # not (or no longer) mounted: a concurrent cleanup got there first
            if e.errno != errno.EBUSY:
                raise
            umount2(merged, MNT_DETACH)


def remove_rw(store: LayerStore, container_id: str) -> None:
    """Unmount and delete the container's layers and its layerdb/mounts entry.

    A container without a read-write layer is not an error (cleanup is idempotent).
    """
    with store_lock(store.paths):
        try:
            rw = get_rw(store, container_id)
        except NotFound:
            return
        unmount_rw(store, container_id)
        tomb = store.mounts_db / f".del-{container_id}-{os.urandom(4).hex()}"
        os.rename(store.mounts_db / container_id, tomb)
        store.remove_layer_dir([rw.mount_id, rw.init_id], later=True)
        rmtree(tomb)


def graph_driver(store: LayerStore, container_id: str) -> dict[str, Any]:
    p = rw_paths(store, container_id)
    return {
        "Name": "overlay2",
        "Data": {
            "LowerDir": ":".join(str(d) for d in p.lower_dirs),
            "MergedDir": str(p.merged),
            "UpperDir": str(p.upper),
            "WorkDir": str(p.work),
        },
    }


def dir_size(root: Path) -> int:
    """Docker's directory.Size: bytes of non-directories, each inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_size == 0 or key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return total


def rw_size(store: LayerStore, container_id: str) -> int:
    return dir_size(rw_paths(store, container_id).upper)
