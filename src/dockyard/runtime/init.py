"""The container's init process: from a forked child to the user's command.

Runs in the child that will become the container's PID 1. Steps, in order: join the cgroup,
enter/unshare namespaces, build the rootfs (mounts, devices, console), pivot_root, mask and
protect paths, set hostname/sysctls/rlimits, report "ready", block on the exec fifo until
`start`, switch user, set capabilities, and execve the command.
Any failure before "ready" is reported over the sync socket and the process exits.
"""

from __future__ import annotations

import errno
import fcntl
import os
import _signal as signal  # the C core: `signal` builds IntEnums (importing enum) at import
import stat
import struct
import sys

from ..kernel import caps as capmod
from ..kernel import syscalls as k
from ..kernel import usock
from . import rootfs as rfs

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430



class InitError(Exception):
    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def send(sock: usock.socket, msg: str, fds: list[int] | None = None) -> None:
    """Sync messages to the parent (the shim or the runtime): "ready", "console" (with the
    pty master attached), or "error <exit code> <message>". Plain text: the shim reads
    them without importing json."""
    data = msg.encode()
    if fds:
        usock.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def run(spec: dict, sync: usock.socket, fifo_fd: int, stdio: tuple[int, int, int] | None,
        cgroup_dirs: dict[str, str], join_fd: int | None = None) -> None:
    """Entry point in the forked child. Never returns: execs or exits. `join_fd`: the parent
    moves this process into its cgroup meanwhile and writes one byte there when done."""
    try:
        _prepare(spec, sync, fifo_fd, stdio, cgroup_dirs, join_fd)
    except InitError as e:
        _fail(sync, str(e), e.code)
    except OSError as e:
        _fail(sync, f"{e.strerror}: {e.filename}" if e.filename else str(e), 125)
    except Exception as e:  # report anything unexpected rather than hang the caller
        _fail(sync, f"container init: {type(e).__name__}: {e}", 125)


def _fail(sync: usock.socket, message: str, code: int) -> None:
    try:
        send(sync, f"error {code} {message}")
    except OSError:
        pass
    os._exit(code)


