"""The two syscalls the layer store needs: mount(2) and umount2(2), via ctypes.

Failures raise OSError(errno, strerror, path). Kept minimal on purpose; the general
wrappers live in `dockyard.kernel`.
"""

from __future__ import annotations

import ctypes
import os
from .._path import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MNT_DETACH = 2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def mount(source: str, target: str | Path, fstype: str, flags: int = 0, data: str = "") -> None:
    rc = _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), flags,
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}", str(target))


def umount2(target: str | Path, flags: int = 0) -> None:
    rc = _libc.umount2(os.fsencode(target), flags)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}", str(target))


def _unescape(field: str) -> str:
    """Undo the octal escapes (\\040 etc.) of /proc/self/mountinfo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def is_mounted(target: str | Path) -> bool:
    """True when `target` is a mount point in this mount namespace."""
    want = os.path.realpath(target)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split(" ", 5)
                if len(fields) > 4 and _unescape(fields[4]) == want:
                    return True
    except FileNotFoundError:
        return os.path.ismount(want)
    return False


def mount_from(cwd: str | Path, source: str, target: str | Path, fstype: str, flags: int,
               data: str) -> None:
    """mount(2) with relative paths in `data` resolved against `cwd` (Docker's mountFrom).

    The chdir happens in a forked child so the caller's working directory (shared by all
    its threads) never changes.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit
        code = 5  # EIO unless we learn better
        try:
            os.close(r)
            os.chdir(cwd)
            rc = _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), flags,
                             data.encode())
            code = ctypes.get_errno() if rc != 0 else 0
        except OSError as e:
            code = e.errno or 5
        finally:
            try:
                os.write(w, code.to_bytes(4, "little"))
            finally:
                os._exit(0)
    os.close(w)
    try:
        raw = os.read(r, 4)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    err = int.from_bytes(raw, "little") if len(raw) == 4 else 5  # EIO when the child died
    if err:
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}", str(target))


_libc.syncfs.argtypes = [ctypes.c_int]


def syncfs(path: str | Path) -> None:
    """Flush the filesystem holding `path` (one syscall instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)
