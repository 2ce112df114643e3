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

import base64
import errno
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

from ..errors import Conflict, DockyardError, FailedPrecondition, InvalidArgument, NotFound
from .tarfs_stream import _CorruptStream, _HashingReader, _open_stream

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
AUFS_LINK_DIR = ".wh..wh.plnk"  # aufs kept hardlink sources here; they may be link targets
OVERLAY_XATTR_PREFIX = "trusted.overlay."
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
PAX_XATTR_PREFIX = "SCHILY.xattr."
_LIBARCHIVE_XATTR_PREFIX = "LIBARCHIVE.xattr."

_CHUNK = 1 << 20
_MAX_SYMLINKS = 40
_NS = 1_000_000_000


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


# ---- member metadata -------------------------------------------------------


def member_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes recorded in a member's PAX header (SCHILY and libarchive forms),
    minus trusted.overlay.* (overlay state is expressed with whiteout files, never trusted
    from an archive)."""
    out: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if key.startswith(_LIBARCHIVE_XATTR_PREFIX):
            try:
                from urllib.parse import unquote_to_bytes

                name = unquote_to_bytes(key[len(_LIBARCHIVE_XATTR_PREFIX):]).decode("utf-8", "surrogateescape")
                out.setdefault(name, base64.b64decode(value + "=" * (-len(value) % 4)))
            except ValueError:
                continue
    for key, value in member.pax_headers.items():
        if key.startswith(PAX_XATTR_PREFIX):
            out[key[len(PAX_XATTR_PREFIX):]] = value.encode("utf-8", "surrogateescape")
    return {k: v for k, v in sorted(out.items()) if k and not k.startswith(OVERLAY_XATTR_PREFIX)}


def _pax_time_ns(member: tarfile.TarInfo, key: str) -> int | None:
    raw = member.pax_headers.get(key)
    if raw:
        try:
            return int(Decimal(raw) * _NS)
        except (InvalidOperation, ValueError):
            return None
    return None


def _times_ns(member: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in ns: PAX times at full precision, else the header's seconds."""
    mtime = _pax_time_ns(member, "mtime")
    if mtime is None:
        mtime = int(member.mtime) * _NS
    atime = _pax_time_ns(member, "atime")
    return (mtime if atime is None else atime), mtime


def _proc(fd: int, name: str | None = None) -> str:
    """A path naming what `fd` refers to (or `name` inside that dir) without re-resolving."""
    return f"/proc/self/fd/{fd}" if name is None else f"/proc/self/fd/{fd}/{name}"


def _lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _set_xattr(path: str, name: str, value: bytes, *, symlink: bool) -> None:
    try:
        os.setxattr(path, name, value, follow_symlinks=not symlink)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return  # the file system has no such namespace: skip that one attribute
        if symlink and e.errno == errno.EPERM and name.startswith("user."):
            return  # Linux allows no user.* xattrs on symlinks
        raise


# ---- resolution inside the destination ------------------------------------


class _Tree:
    """An open destination directory; resolves relative paths inside it.

    strict=True (layers): a symlink met while resolving a parent is followed inside the
    tree only when its target is relative and stays below the root; an absolute target or
    one that climbs above the root is refused. strict=False (``cp`` into a container
    rootfs): chroot semantics, an absolute target starts at the root and ``..`` at the
    root stays at the root.
    """

    def __init__(self, root: Path, *, strict: bool, label: str, where: str,
                 chown: tuple[int, int] | None) -> None:
        try:
            self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"destination directory {str(root)!r} does not exist") from None
        except NotADirectoryError:
            raise InvalidArgument(f"destination {str(root)!r} is not a directory") from None
        self.strict = strict
        self.label = label
        self.where = where
        self.chown = chown
        self._cache: tuple[str, int] | None = None

    def close(self) -> None:
        self.invalidate()
        os.close(self.root_fd)

    def invalidate(self) -> None:
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def parent(self, rel: str, entry: str) -> int:
        """A (cached, tree-owned) fd of directory `rel`, created as needed (0755)."""
        if self._cache is not None and self._cache[0] == rel:
            return self._cache[1]
        fd = self.open_dir(rel, entry, create=True)
        self.invalidate()
        self._cache = (rel, fd)
        return fd

    def open_dir(self, rel: str, entry: str, *, create: bool) -> int:
        """Open directory `rel` (resolved inside the root); the caller closes the fd.

        Raises FileNotFoundError when a component is missing and `create` is false.
        """
        todo: deque[str] = deque(rel.split("/"))
        stack: list[int] = [self.root_fd]
        names: list[str] = []
        hops = 0
        try:
            while todo:
                comp = todo.popleft()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                        names.pop()
                    continue
                cur = stack[-1]
                st = _lstat_at(cur, comp)
                if st is None:
                    if not create:
                        raise FileNotFoundError(errno.ENOENT, "no such directory", "/".join(names + [comp]))
                    os.mkdir(comp, 0o700, dir_fd=cur)
                    fd = os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
                    if self.chown is not None:
                        os.chown(_proc(fd), *self.chown)
                    os.chmod(_proc(fd), 0o755)
                    stack.append(fd)
                    names.append(comp)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    link = "/".join(names + [comp])
                    if hops > _MAX_SYMLINKS:
                        raise InvalidArgument(f"{self.label} {entry!r}: too many levels of symbolic links at {link!r}")
                    target = os.readlink(comp, dir_fd=cur)
                    if self.strict and self._escapes(len(names), target):
                        raise InvalidArgument(
                            f"{self.label} {entry!r} goes through symlink {link!r} -> {target!r}, "
                            f"which points outside {self.where}"
                        )
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                        names.clear()
                    todo.extendleft(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidArgument(
                        f"{self.label} {entry!r}: {'/'.join(names + [comp])!r} is not a directory"
                    )
                stack.append(os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur))
                names.append(comp)
            return stack.pop() if len(stack) > 1 else os.dup(self.root_fd)
        finally:
            for fd in stack[1:]:
                os.close(fd)

    @staticmethod
    def _escapes(depth: int, target: str) -> bool:
        """Would `target`, read in a dir `depth` levels below the root, leave the root?"""
        if target.startswith("/"):
            return True
        for comp in target.split("/"):
            if comp == "..":
                depth -= 1
                if depth < 0:
                    return True
            elif comp not in ("", "."):
                depth += 1
        return False


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
