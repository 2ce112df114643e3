"""Where tarfs writes: an open destination tree resolved through directory file descriptors
(`_Tree`: no path an archive names can leave it, see `tarfs_apply`), and the metadata of tar
members (xattrs, nanosecond times) set on what is created there. Split out of tarfs_apply.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
import tarfile
from collections import deque
from decimal import Decimal, InvalidOperation
from .._path import Path

from ..errors import InvalidArgument, NotFound

OVERLAY_XATTR_PREFIX = "trusted.overlay."
PAX_XATTR_PREFIX = "SCHILY.xattr."
_LIBARCHIVE_XATTR_PREFIX = "LIBARCHIVE.xattr."
_MAX_SYMLINKS = 40
_NS = 1_000_000_000


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
