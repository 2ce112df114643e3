"""The local driver's mounts: a volume created with ``-o type=... -o device=... -o o=...`` is
mounted at its _data while at least one container using it runs, as Docker's local driver
does (``type=tmpfs``; ``type=none,o=bind,device=/path``; any other file system type as
``mount -t TYPE -o O DEVICE``).

The users are kept per volume in <runroot>/volumes/<name>.users (one container ID a line),
changed under <runroot>/volumes/<name>.lock: the first user mounts, the last one unmounts.
Both steps are idempotent per container, so an exit handled twice cannot unbalance them.
The run root dies with a reboot, and so do the mounts.
"""

from __future__ import annotations

import contextlib
import os
from .._path import Path

from .. import _util
from ..errors import FailedPrecondition
from ..kernel import syscalls as k
from .store import Volume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

#: `o=` words that are mount flags rather than file system data
_FLAGS = {
    "ro": k.MS_RDONLY, "nosuid": k.MS_NOSUID, "nodev": k.MS_NODEV, "noexec": k.MS_NOEXEC,
    "sync": k.MS_SYNCHRONOUS, "dirsync": k.MS_DIRSYNC, "noatime": k.MS_NOATIME,
    "nodiratime": k.MS_NODIRATIME, "relatime": k.MS_RELATIME, "strictatime": k.MS_STRICTATIME,
    "bind": k.MS_BIND, "rbind": k.MS_BIND | k.MS_REC,
}
_NOOP = ("rw", "defaults", "suid", "dev", "exec", "async")


def split_options(o: str) -> tuple[int, str]:
    """``o=`` -> (mount flags, data string)."""
    flags = 0
    data = []
    for word in (w for w in o.split(",") if w):
        if word in _FLAGS:
            flags |= _FLAGS[word]
        elif word not in _NOOP:
            data.append(word)
    return flags, ",".join(data)


def is_mounted(path: str | os.PathLike[str]) -> bool:
    want = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split(" ", 5)
                if len(fields) > 4 and fields[4].replace("\\040", " ") == want:
                    return True
    except FileNotFoundError:
        return os.path.ismount(want)
    return False


class LocalMounts:
    """Reference-counted mounts of the local driver's volumes."""

    def __init__(self, runroot: Path) -> None:
        self.dir = runroot / "volumes"

    @contextlib.contextmanager
    def _users(self, name: str) -> Iterator[list[str]]:
        path = self.dir / f"{name}.users"
        with _util.locked(self.dir / f"{name}.lock"):
            try:
                users = path.read_text().split()
            except FileNotFoundError:
                users = []
            before = list(users)
            yield users
            if users != before:
                if users:
                    _util.atomic_write(path, "".join(u + "\n" for u in users), 0o600, durable=False)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

    def acquire(self, v: Volume, user: str) -> None:
        """Mount `v` at its _data for `user` (a container ID) unless mounted already."""
        if not v.needs_mount:
            return
        with self._users(v.name) as users:
            if not is_mounted(v.mountpoint):
                _mount(v)
            if user not in users:
                users.append(user)

    def release(self, v: Volume, user: str) -> None:
        """Drop `user`; the last one out unmounts."""
        if not v.needs_mount:
            return
        with self._users(v.name) as users:
            if user in users:
                users.remove(user)
            if not users and is_mounted(v.mountpoint):
                k.umount(str(v.mountpoint), k.MNT_DETACH)

    def users(self, name: str) -> list[str]:
        try:
            return (self.dir / f"{name}.users").read_text().split()
        except FileNotFoundError:
            return []


def _mount(v: Volume) -> None:
    opts = v.options
    kind = opts.get("type") or ""
    flags, data = split_options(opts.get("o") or "")
    target = str(v.mountpoint)
    os.makedirs(target, 0o755, exist_ok=True)
    try:
        if kind == "tmpfs":
            k.mount("tmpfs", target, "tmpfs", flags & ~(k.MS_BIND | k.MS_REC), data or None)
        elif flags & k.MS_BIND:
            device = opts.get("device") or ""
            if not os.path.exists(device):
                raise FailedPrecondition(f"error while mounting volume '{v.mountpoint}': failed to mount "
                                         f"local volume: mount {device}:{target}, flags: bind: no such file or directory")
            k.mount(device, target, None, flags & (k.MS_BIND | k.MS_REC))
            if flags & k.MS_RDONLY:
                k.mount(None, target, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY)
        else:
            k.mount(opts.get("device") or "none", target, kind, flags, data or None)
    except OSError as e:
        raise FailedPrecondition(f"error while mounting volume '{v.mountpoint}': failed to mount local "
                                 f"volume: mount {opts.get('device') or kind}:{target}: {e.strerror}") from None
