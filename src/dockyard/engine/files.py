"""A container's files: `diff`, `export`, `commit`, and the two halves of `cp`.

All of it works on the host side of the container's overlay: the upper dir (diff, commit)
or the merged dir, mounted for the duration if the container is stopped (export, cp).
Reading a tree runs in a child chrooted into the rootfs, so a running container that
swaps a directory for a symlink cannot point the reader at the host; writing goes
through `tarfs.extract_tree_tar`, which resolves every path inside the rootfs by fd.

Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from containers/<id>/,
so a container's writes to them never reach its upper dir. Here they live in the init
layer, so such writes do reach it; `diff` and `commit` leave them out, as Docker does.
Likewise what lies below a volume, bind or tmpfs mount point stays out of `commit` and
`export`: the mount point itself stays, as an empty directory.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import shutil
import stat
import tarfile
import threading
from .._path import Path

from .._record import dataclass
from ..errors import (AlreadyExists, Conflict, DockyardError, FailedPrecondition, InvalidArgument,
                      NotFound, Unsupported)
from ..images._mount import is_mounted
from ..images.tarfs import Change, ChangeKind, extract_tree_tar, overlay_changes, write_tree_tar
from ..runtime.rootfs import secure_join
from . import control, lifecycle
from .core import Engine
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator, Sequence

#: relative to the rootfs; see the module docstring
BIND_MOUNTED = ("etc/hostname", "etc/hosts", "etc/resolv.conf")
_CHUNK = 1 << 20


# ---- diff ----------------------------------------------------------------------------

def changes(engine: Engine, c: Container) -> list[Change]:
    """`docker diff`: the container's upper dir against its init and image layers."""
    with engine.containers.lock(c.id):
        p = engine.layers.rw_paths(c.id)
        found = overlay_changes(p.upper, list(p.lower_dirs))
    return _hide_bind_mounted(found)


def _hide_bind_mounted(found: list[Change]) -> list[Change]:
    hidden = {"/" + rel for rel in BIND_MOUNTED}
    gone = [ch.path for ch in found if ch.path in hidden]
    if not gone:
        return found
    out = [ch for ch in found if ch.path not in hidden]
    # a directory that was only copied up for a hidden file is not a change either
    parents = {posixpath.dirname(p) for p in gone} - {"/"}
    for parent in sorted(parents, key=lambda p: -p.count("/")):
        if not any(ch.path.startswith(parent + "/") for ch in out):
            out = [ch for ch in out if not (ch.path == parent and ch.kind is ChangeKind.MODIFIED)]
    return out


# ---- the merged rootfs: stat, archive, extract ------------------------------------------

def abs_path(path: str) -> str:
    """Docker's container path form: absolute, cleaned, keeping a trailing "/" or "/."."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if posixpath.basename(clean) != "." and (path == "." or path.endswith("/.")):
        clean = clean.rstrip("/") + "/."
    if not clean.endswith("/") and path.endswith("/"):
        clean += "/"
    return clean


@dataclass(frozen=True)
class PathStat:
    """Docker's container path stat (the X-Docker-Container-Path-Stat header)."""

    name: str
    size: int
    mode: int  # st_mode
    mtime: float
    link_target: str  # for a symlink: the container path it resolves to, else ""

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


