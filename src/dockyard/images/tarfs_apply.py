"""The reading side of tarfs: apply a layer tar to an overlay2 ``diff`` dir, and a safe
extract for ``cp`` into a container. See `dockyard.images.tarfs` for the rules.

Everything below the destination is done through directory file descriptors: each
parent directory is opened component by component with O_NOFOLLOW, a symlink met on
the way is read and resolved *inside* the destination (never by the kernel), and the
entry itself is created/changed relative to its parent's fd without following a
symlink at the last component. So no path the archive names can reach outside the
destination, even if the tree changes under us (a running container, for ``cp``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from .._path import Path

from .._record import dataclass
from ..errors import Conflict, DockyardError, FailedPrecondition, InvalidArgument, NotFound
from .tarfs_stream import _CorruptStream, _HashingReader, _open_stream
from .tarfs_tree import _Tree, _lstat_at, _proc, _set_xattr, _times_ns, member_xattrs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
AUFS_LINK_DIR = ".wh..wh.plnk"  # aufs kept hardlink sources here; they may be link targets
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ApplyResult:
    """What `apply_layer` read and wrote."""

    #: "sha256:<hex>" of the uncompressed tar stream, end-of-archive blocks and padding included
    diff_id: str
    #: bytes of regular-file content written (Docker's layer "Size")
    size: int


def _open_tar(reader: _HashingReader) -> tarfile.TarFile:
    return tarfile.open(
        fileobj=reader,  # type: ignore[arg-type]
        mode="r|",
        encoding="utf-8",
        errors="surrogateescape",
    )


def _check_end(tf: tarfile.TarFile, reader: _HashingReader, what: str) -> None:
    """tarfile ends quietly at the first block that isn't a valid header; insist on zeros."""
    block = reader.block_at(tf.offset, tarfile.BLOCKSIZE)
    if block.strip(b"\0"):
        raise InvalidArgument(f"{what} is not a valid tar archive: invalid tar header at byte {tf.offset}")


# ---- the extractor ------------------------------------------------------------


