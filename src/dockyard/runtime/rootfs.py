"""Build a container's root filesystem inside its new mount namespace (OCI `mounts`).

Runs in the container's init process, before pivot_root. Paths inside the rootfs are
resolved with `secure_join`, so a symlink in an image can never point a mount outside.
"""

from __future__ import annotations

import errno
import os
import stat

from ..kernel import syscalls as k

#: OCI mount option -> (set flags, clear flags)
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (k.MS_RDONLY, 0), "rw": (0, k.MS_RDONLY),
    "nosuid": (k.MS_NOSUID, 0), "suid": (0, k.MS_NOSUID),
    "nodev": (k.MS_NODEV, 0), "dev": (0, k.MS_NODEV),
    "noexec": (k.MS_NOEXEC, 0), "exec": (0, k.MS_NOEXEC),
    "sync": (k.MS_SYNCHRONOUS, 0), "async": (0, k.MS_SYNCHRONOUS),
    "dirsync": (k.MS_DIRSYNC, 0), "remount": (k.MS_REMOUNT, 0),
    "mand": (k.MS_MANDLOCK, 0), "nomand": (0, k.MS_MANDLOCK),
    "atime": (0, k.MS_NOATIME), "noatime": (k.MS_NOATIME, 0),
    "diratime": (0, k.MS_NODIRATIME), "nodiratime": (k.MS_NODIRATIME, 0),
    "bind": (k.MS_BIND, 0), "rbind": (k.MS_BIND | k.MS_REC, 0),
    "relatime": (k.MS_RELATIME, 0), "norelatime": (0, k.MS_RELATIME),
    "strictatime": (k.MS_STRICTATIME, 0), "nostrictatime": (0, k.MS_STRICTATIME),
    "nosymfollow": (k.MS_NOSYMFOLLOW, 0),
}
_PROPAGATION = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """OCI mount options -> (flags, propagation flags, fs data string)."""
    flags = 0
    prop = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            s, c = _FLAGS[opt]
            flags = (flags | s) & ~c
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """Join `unsafe` onto `root`, resolving symlinks as if `root` were `/`."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 255:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", unsafe)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_p(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _ensure_target(target: str, source_is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    if source_is_dir:
        _mkdir_p(target)
    else:
        _mkdir_p(os.path.dirname(target))
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def mount_one(rootfs: str, m: dict, cgroup_paths: dict[str, str] | None = None) -> None:
    dest = m["destination"]
    mtype = m.get("type") or ""
    source = m.get("source") or mtype or "none"
    flags, prop, data = parse_options(list(m.get("options") or []))
    target = secure_join(rootfs, dest)
    if flags & k.MS_BIND:
        _ensure_target(target, os.path.isdir(source))
        k.mount(source, target, None, flags & (k.MS_BIND | k.MS_REC))
        if flags & ~(k.MS_BIND | k.MS_REC | k.MS_REMOUNT):
            remount_flags = (flags & ~k.MS_REC) | k.MS_REMOUNT | k.MS_BIND
            k.mount(None, target, None, remount_flags)
    elif mtype == "cgroup":
        _mount_cgroup(target, flags, cgroup_paths or {})
        return
    else:
        _mkdir_p(target)
        try:
            k.mount(source, target, mtype, flags, data or None)
        except OSError as e:
            if mtype == "sysfs" and e.errno == errno.EPERM:
                # no netns of our own (e.g. --network host): bind the host's /sys instead
                k.mount("/sys", target, None, k.MS_BIND | k.MS_REC)
                k.mount(None, target, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | (flags & ~k.MS_RDONLY))
            elif mtype == "mqueue" and e.errno in (errno.EPERM, errno.EBUSY):
                k.mount("/dev/mqueue", target, None, k.MS_BIND)
            else:
                raise
    if prop:
        k.mount(None, target, None, prop)


def _mount_cgroup(target: str, flags: int, cgroup_paths: dict[str, str]) -> None:
    """cgroup v2: mount cgroup2 (inside a cgroup namespace). v1: a tmpfs with read-only
    binds of this container's own cgroup directory in each controller, as runc does."""
    _mkdir_p(target)
    if "" in cgroup_paths:
        k.mount("cgroup", target, "cgroup2", flags)
        return
    k.mount("tmpfs", target, "tmpfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "mode=755")
    for ctrl, path in sorted(cgroup_paths.items()):
        if not os.path.isdir(path):
            continue
        sub = os.path.join(target, ctrl)
        _mkdir_p(sub)
        k.mount(path, sub, None, k.MS_BIND | k.MS_REC)
        k.mount(None, sub, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)
    k.mount(None, target, None, k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "mode=755")


_DEFAULT_SYMLINKS = (
    ("/proc/self/fd", "dev/fd"),
    ("/proc/self/fd/0", "dev/stdin"),
    ("/proc/self/fd/1", "dev/stdout"),
    ("/proc/self/fd/2", "dev/stderr"),
    ("/proc/kcore", "dev/core"),
)


def create_devices(rootfs: str, devices: list[dict], bind_from_host: bool = False) -> None:
    """mknod each OCI device; bind-mount the host's node where mknod is not allowed."""
    for d in devices:
        path = secure_join(rootfs, d["path"])
        _mkdir_p(os.path.dirname(path))
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.get("type", "c")]
        mode = d.get("fileMode", 0o666) & 0o7777
        if os.path.lexists(path):
            os.unlink(path)
        try:
            if bind_from_host:
                raise PermissionError
            os.mknod(path, kind | mode, os.makedev(d.get("major", 0), d.get("minor", 0)))
            os.chown(path, d.get("uid", 0), d.get("gid", 0))
            os.chmod(path, mode)
        except PermissionError:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            k.mount(d["path"], path, None, k.MS_BIND)
    for src, dst in _DEFAULT_SYMLINKS:
        p = os.path.join(rootfs, dst)
        if not os.path.lexists(p):
            os.symlink(src, p)
    ptmx = os.path.join(rootfs, "dev/ptmx")
    if os.path.isdir(os.path.join(rootfs, "dev/pts")):
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)


def mask_path(path: str) -> None:
    """Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            k.mount("tmpfs", path, "tmpfs", k.MS_RDONLY, None)
        else:
            k.mount("/dev/null", path, None, k.MS_BIND)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise


def readonly_path(path: str) -> None:
    try:
        k.mount(path, path, None, k.MS_BIND | k.MS_REC)
        k.mount(None, path, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | k.MS_REC)
    except OSError as e:
        if e.errno not in (errno.ENOENT,):
            raise


def pivot(rootfs: str) -> None:
    """pivot_root into rootfs and detach the old root (the `pivot_root . .` technique)."""
    os.chdir(rootfs)
    k.pivot_root(".", ".")
    # The old root is now mounted on top of the new one at "."; make it a slave so the
    # detach does not propagate back to the host, then lazily unmount it.
    k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC)
    k.umount(".", k.MNT_DETACH)
    os.chdir("/")
