"""The writing side of tarfs: `docker diff` changes of an overlay upper dir, the layer tar
of an upper dir (``commit``/``build``), and whole-tree tars (``export``, ``cp`` out).

Tars are PAX, entries sorted (names compared as bytes, a directory before its contents),
owners numeric with empty user/group names, mtimes in whole seconds, no atime/ctime, and
xattrs as SCHILY.xattr.* records (trusted.overlay.* left out): the same tree gives the
same bytes.
"""

from __future__ import annotations

import enum
import hashlib
import os
import posixpath
import stat
import tarfile
from .._path import Path

from .._record import dataclass
from ..errors import DockyardError, InvalidArgument, NotFound, Unsupported
from .tarfs_apply import OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from .tarfs_tree import OVERLAY_XATTR_PREFIX, PAX_XATTR_PREFIX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable

_NS = 1_000_000_000
_COPY_CHUNK = 1 << 20
_MARKER_MODE = 0o600  # mode of .wh.* marker files written into layer tars
# overlay features that make an upper dir not self-describing; dockyard mounts without them
_UNSUPPORTED_OVERLAY_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


class ChangeKind(enum.Enum):
    """A `docker diff` change kind; the value is the letter Docker prints."""

    MODIFIED = "C"
    ADDED = "A"
    DELETED = "D"
    # the letters themselves, as aliases
    C = "C"
    A = "A"
    D = "D"

    @property
    def api_code(self) -> int:
        """The number the Engine API uses (0 modified, 1 added, 2 deleted)."""
        return {"C": 0, "A": 1, "D": 2}[self.value]


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str  # absolute inside the container: "/etc/passwd"

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path}"


# ---- overlay helpers ----------------------------------------------------------


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _sorted_names(path: str) -> list[str]:
    return sorted(os.listdir(path), key=os.fsencode)