class _Extractor:
    """Applies tar members one by one (shared by `apply_layer` and `extract_tree_tar`)."""

    def __init__(self, dest: Path, *, layer: bool, no_overwrite_dir_non_dir: bool = False,
                 chown: tuple[int, int] | None = None) -> None:
        self.layer = layer
        self.label = "layer entry" if layer else "archive entry"
        self.where = "the layer root" if layer else "the destination directory"
        self.no_overwrite = no_overwrite_dir_non_dir
        self.chown = chown
        self.tree = _Tree(dest, strict=layer, label=self.label, where=self.where, chown=chown)
        self.size = 0
        self._dir_times: dict[str, tuple[int, int]] = {}
        self._aufs_links = False

    def close(self) -> None:
        self.tree.close()

    def run(self, tf: tarfile.TarFile) -> None:
        for member in tf:
            try:
                self._entry(tf, member)
            except DockyardError:
                raise
            except tarfile.TarError:
                raise
            except _CorruptStream:
                raise
            except ValueError as e:  # e.g. an embedded NUL in a name
                raise InvalidArgument(f"{self.label} {member.name!r}: {e}") from None
            except OSError as e:
                raise DockyardError(f"{self.label} {member.name!r}: {e.strerror or e}") from e
        if self._aufs_links:
            self.tree.invalidate()
            st = _lstat_at(self.tree.root_fd, AUFS_LINK_DIR)
            if st is not None:
                self._remove(self.tree.root_fd, AUFS_LINK_DIR, AUFS_LINK_DIR, st)
        self._finish_dir_times()

    # -- per entry

    def _normalize(self, name: str) -> str:
        rel = posixpath.normpath(name.lstrip("/")) if name.lstrip("/") else "."
        if rel == ".." or rel.startswith("../"):
            raise InvalidArgument(f"{self.label} {name!r} escapes {self.where}")
        return rel

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        return self.chown if self.chown is not None else (member.uid, member.gid)

    def _entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        rel = self._normalize(name)
        if rel == ".":
            if not member.isdir():
                raise InvalidArgument(f"{self.label} {name!r} would replace {self.where} with a non-directory")
            self._meta(_proc(self.tree.root_fd), member, dir_rel=".")
            return
        parent_rel, base = posixpath.split(rel)
        parent_rel = parent_rel or "."
        if self.layer:
            top = rel.split("/", 1)[0]
            if top.startswith(WHITEOUT_META_PREFIX) and rel != WHITEOUT_OPAQUE:
                if top != AUFS_LINK_DIR or rel == top:
                    return  # aufs bookkeeping (.wh..wh.aufs, .wh..wh.orph/...): not image content
                self._aufs_links = True  # extracted as hardlink sources, removed at the end
        if self.layer and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parent_rel, base)
            return
        pfd = self.tree.parent(parent_rel, name)
        link_src: tuple[int, str] | None = None
        try:
            if member.islnk():
                link_src = self._link_source(member, rel)
                if link_src is None:
                    return  # a hardlink to itself: nothing to do
            existing = _lstat_at(pfd, base)
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode) and member.isdir():
                    pass  # a directory over a directory merges
                else:
                    if self.no_overwrite and stat.S_ISDIR(existing.st_mode) != member.isdir():
                        what = ("directory", "non-directory")
                        if member.isdir():
                            what = ("non-directory", "directory")
                        raise Conflict(f"cannot overwrite {what[0]} {'/' + rel!r} with {what[1]} {name!r}")
                    self._remove(pfd, base, rel, existing)
                    pfd = self.tree.parent(parent_rel, name)
            self._create(tf, member, pfd, base, rel, link_src)
        finally:
            if link_src is not None:
                os.close(link_src[0])

    def _link_source(self, member: tarfile.TarInfo, rel: str) -> tuple[int, str] | None:
        """(fd of the target's dir, target name) of a hardlink; None for a link to itself."""
        target = member.linkname
        if not target.lstrip("/"):
            raise InvalidArgument(f"{self.label} {member.name!r} is a hardlink with an empty target")
        trel = posixpath.normpath(target.lstrip("/"))
        if trel == ".." or trel.startswith("../"):
            raise InvalidArgument(
                f"{self.label} {member.name!r} is a hardlink to {target!r}, which escapes {self.where}"
            )
        missing = InvalidArgument(
            f"{self.label} {member.name!r} is a hardlink to {target!r}, which is not in the "
            f"{'layer' if self.layer else 'archive'}"
        )
        tparent, tbase = posixpath.split(trel)
        try:
            tfd = self.tree.open_dir(tparent or ".", member.name, create=False)
        except (FileNotFoundError, NotADirectoryError):
            raise missing from None
        try:
            st = _lstat_at(tfd, tbase)
            if st is None:
                raise missing
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"{self.label} {member.name!r} is a hardlink to directory {target!r}")
            if trel == rel:
                os.close(tfd)
                return None
            return tfd, tbase
        except BaseException:
            os.close(tfd)
            raise

    def _remove(self, pfd: int, base: str, rel: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=pfd)
            prefix = rel + "/"
            for key in [k for k in self._dir_times if k == rel or k.startswith(prefix)]:
                del self._dir_times[key]
        else:
            os.unlink(base, dir_fd=pfd)
        self.tree.invalidate()  # a removed directory may have been a cached parent

    def _create(self, tf: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, base: str, rel: str,
                link_src: tuple[int, str] | None) -> None:
        if member.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            try:
                src = tf.extractfile(member)
                if src is not None:
                    with open(fd, "wb", closefd=False) as f:
                        shutil.copyfileobj(src, f, _CHUNK)
                self._meta(_proc(fd), member)
            finally:
                os.close(fd)
            self.size += member.size
        elif member.isdir():
            if _lstat_at(pfd, base) is None:
                os.mkdir(base, 0o700, dir_fd=pfd)
            self._meta_at(pfd, base, member, os.O_DIRECTORY, dir_rel=rel)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=pfd)
            self._meta_symlink(pfd, base, member)
        elif member.islnk():
            assert link_src is not None
            os.link(link_src[1], base, src_dir_fd=link_src[0], dst_dir_fd=pfd, follow_symlinks=False)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
            self._meta_at(pfd, base, member, 0)
        elif member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
            self._meta_at(pfd, base, member, 0)
        else:
            raise InvalidArgument(f"{self.label} {member.name!r} has unsupported tar type {member.type!r}")

    def _whiteout(self, member: tarfile.TarInfo, parent_rel: str, base: str) -> None:
        pfd = self.tree.parent(parent_rel, member.name)
        if base == WHITEOUT_OPAQUE:
            os.setxattr(_proc(pfd), OVERLAY_OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the image
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", "..") or "/" in target:
            raise InvalidArgument(f"{self.label} {member.name!r} is not a valid whiteout")
        rel = target if parent_rel == "." else f"{parent_rel}/{target}"
        existing = _lstat_at(pfd, target)
        if existing is not None:
            self._remove(pfd, target, rel, existing)
            pfd = self.tree.parent(parent_rel, member.name)
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        os.chown(target, *self._owner(member), dir_fd=pfd, follow_symlinks=False)
        os.utime(target, ns=_times_ns(member), dir_fd=pfd, follow_symlinks=False)

    # -- metadata: owner, then xattrs (chown clears security.capability), then mode, then times

    def _meta_at(self, pfd: int, base: str, member: tarfile.TarInfo, flags: int, dir_rel: str | None = None) -> None:
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | flags, dir_fd=pfd)
        try:
            self._meta(_proc(fd), member, dir_rel=dir_rel)
        finally:
            os.close(fd)

    def _meta(self, path: str, member: tarfile.TarInfo, dir_rel: str | None = None) -> None:
        os.chown(path, *self._owner(member))
        for key, value in member_xattrs(member).items():
            _set_xattr(path, key, value, symlink=False)
        os.chmod(path, member.mode & 0o7777)
        if dir_rel is None:
            os.utime(path, ns=_times_ns(member))
        else:
            self._dir_times[dir_rel] = _times_ns(member)  # set last: adding entries changes them

    def _meta_symlink(self, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        os.chown(base, *self._owner(member), dir_fd=pfd, follow_symlinks=False)
        for key, value in member_xattrs(member).items():
            _set_xattr(_proc(pfd, base), key, value, symlink=True)
        os.utime(base, ns=_times_ns(member), dir_fd=pfd, follow_symlinks=False)

    def _finish_dir_times(self) -> None:
        self.tree.invalidate()
        for rel, times in self._dir_times.items():
            if rel == ".":
                os.utime(_proc(self.tree.root_fd), ns=times)
                continue
            parent_rel, base = posixpath.split(rel)
            try:
                pfd = self.tree.open_dir(parent_rel or ".", rel, create=False)
            except (FileNotFoundError, NotADirectoryError, InvalidArgument):
                continue
            try:
                fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            except (FileNotFoundError, NotADirectoryError, OSError):
                continue
            finally:
                os.close(pfd)
            try:
                os.utime(_proc(fd), ns=times)
            finally:
                os.close(fd)


# ---- public entry points ------------------------------------------------------


def _read_archive(reader: _HashingReader, ex: _Extractor, what: str) -> None:
    try:
        with _open_tar(reader) as tf:
            ex.run(tf)
            _check_end(tf, reader, what)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise InvalidArgument(f"{what} is not a valid tar archive: {e}") from None
    except _CorruptStream as e:
        raise InvalidArgument(f"{what} is not a valid compressed stream: {e}") from None


def _is_empty(reader: _HashingReader, what: str) -> bool:
    try:
        return reader.at_eof()
    except _CorruptStream as e:
        raise InvalidArgument(f"{what} is not a valid compressed stream: {e}") from None


def _root_state(dest: Path) -> tuple[os.stat_result, dict[str, bytes]]:
    st = os.stat(dest)
    xattrs: dict[str, bytes] = {}
    try:
        for name in os.listxattr(dest):
            try:
                xattrs[name] = os.getxattr(dest, name)
            except OSError:
                pass
    except OSError:
        pass
    return st, xattrs


def _reset_dir(dest: Path, state: tuple[os.stat_result, dict[str, bytes]]) -> None:
    """Best effort: empty `dest` and put back its own owner, mode, xattrs and times."""
    st, xattrs = state
    try:
        with os.scandir(dest) as it:
            entries = list(it)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    try:
        for name in os.listxattr(dest):
            if name not in xattrs:
                os.removexattr(dest, name)
        for name, value in xattrs.items():
            os.setxattr(dest, name, value)
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, stat.S_IMODE(st.st_mode))
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError:
        pass


