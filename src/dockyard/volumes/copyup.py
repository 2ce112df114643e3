"""Copy-up: fill a new, empty volume with what the image has at the mount path.

Copies the tree below `src` into `dst` keeping owners, modes, times, xattrs, hardlinks,
symlinks (never followed), devices and fifos; `dst` itself takes `src`'s owner and mode,
as Docker's copyExistingContents + copyOwnership do. `src` must already be resolved
inside the container's rootfs (the engine uses secure_join); nothing below it is followed.
"""

from __future__ import annotations

import contextlib
import os
import stat

_CHUNK = 1 << 20


def _copy_meta(src_st: os.stat_result, src: str, dst: str) -> None:
    with contextlib.suppress(OSError):
        for key in os.listxattr(src, follow_symlinks=False):
            if key.startswith("trusted.overlay."):
                continue
            with contextlib.suppress(OSError):
                os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=False), follow_symlinks=False)
    os.chown(dst, src_st.st_uid, src_st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(src_st.st_mode):
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _copy_file(src: str, dst: str, st: os.stat_result) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            remaining = st.st_size
            while remaining > 0:
                try:
                    n = os.copy_file_range(sfd, dfd, min(remaining, 1 << 30))
                except OSError:
                    n = 0
                if n == 0:
                    break
                remaining -= n
            while True:  # whatever copy_file_range did not do (or a file that grew)
                chunk = os.read(sfd, _CHUNK)
                if not chunk:
                    break
                os.write(dfd, chunk)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def copy_tree(src: str, dst: str) -> bool:
    """Copy `src`'s contents into the empty directory `dst`. Returns False (and copies
    nothing) when `src` is not a directory."""
    try:
        top = os.lstat(src)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISDIR(top.st_mode):
        return False
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, str, os.stat_result]] = []

    def walk(s: str, d: str) -> None:
        with os.scandir(s) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            sp, dp = os.path.join(s, e.name), os.path.join(d, e.name)
            st = os.lstat(sp)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dp, 0o700)
                walk(sp, dp)
                dirs.append((sp, dp, st))  # times and modes after the contents
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], dp, follow_symlinks=False)
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(sp), dp)
            elif stat.S_ISREG(mode):
                _copy_file(sp, dp, st)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(dp, mode, st.st_rdev)
            else:
                continue  # sockets: nothing to copy
            _copy_meta(st, sp, dp)
            if st.st_nlink > 1:
                links[key] = dp

    walk(src, dst)
    for sp, dp, st in dirs:
        _copy_meta(st, sp, dp)
    _copy_meta(top, src, dst)
    return True
