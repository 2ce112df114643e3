"""Extract an untrusted tar member the way tarfile's `tar`/`data` filters do, on any 3.11.

The extraction filters arrived in CPython 3.11.4; Debian 12's python3 is 3.11.2 without them
(the install prefers it: see scripts/install). Where tarfile has them they are used; else the
same rules are applied here: the member's name loses its leading slashes; a member that would
land outside the destination is refused (also through a symlink extracted before);
set-user/group-ID, sticky and group/other-write bits are dropped; and with `data`, links
that point outside the destination (or to absolute paths), devices and FIFOs are refused, and
owners are not restored.
"""

from __future__ import annotations

import copy
import os
import stat
import tarfile


class UnsafeMember(tarfile.TarError):
    """A member the filter refuses (tarfile's FilterError, where it has one)."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _checked(member: tarfile.TarInfo, dest: str, data: bool) -> tarfile.TarInfo:
    root = os.path.realpath(dest)
    name = member.name.lstrip("/")
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(target, root):
        raise UnsafeMember(f"{member.name!r} would be extracted to {target!r}, which is outside the destination")
    if data and (member.issym() or member.islnk()):  # (the `tar` filter keeps any link)
        link = member.linkname
        if member.issym():
            if os.path.isabs(link):
                raise UnsafeMember(f"{member.name!r} is a symlink to an absolute path")
            resolved = os.path.realpath(os.path.join(os.path.dirname(target), link))
        else:
            resolved = os.path.realpath(os.path.join(root, link.lstrip("/")))
        if not _inside(resolved, root):
            raise UnsafeMember(f"{member.name!r} would link to {resolved!r}, which is outside the destination")
    if data and (member.ischr() or member.isblk() or member.isfifo()):
        raise UnsafeMember(f"{member.name!r} is a special file")
    safe = copy.copy(member)
    safe.name = name
    if member.mode is not None:
        mode = member.mode & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
        if data and member.isreg():
            mode |= stat.S_IRUSR | stat.S_IWUSR
            if not mode & stat.S_IXUSR:
                mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
        safe.mode = mode
    if data:
        safe.uid = safe.gid = 0
        safe.uname = safe.gname = ""
    return safe


def extract(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: str, data: bool = False) -> None:
    """Extract one member under `dest` with the `data` (or else `tar`) filter's rules."""
    if hasattr(tarfile, "data_filter"):
        tf.extract(member, dest, filter="data" if data else "tar")
        return
    safe = _checked(member, dest, data)
    tf.extract(safe, dest, set_attrs=True, numeric_owner=data)


def extract_all(tf: tarfile.TarFile, dest: str, data: bool = False) -> None:
    for member in tf:
        extract(tf, member, dest, data)