def _lower_lookup(lower_dirs: list[str], name: str) -> tuple[bool, list[str]]:
    """Does `name` exist in the merged view of `lower_dirs` (top first)? And if it is a
    directory there, which lower directories make up its contents (top first)?"""
    found = False
    merged: list[str] = []
    for ld in lower_dirs:
        path = os.path.join(ld, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if _is_whiteout(st):
            break
        found = True
        if not stat.S_ISDIR(st.st_mode):
            break
        merged.append(path)
        if _is_opaque(path):
            break
    return found, merged


def _lower_roots(lowers: list[Path]) -> list[str]:
    roots: list[str] = []
    for lower in lowers:
        roots.append(os.fspath(lower))
        if _is_opaque(os.fspath(lower)):
            break
    return roots


def overlay_changes(upper: Path, lowers: list[Path]) -> list[Change]:
    """`docker diff` of a container: what its overlay upper dir changes over `lowers`
    (overlay's lowerdir order: topmost first). Sorted by path, as Docker prints them.

    A whiteout (0/0 char device) is D; anything else is C if the merged lowers have that
    path, else A. An opaque directory is C (A if new) and everything in it is A. Parent
    directories of changes are in the upper dir too, so they are reported (C /etc).
    """
    out: list[Change] = []

    def walk(dir_path: str, rel: str, lower_dirs: list[str]) -> None:
        for name in _sorted_names(dir_path):
            path = os.path.join(dir_path, name)
            st = os.lstat(path)
            crel = f"{rel}/{name}"
            if _is_whiteout(st):
                out.append(Change(ChangeKind.DELETED, crel))
                continue
            found, merged = _lower_lookup(lower_dirs, name)
            out.append(Change(ChangeKind.MODIFIED if found else ChangeKind.ADDED, crel))
            if stat.S_ISDIR(st.st_mode):
                walk(path, crel, [] if _is_opaque(path) else merged)

    root = os.fspath(upper)
    try:
        walk(root, "", [] if _is_opaque(root) else _lower_roots(lowers))
    except FileNotFoundError as e:
        raise NotFound(f"reading the changes of {root!r}: {e.filename!r} does not exist") from None
    except OSError as e:
        raise DockyardError(f"reading the changes of {root!r}: {e}") from e
    out.sort(key=lambda c: os.fsencode(c.path))
    return out


# ---- tar writing -----------------------------------------------------------------


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def _read_xattrs(path: str, *, overlay_upper: bool) -> dict[str, str]:
    """A file's xattrs as PAX records (values as surrogate-escaped text, as tarfile wants)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIX):
            if overlay_upper and name.startswith(_UNSUPPORTED_OVERLAY_XATTRS):
                raise Unsupported(
                    f"{path!r} carries {name}: overlay redirect_dir/metacopy upper dirs are not supported"
                )
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out[PAX_XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return out


class _TarWriter:
    """Writes sorted, reproducible PAX entries; tracks hardlinks within the tar.

    Headers come from `TarInfo.tobuf`; the archive ends with the two zero blocks and no
    record padding, so an empty layer is the well-known 1024 zero bytes
    (sha256:5f70bf18…), as Docker writes it.
    """

    def __init__(self, out: BinaryIO, *, mtime_clamp: int | None = None, overlay_upper: bool = False) -> None:
        self.sink = _HashingWriter(out)
        self.mtime_clamp = mtime_clamp
        self.overlay_upper = overlay_upper
        self._links: dict[tuple[int, int], str] = {}

    def close(self) -> str:
        self.sink.write(b"\0" * (2 * tarfile.BLOCKSIZE))
        self.sink.flush()
        return self.sink.digest()

    def _emit(self, ti: tarfile.TarInfo, src: BinaryIO | None = None) -> None:
        self.sink.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if src is None or ti.size == 0:
            return
        left = ti.size
        while left:
            chunk = src.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError(f"{ti.name!r} shrank while it was being archived")
            self.sink.write(chunk)
            left -= len(chunk)
        pad = -ti.size % tarfile.BLOCKSIZE
        if pad:
            self.sink.write(b"\0" * pad)

    def _header(self, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(arcname)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mode = stat.S_IMODE(st.st_mode)
        mtime = st.st_mtime_ns // _NS
        if self.mtime_clamp is not None:
            mtime = min(mtime, self.mtime_clamp)
        ti.mtime = mtime
        return ti

    def add(self, path: str, arcname: str, st: os.stat_result) -> None:
        """One file-system entry (not descending into directories). Sockets are skipped."""
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        ti = self._header(arcname, st)
        ti.pax_headers = _read_xattrs(path, overlay_upper=self.overlay_upper)
        key = (st.st_dev, st.st_ino)
        linked = not stat.S_ISDIR(mode) and st.st_nlink > 1
        if linked and key in self._links:
            ti.type = tarfile.LNKTYPE
            ti.linkname = self._links[key]
            self._emit(ti)
            return
        if stat.S_ISREG(mode):
            ti.type = tarfile.REGTYPE
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as f:
                ti.size = os.fstat(fd).st_size
                self._emit(ti, f)
        elif stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return
        if not stat.S_ISREG(mode):
            self._emit(ti)
        if linked:
            self._links[key] = arcname  # later names of this inode become hardlinks to it

    def add_marker(self, arcname: str, st: os.stat_result) -> None:
        """An empty regular file (a .wh.NAME whiteout or .wh..wh..opq) owned like `st`."""
        ti = self._header(arcname, st)
        ti.type = tarfile.REGTYPE
        ti.mode = _MARKER_MODE
        ti.size = 0
        self._emit(ti)


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def write_diff_tar(upper: Path, lowers: list[Path], out: BinaryIO, *, mtime_clamp: int | None = None) -> str:
    """Write the layer tar of an overlay upper dir to `out`; return its diff_id.

    Whiteouts (0/0 char devices) become empty ``.wh.NAME`` files, an opaque directory is
    written followed by ``.wh..wh..opq`` inside it. `lowers` is not read (the upper dir of
    a redirect_dir/metacopy-free overlay is self-describing); it is part of the signature
    so a naive differ can stand in. `mtime_clamp` (seconds) caps every entry's mtime.
    """
    del lowers
    w = _TarWriter(out, mtime_clamp=mtime_clamp, overlay_upper=True)

    def walk(dir_path: str, rel: str) -> None:
        for name in _sorted_names(dir_path):
            path = os.path.join(dir_path, name)
            st = os.lstat(path)
            arc = _join(rel, name)
            if _is_whiteout(st):
                w.add_marker(_join(rel, WHITEOUT_PREFIX + name), st)
                continue
            w.add(path, arc, st)
            if stat.S_ISDIR(st.st_mode):
                if _is_opaque(path):
                    w.add_marker(_join(arc, WHITEOUT_OPAQUE), st)
                walk(path, arc)

    try:
        walk(os.fspath(upper), "")
        return w.close()
    except OSError as e:
        raise DockyardError(f"writing the layer tar of {str(upper)!r}: {e}") from e


def write_tree_tar(root: Path, out: BinaryIO, *, include: Callable[[str], bool] | None = None,
                   arcname: str | None = None) -> None:
    """Write the tree at `root` as a tar (``export`` of a mounted rootfs, ``cp`` out).

    Keeps owners, modes, xattrs, hardlinks, devices, fifos and symlinks (never followed).
    Names are relative. With `arcname` None, `root` must be a directory and its contents
    are at the top of the archive; otherwise `root` (a file or a directory) is stored as
    `arcname` and its contents below it (``cp`` style). `include(rel)`, if given, gets
    each path relative to `root` ("etc/passwd") and returns False to leave it (and for a
    directory, its contents) out. Entries that vanish while walking are skipped.
    """
    w = _TarWriter(out)
    base = os.fspath(root)

    def walk(dir_path: str, rel: str, arc: str) -> None:
        try:
            names = _sorted_names(dir_path)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            crel = _join(rel, name)
            if include is not None and not include(crel):
                continue
            path = os.path.join(dir_path, name)
            try:
                st = os.lstat(path)
                w.add(path, _join(arc, name), st)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(path, crel, _join(arc, name))

    try:
        st = os.lstat(base)
        if arcname is None:
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"{base!r} is not a directory")
            walk(base, "", "")
        else:
            name = posixpath.normpath(arcname.lstrip("/")) if arcname.lstrip("/") else "."
            if name == ".." or name.startswith("../"):
                raise InvalidArgument(f"archive name {arcname!r} escapes the archive root")
            w.add(base, name, st)
            if stat.S_ISDIR(st.st_mode):
                walk(base, "", "" if name == "." else name)
        w.close()
    except OSError as e:
        raise DockyardError(f"writing a tar of {base!r}: {e}") from e