def _prepare(spec: dict, sync: usock.socket, fifo_fd: int, stdio: tuple[int, int, int] | None,
             cgroup_dirs: dict[str, str], join_fd: int | None = None) -> None:
    proc = spec["process"]
    linux = spec.get("linux") or {}
    rootfs = spec["root"]["path"]
    # Import now what is needed later: after pivot_root the host's modules are out of reach.
    if proc.get("rlimits"):
        import resource  # noqa: F401
    if proc.get("terminal"):
        import termios  # noqa: F401
    start_process(stdio, cgroup_dirs if join_fd is None else {})
    own_ns = _enter_namespaces(linux.get("namespaces") or [])

    has_mntns = any(n["type"] == "mount" for n in linux.get("namespaces") or [])
    if has_mntns:
        prop = linux.get("rootfsPropagation") or "rslave"
        k.mount(None, "/", None, rfs._PROPAGATION.get(prop, k.MS_SLAVE | k.MS_REC))
        k.mount(rootfs, rootfs, None, k.MS_BIND | k.MS_REC)
        for m in spec.get("mounts") or []:
            rfs.mount_one(rootfs, m, cgroup_dirs)
        if any(m["destination"] == "/dev" for m in spec.get("mounts") or []):
            rfs.create_devices(rootfs, linux.get("devices") or [], bind_from_host=False)
    master = -1
    if proc.get("terminal"):
        master, slave_name = _open_console(rootfs, proc.get("consoleSize"))
        send(sync, "console", [master])
    if has_mntns:
        rfs.pivot(rootfs)
    else:
        os.chroot(rootfs)
        os.chdir("/")
    for path in linux.get("maskedPaths") or []:
        rfs.mask_path(path)
    for key, value in (linux.get("sysctl") or {}).items():
        _check_sysctl(key, own_ns)
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))
    for path in linux.get("readonlyPaths") or []:
        rfs.readonly_path(path)
    if spec["root"].get("readonly"):
        k.mount(None, "/", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_REC)
    hostname = spec.get("hostname")
    if hostname and any(n["type"] == "uts" for n in linux.get("namespaces") or []):
        usock.sethostname(hostname)
    if proc.get("terminal"):
        _attach_console(slave_name)
        os.close(master)
    rlimits = proc.get("rlimits") or []
    if rlimits:
        import resource
    for rl in rlimits:
        res = getattr(resource, rl["type"], None) if rl["type"].startswith("RLIMIT_") else None
        if res is None:
            raise InitError(f"unknown rlimit {rl['type']}")
        try:
            resource.setrlimit(res, (rl["soft"], rl["hard"]))
        except (ValueError, OSError) as e:
            raise InitError(f"setting rlimit {rl['type']}: {e}") from None
    if "oomScoreAdj" in proc:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc["oomScoreAdj"]))
    env = _env_dict(proc.get("env") or [])
    cwd = proc.get("cwd") or "/"
    user = proc.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    if "HOME" not in env:
        env["HOME"] = _home_of(uid)
    if not os.path.isdir(cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
        os.chown(cwd, uid, gid)
    args = proc.get("args") or []
    if not args:
        raise InitError("no command specified", 125)
    path = find_executable(args[0], env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
    if join_fd is not None:
        if os.read(join_fd, 1) != b"1":
            raise InitError("the container's init was not moved into its cgroup")
        os.close(join_fd)
    send(sync, "ready")
    # Block until `start` opens the fifo for reading.
    wfd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(wfd, b"0")
    os.close(wfd)
    os.close(fifo_fd)
    sync.close()
    become(proc, path, args, env, cwd)


def become(proc: dict, path: str, args: list[str], env: dict[str, str], cwd: str) -> None:
    """The last steps of an init or a tenant, after `start`: drop to the process's user and
    capabilities, reset signals, close every other fd, execve. Never returns; failures are
    written to the process's stderr (exit 126, or 127 for a vanished command)."""
    try:
        finalize(proc.get("user") or {}, proc.get("capabilities") or {}, bool(proc.get("noNewPrivileges")))
        os.chdir(cwd)
    except OSError as e:
        os.write(2, f"container init: {e}\n".encode())
        os._exit(126)
    os.closerange(3, 65536)
    for sig in range(1, signal.NSIG):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    try:
        os.execve(path, args, env)
    except OSError as e:
        os.write(2, f"exec {args[0]}: {e.strerror}\n".encode())
        os._exit(127 if e.errno == errno.ENOENT else 126)
    except ValueError as e:  # e.g. an environment entry the kernel cannot take
        os.write(2, f"exec {args[0]}: {e}\n".encode())
        os._exit(126)


def start_process(stdio: tuple[int, int, int] | None, cgroup_dirs: dict[str, str]) -> None:
    """First steps of an init or a tenant: a session of its own, its stdio on 0-2, and
    the container's cgroup (joined while the host's cgroupfs paths are still visible)."""
    os.setsid()
    if stdio is not None:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
    for d in cgroup_dirs.values():
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write("0")


def _enter_namespaces(namespaces: list[dict]) -> set[str]:
    """Join or make the spec's namespaces; returns the types that are not the host's (new
    ones, and joined ones other than the one this process started in, as runc decides)."""
    joins: list[tuple[int, int, str]] = []
    own: set[str] = set()
    flags = 0
    for ns in namespaces:
        t = ns["type"]
        if t == "pid":
            continue  # handled by the parent before fork
        flag = k.NAMESPACE_FLAGS.get(t)
        if flag is None:
            raise InitError(f"unknown namespace type {t!r}")
        if ns.get("path"):
            try:
                fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise InitError(f"joining {t} namespace {ns['path']}: {e.strerror}") from None
            joins.append((fd, flag, ns["path"]))
            if os.fstat(fd).st_ino != os.stat(f"/proc/self/ns/{k.NAMESPACE_FILES.get(t, t)}").st_ino:
                own.add(t)
        else:
            flags |= flag
            own.add(t)
    for fd, flag, path in joins:
        k.setns(fd, flag, path)
        os.close(fd)
    if flags:
        k.unshare(flags)
    if flags & k.CLONE_NEWNET:
        _loopback_up()
    return own


def _loopback_up() -> None:
    """Bring `lo` up in a fresh network namespace (SIOCSIFFLAGS)."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = usock.socket(usock.AF_INET, usock.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def _open_console(rootfs: str, size: dict | None = None) -> tuple[int, str]:
    import termios

    ptmx = os.path.join(rootfs, "dev/pts/ptmx")
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    if size and size.get("height") and size.get("width"):
        # OCI process.consoleSize: the window size is right before the command starts
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size["height"], size["width"], 0, 0))
    return master, f"/dev/pts/{n}"


def _attach_console(slave_name: str) -> None:
    import termios

    fd = os.open(slave_name, os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)


def _check_sysctl(key: str, new_ns: set[str]) -> None:
    """Like runc: only sysctls of a namespace this container owns may be set."""
    ipc = key.startswith("fs.mqueue.") or key in (
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
    if ipc and "ipc" in new_ns:
        return
    if key.startswith("net.") and "network" in new_ns:
        return
    if key in ("kernel.domainname", "kernel.hostname") and "uts" in new_ns:
        return
    raise InitError(f"sysctl {key!r} is not in a separate kernel namespace")


def _home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd, as runc sets it when the spec has none."""
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            for line in f:
                row = line.rstrip("\n").split(":")
                if len(row) >= 6 and row[2] == str(uid):
                    return row[5] or "/"
    except OSError:
        pass
    return "/"


def _env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def find_executable(name: str, path_env: str) -> str:
    """Resolve the command like exec.LookPath inside the (pivoted) rootfs."""
    if "/" in name:
        _check_exec(name, name)
        return name
    for d in path_env.split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise InitError(f'exec: "{name}": executable file not found in $PATH', 127)


def _check_exec(path: str, name: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InitError(f'exec: "{name}": stat {path}: no such file or directory', 127) from None
    except OSError as e:
        raise InitError(f'exec: "{name}": {e.strerror}', 126) from None
    if stat.S_ISDIR(st.st_mode):
        raise InitError(f'exec: "{name}": is a directory', 126)
    if not st.st_mode & 0o111:
        raise InitError(f'exec: "{name}": permission denied', 126)


def finalize(user: dict, caps: dict, no_new_privs: bool) -> None:
    """Drop to the process's user and capabilities (bounding set first: that needs
    CAP_SETPCAP, which a non-root user no longer has in its effective set)."""
    _drop_bounding(caps)
    _switch_user(user)
    _apply_caps(caps)
    if no_new_privs:
        k.set_no_new_privs()
    os.umask(int(user.get("umask", 0o022)))


def _switch_user(user: dict) -> None:
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    os.setgroups(groups)
    if uid != 0:
        k.prctl(k.PR_SET_KEEPCAPS, 1)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if uid != 0:
        k.prctl(k.PR_SET_KEEPCAPS, 0)


def _drop_bounding(c: dict) -> None:
    bounding = capmod.mask(c.get("bounding") or [])
    for i in range(k.last_cap() + 1):
        if not bounding & (1 << i) and k.bounding_set_has(i):
            k.bounding_drop(i)


def _apply_caps(c: dict) -> None:
    eff, perm, _ = k.capget()
    have = perm
    k.capset(capmod.mask(c.get("effective") or []) & have, capmod.mask(c.get("permitted") or []) & have,
             capmod.mask(c.get("inheritable") or []) & have)
    k.ambient_clear()
    for name in c.get("ambient") or []:
        if name in capmod.CAP_NUMBERS:
            try:
                k.ambient_raise(capmod.CAP_NUMBERS[name])
            except OSError:
                pass