class ContainerFS:
    """The mounted rootfs of one container; get one from `container_fs`."""

    def __init__(self, container: Container, root: Path, ref: str) -> None:
        self.container = container
        self.root = root
        self.ref = ref

    def _join(self, path: str) -> str:
        try:
            return secure_join(str(self.root), path)
        except OSError as e:
            raise InvalidArgument(f"{path}: {e.strerror or e}") from None

    def _rel(self, host: str) -> str:
        rel = os.path.relpath(host, self.root)
        return "" if rel == "." else rel

    def _resolve(self, path: str) -> tuple[str, str, str]:
        """(host path, container path, name), as Docker's ResolvePath: the parent is
        resolved inside the rootfs, the last component is not followed unless the path
        ends with "/" or "/."."""
        cpath = abs_path(path)
        if cpath == "/" or cpath.endswith(("/", "/.")):
            name = "." if cpath == "/" or cpath.endswith("/.") else posixpath.basename(cpath.rstrip("/"))
            return self._join(cpath), cpath, name
        parent, base = posixpath.split(cpath)
        return os.path.join(self._join(parent), base), cpath, base

    def _missing(self, cpath: str) -> NotFound:
        return NotFound(f"Could not find the file {cpath} in container {self.ref}")

    def stat(self, path: str) -> PathStat:
        host, cpath, name = self._resolve(path)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(cpath) from None
        if cpath.endswith(("/", "/.")) and not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"lstat {cpath}: not a directory")
        link = ""
        if stat.S_ISLNK(st.st_mode):
            link = "/" + self._rel(self._join(cpath))
        return PathStat(name, st.st_size, st.st_mode, st.st_mtime, link)

    @contextlib.contextmanager
    def open_archive(self, path: str, arcname: str | None = None) -> Iterator[BinaryIO]:
        """A tar of `path` (Docker's GET archive): entries named `arcname` (default: the
        path's name, "." for "dir/."), the tree below it; symlinks are not followed."""
        host, _, name = self._resolve(path)
        self.stat(path)
        with _tar_in_chroot(self.root, "/" + self._rel(host), arcname or name) as stream:
            yield stream

    def archive(self, path: str, out: BinaryIO, arcname: str | None = None) -> int:
        """Write the tar of `path` to `out`; return the number of bytes written."""
        with self.open_archive(path, arcname) as stream:
            return _copy(stream, out)

    def extraction_dir(self, path: str) -> str:
        """The rootfs-relative directory `path` resolves to ("" for the root)."""
        if self.container.host_config.get("ReadonlyRootfs"):
            raise FailedPrecondition("container rootfs is marked read-only")
        cpath = abs_path(path)
        host = self._join(cpath)
        try:
            st = os.stat(host)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(cpath.rstrip("/.") or "/") from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument("extraction point is not a directory")
        return self._rel(host)

    def extract(self, path: str, stream: BinaryIO, *, copy_uid_gid: bool = False,
                names_from_root: bool = False) -> None:
        """Extract a tar into directory `path` (Docker's PUT archive): no directory is
        replaced by a non-directory or the reverse. Owners come from the archive; with
        `copy_uid_gid` and a container User, from that user instead (as Docker does).
        With `names_from_root` the entries are already named from the rootfs."""
        rel = self.extraction_dir(path)
        chown: tuple[int, int] | None = None
        user = self.container.config.get("User") or ""
        if copy_uid_gid and user:
            from .specgen import resolve_user

            uid, gid, _, _ = resolve_user(str(self.root), user)
            chown = (uid, gid)
        if not rel or names_from_root:
            extract_tree_tar(stream, self.root, no_overwrite_dir_non_dir=True, chown=chown)
            return
        with _prefixed(stream, rel) as prefixed:
            extract_tree_tar(prefixed, self.root, no_overwrite_dir_non_dir=True, chown=chown)


@contextlib.contextmanager
def container_fs(engine: Engine, c: Container, ref: str | None = None) -> Iterator[ContainerFS]:
    """Hold the container's lock and its mounted rootfs (mounted here, and unmounted
    after, only if it was not mounted already: a running container's stays)."""
    with engine.containers.lock(c.id):
        c = engine.containers.load(c.id)
        merged = engine.layers.rw_paths(c.id).merged
        mounted_here = not is_mounted(merged)
        if mounted_here:
            engine.layers.mount_rw(c.id)
        try:
            yield ContainerFS(c, merged, ref or c.name)
        finally:
            if mounted_here:
                engine.layers.unmount_rw(c.id)


def export(engine: Engine, c: Container, out: BinaryIO) -> int:
    """`docker export`: the whole merged rootfs as a tar; returns the bytes written."""
    with container_fs(engine, c) as fs, \
            _tar_in_chroot(fs.root, "/", None, _mount_points(fs.container)) as stream:
        return _copy(stream, out)