def apply_layer(stream: BinaryIO, dest: Path) -> ApplyResult:
    """Apply a layer tar (plain, gzip, bzip2, xz; zstd with `zstandard`) to the empty
    overlay2 ``diff`` directory `dest`, converting whiteouts to overlay form.

    On any failure `dest` is emptied again and the error is raised: InvalidArgument for a
    bad or unsafe archive, Unsupported for zstd without `zstandard`.
    """
    dest = Path(dest)
    try:
        with os.scandir(dest) as it:
            if any(True for _ in it):
                raise FailedPrecondition(f"layer directory {str(dest)!r} is not empty")
    except FileNotFoundError:
        raise NotFound(f"layer directory {str(dest)!r} does not exist") from None
    except NotADirectoryError:
        raise InvalidArgument(f"layer directory {str(dest)!r} is not a directory") from None
    state = _root_state(dest)
    try:
        reader = _open_stream(stream)
        if _is_empty(reader, "layer"):  # an empty stream is an empty layer
            return ApplyResult(diff_id=reader.digest(), size=0)
        ex = _Extractor(dest, layer=True)
        try:
            _read_archive(reader, ex, "layer")
        finally:
            ex.close()
        try:
            reader.drain()  # the digest covers every byte of the tar, padding included
        except _CorruptStream as e:
            raise InvalidArgument(f"layer is not a valid compressed stream: {e}") from None
        return ApplyResult(diff_id=reader.digest(), size=ex.size)
    except BaseException:
        _reset_dir(dest, state)
        raise


def extract_tree_tar(stream: BinaryIO, dest: Path, *, no_overwrite_dir_non_dir: bool = False,
                     chown: tuple[int, int] | None = None) -> None:
    """Extract an archive into an existing directory (``cp`` into a container).

    Same entry rules as `apply_layer` but no whiteout conversion, and symlinks already in
    `dest` are resolved with chroot semantics (`dest` is the container's root). With
    `no_overwrite_dir_non_dir`, replacing a directory by a non-directory or the reverse
    raises Conflict. `chown` (uid, gid) overrides the archive's owners. Not transactional:
    on failure, what was extracted before the bad entry stays.
    """
    reader = _open_stream(stream)
    if _is_empty(reader, "archive"):
        return
    ex = _Extractor(Path(dest), layer=False, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown=chown)
    try:
        _read_archive(reader, ex, "archive")
    finally:
        ex.close()
