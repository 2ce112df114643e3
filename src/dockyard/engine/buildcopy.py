"""COPY/ADD/WORKDIR's files written into a build step's mounted rootfs (the engine side of
`build.backend.CopyRequest`): every path resolved inside the rootfs
(`runtime.rootfs.secure_join`), so no symlink in the image can lead a write outside it.

Missing parent directories are made 0755 with the step's owner; each destination directory
is resolved once per step (`_dir_of` remembers them), not once per file and path component.
An entry replaces what was at its destination; directories' mtimes are set once every entry
is written, so writing below a directory does not undo its own.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from .._path import Path

from ..build.backend import CopyEntry, CopyRequest, EntryKind
from ..errors import DockyardError, InvalidArgument
from ..images.tarfs import extract_tree_tar
from ..runtime.rootfs import secure_join


def _host_path(root: Path, dest: str) -> str:
    """Host path of `dest`: its parent resolved inside `root`, its last part not followed."""
    parent, name = posixpath.split(posixpath.normpath("/" + dest))
    base = secure_join(str(root), parent)
    return os.path.join(base, name) if name else base


def _mkdirs(root: Path, dest: str, owner: tuple[int, int]) -> str:
    """Create `dest` and missing parents (0755, owned by `owner`); return its host path."""
    parts = [p for p in posixpath.normpath("/" + dest).split("/") if p]
    cur = "/"
    for part in parts:
        cur = posixpath.join(cur, part)
        host = secure_join(str(root), cur)
        if not os.path.lexists(host):
            _makedirs_below(str(root), host, owner)
        elif not os.path.isdir(host):
            raise InvalidArgument(f"cannot copy to {dest}: {cur} is not a directory")
    return secure_join(str(root), dest)


def _dir_of(root: Path, norm: str, owner: tuple[int, int], known: dict[str, str]) -> str:
    """`_mkdirs` of the normalised image path `norm`, remembering the directories it has
    made or checked in `known` (image path -> host path), so the parents of a tree's files
    are resolved once, not once per file per component."""
    if norm in known:
        return known[norm]
    parent, name = posixpath.split(norm)
    if not name:
        return _mkdirs(root, norm, owner)
    cand = os.path.join(_dir_of(root, parent, owner, known), name)
    try:
        st = os.lstat(cand)
    except FileNotFoundError:
        os.mkdir(cand, 0o755)
        os.chown(cand, *owner)
        known[norm] = cand
        return cand
    if stat.S_ISDIR(st.st_mode):
        known[norm] = cand
        return cand
    if stat.S_ISLNK(st.st_mode):  # followed inside the root, as `_mkdirs` does; not remembered
        return _mkdirs(root, norm, owner)
    raise InvalidArgument(f"cannot copy to {norm}: {norm} is not a directory")


def _forget(known: dict[str, str], norm: str) -> None:
    for k in [k for k in known if k == norm or k.startswith(norm.rstrip("/") + "/")]:
        del known[k]


def _makedirs_below(root: str, host: str, owner: tuple[int, int]) -> None:
    """mkdir -p of `host` (already resolved inside `root`), new directories 0755 `owner`."""
    cur = root
    for part in os.path.relpath(host, root).split(os.sep):
        cur = os.path.join(cur, part)
        if not os.path.lexists(cur):
            os.mkdir(cur, 0o755)
            os.chown(cur, *owner)


def write_entries(root: Path, req: CopyRequest, owner: tuple[int, int]) -> None:
    dir_times: list[tuple[str, float]] = []
    known: dict[str, str] = {}
    for e in req.entries:
        try:
            _write_entry(root, e, req, owner, dir_times, known)
        except OSError as err:
            raise DockyardError(f"copying to {e.dest}: {err.strerror or err}") from None
    for host, mtime in reversed(dir_times):
        os.utime(host, (mtime, mtime), follow_symlinks=False)


def _write_entry(root: Path, e: CopyEntry, req: CopyRequest, owner: tuple[int, int],
                 dir_times: list[tuple[str, float]], known: dict[str, str]) -> None:
    if not req.chown and e.owner is not None:
        owner = e.owner
    if e.kind is EntryKind.DIR:
        norm = posixpath.normpath("/" + e.dest)
        existed = norm in known or os.path.isdir(_host_path(root, e.dest))
        host = _dir_of(root, norm, owner, known)
        if not existed or e.mode is not None or req.chmod is not None:
            mode = req.chmod if req.chmod is not None else (e.mode if e.mode is not None else 0o755)
            os.chmod(host, mode)
            os.chown(host, *owner)
        if e.mtime is not None:
            dir_times.append((host, e.mtime))
        return
    if e.kind is EntryKind.TAR:
        host = _mkdirs(root, e.dest, owner)
        known.clear()  # the archive may put anything below
        with open(e.source, "rb") as f:
            extract_tree_tar(f, Path(host), chown=owner if req.chown else None)
        return
    norm = posixpath.normpath("/" + e.dest)
    parent, name = posixpath.split(norm)
    host = os.path.join(_dir_of(root, parent, (0, 0), known), name) if name else _host_path(root, e.dest)
    _forget(known, norm)  # whatever was there is replaced
    if e.into_existing_dir:
        resolved = secure_join(str(root), e.dest)  # a symlink to a directory counts, inside root
        if os.path.isdir(resolved) and not os.path.islink(resolved):
            host = os.path.join(resolved, os.path.basename(e.source))
    if os.path.lexists(host):
        if os.path.isdir(host) and not os.path.islink(host):
            shutil.rmtree(host)
        else:
            os.unlink(host)
    if e.kind is EntryKind.SYMLINK:
        os.symlink(e.source, host)
        os.lchown(host, *owner)
    else:
        shutil.copyfile(e.source, host, follow_symlinks=True)
        mode = req.chmod if req.chmod is not None else (e.mode if e.mode is not None else 0o644)
        os.chown(host, *owner)
        os.chmod(host, mode)
    if e.mtime is not None:
        os.utime(host, (e.mtime, e.mtime), follow_symlinks=False)