def _mount_points(c: Container) -> tuple[str, ...]:
    """Rootfs-relative paths with a volume, bind or tmpfs on them (engine/mounts.py)."""
    if not (c.doc.get("MountPoints") or c.host_config.get("Tmpfs")):
        return ()
    from .mounts import destinations

    return tuple(d.lstrip("/") for d in destinations(c))


def _copy(src: BinaryIO, out: BinaryIO) -> int:
    total = 0
    while chunk := src.read(_CHUNK):
        out.write(chunk)
        total += len(chunk)
    out.flush()
    return total


@contextlib.contextmanager
def _tar_in_chroot(root: Path, inner: str, arcname: str | None,
                   skip_below: tuple[str, ...] = ()) -> Iterator[BinaryIO]:
    """Read `write_tree_tar(inner)` from a child process chrooted into `root`, leaving out
    what lies below the `skip_below` directories (relative to `inner`)."""
    include = None
    if skip_below:
        def include(rel: str) -> bool:
            return not any(rel.startswith(d + "/") for d in skip_below)

    rfd, wfd = os.pipe()
    efd, ewfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(rfd)
            os.close(efd)
            os.chroot(root)
            os.chdir("/")
            with open(wfd, "wb", buffering=_CHUNK) as f:
                write_tree_tar(Path(inner), f, arcname=arcname, include=include)
            code = 0
        except BrokenPipeError:
            code = 2
        except BaseException as e:  # reported to the parent through the error pipe
            with contextlib.suppress(BaseException):
                kind = type(e).__name__ if isinstance(e, DockyardError) else "DockyardError"
                os.write(ewfd, f"{kind}\t{e}".encode("utf-8", "replace")[:8192])
        finally:
            os._exit(code)
    os.close(wfd)
    os.close(ewfd)

    def reap() -> DockyardError | None:
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        with open(efd, "rb") as ef:
            kind, _, msg = ef.read().decode("utf-8", "replace").partition("\t")
        if status == 0 or status == 2 and not msg:
            return None  # 2: the reader went away first; its error is the one to report
        cls = _CHILD_ERRORS.get(kind, DockyardError)
        return cls(msg or f"archiving {inner} failed (exit status {status})")

    try:
        with open(rfd, "rb", buffering=0) as stream:
            yield stream
    except BaseException:
        failed = reap()  # a child's error explains a truncated stream better
        if failed is not None:
            raise failed from None
        raise
    failed = reap()
    if failed is not None:
        raise failed


_CHILD_ERRORS: dict[str, type[DockyardError]] = {
    cls.__name__: cls for cls in (NotFound, InvalidArgument, Conflict, FailedPrecondition,
                                  Unsupported, AlreadyExists)
}


def _under(prefix: str, name: str, what: str) -> str:
    rel = posixpath.normpath(name.lstrip("/")) if name.lstrip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise InvalidArgument(f"archive {what} {name!r} escapes the destination directory")
    return prefix if rel == "." else f"{prefix}/{rel}"


@contextlib.contextmanager
def _prefixed(stream: BinaryIO, prefix: str) -> Iterator[BinaryIO]:
    """The tar in `stream` with every name (and hardlink target) moved under `prefix`."""
    rfd, wfd = os.pipe()
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            with open(wfd, "wb") as w, tarfile.open(fileobj=stream, mode="r|*") as src, \
                    tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as dst:
                for m in src:
                    m.name = _under(prefix, m.name, "entry")
                    if m.islnk():
                        m.linkname = _under(prefix, m.linkname, "hardlink target")
                    m.pax_headers = {k: v for k, v in m.pax_headers.items() if k not in ("path", "linkpath")}
                    dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        except BrokenPipeError:
            pass
        except tarfile.TarError as e:
            failure.append(InvalidArgument(f"archive is not a valid tar archive: {e}"))
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=pump, name="cp-prefix", daemon=True)
    thread.start()
    try:
        with open(rfd, "rb") as r:
            try:
                yield r
            except DockyardError:
                if failure:
                    raise failure[0] from None
                raise
    finally:
        thread.join(5)
    if failure:
        raise failure[0]


# ---- commit ----------------------------------------------------------------------------

def commit(engine: Engine, c: Container, reference: str | None = None, *, author: str = "",
           comment: str = "", changes: Sequence[str] = (), pause: bool = True,
           config: dict[str, Any] | None = None) -> str:
    """`docker commit`: the container's upper dir (not its init layer) as a new layer on
    its image; the config is the container's Config with `changes` applied (or `config`, the
    Engine API's body, with the changes, completed from the container's, as Docker merges
    it). A running container is paused meanwhile unless `pause` is false. Returns the image ID."""
    from ..images.changes import apply_changes
    from ..images.refs import parse_reference

    if reference:
        if parse_reference(reference).digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
    apply_changes(c.config, list(changes))  # refuse bad changes before pausing
    c = lifecycle.refresh(engine, c)
    paused_here = False
    if pause and c.running and not c.state.get("Paused"):
        with contextlib.suppress(Conflict):  # it stopped, or was paused, meanwhile
            control.pause(engine, c)
            paused_here = True
    try:
        with engine.containers.lock(c.id):
            c = engine.containers.load(c.id)
            if config:
                from .imageops import merge_commit_config

                new_config = merge_commit_config(apply_changes(config, list(changes)), c.config)
            else:
                new_config = apply_changes(c.config, list(changes))
            image_id = _commit_locked(engine, c, new_config, author, comment)
    finally:
        if paused_here:
            with contextlib.suppress(Conflict, NotFound):
                control.unpause(engine, c)
    if reference:
        engine.images.tag(image_id, reference)
    return image_id


def _commit_locked(engine: Engine, c: Container, config: dict[str, object], author: str,
                   comment: str) -> str:
    try:
        parent = engine.images.get(str(c.doc["Image"]))
    except NotFound:
        raise FailedPrecondition(f"the image of container {c.id[:12]} no longer exists") from None
    p = engine.layers.rw_paths(c.id)
    created_by = " ".join(c.config.get("Cmd") or [])
    with _without_bind_mounted(engine, p.upper, _mount_points(c)) as upper:
        return engine.images.commit_layer(upper, list(p.lower_dirs), parent, dict(config),
                                          author=author, comment=comment, created_by=created_by)


@contextlib.contextmanager
def _without_bind_mounted(engine: Engine, upper: Path, mount_points: tuple[str, ...] = ()) -> Iterator[Path]:
    """`upper`, or if it holds any BIND_MOUNTED path or anything below a mount point, a
    hardlinked copy without them (mount points stay, empty)."""
    present = frozenset(rel for rel in BIND_MOUNTED if os.path.lexists(upper / rel))
    keep = frozenset(d for d in mount_points if os.path.isdir(upper / d) and not os.path.islink(upper / d))
    present |= frozenset(f"{d}/{name}" for d in keep for name in os.listdir(upper / d))
    if not present:
        yield upper
        return
    # beside the layers (same file system, for hardlinks); `LayerStore.gc` knows .tmp-*
    view = engine.layers.home / f".tmp-commit-{secrets.token_hex(8)}"
    try:
        _link_tree(str(upper), str(view), "", present, keep)
        yield view
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _link_tree(src: str, dst: str, rel: str, skip: frozenset[str], keep: frozenset[str] = frozenset()) -> None:
    os.mkdir(dst, 0o700)
    for name in os.listdir(src):
        crel = f"{rel}/{name}" if rel else name
        if crel in skip:
            continue
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if stat.S_ISDIR(os.lstat(s).st_mode):
            _link_tree(s, d, crel, skip, keep)
            only_copied_up = any(p.startswith(crel + "/") for p in skip) and not os.listdir(d) and crel not in keep
            if only_copied_up and not _opaque(s):
                os.rmdir(d)
        else:
            os.link(s, d, follow_symlinks=False)
    st = os.lstat(src)
    for key in os.listxattr(src, follow_symlinks=False):  # trusted.overlay.opaque included
        with contextlib.suppress(OSError):
            os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=False))
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False
