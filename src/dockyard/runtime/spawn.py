"""Fork a container's init: a new PID namespace, a child that runs `init.run`, a sync socket.

`fork_init` must be called in a throwaway process: it moves the caller's children into a new
PID namespace. The engine calls it in a short-lived fork that then execs the shim (so the
container's init is the shim's child); `dockyard-runtime create` calls it in its own process.
"""

from __future__ import annotations

import errno
import os

from .._record import dataclass
from ..kernel import syscalls as k
from ..kernel import usock
from . import init


@dataclass(frozen=True)
class InitHandle:
    pid: int
    sync: usock.socket


class CreateFailed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def fork_init(spec: dict, fifo_path: str, stdio: tuple[int, int, int] | None,
              cgroup_dirs: dict[str, str], close_in_child: tuple[int, ...] = ()) -> InitHandle:
    linux = spec.get("linux") or {}
    pidns = next((n for n in linux.get("namespaces") or [] if n["type"] == "pid"), None)
    if pidns is not None:
        if pidns.get("path"):
            fd = os.open(pidns["path"], os.O_RDONLY | os.O_CLOEXEC)
            k.setns(fd, k.CLONE_NEWPID, pidns["path"])
            os.close(fd)
        else:
            k.unshare(k.CLONE_NEWPID)
    parent_sock, child_sock = usock.socketpair(usock.AF_UNIX, usock.SOCK_SEQPACKET)
    fifo_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
    # The first cgroup migration on a host waits for an RCU grace period (~10 ms). Without a
    # cgroup namespace to make, the parent moves the init while the init sets up its mounts;
    # the init waits for that before it reports ready. With one, the init joins first itself.
    cgroupns = any(n["type"] == "cgroup" and not n.get("path") for n in linux.get("namespaces") or [])
    join_r = join_w = -1
    if cgroup_dirs and not cgroupns:
        join_r, join_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the container's init
        try:
            parent_sock.close()
            for fd in close_in_child:
                os.close(fd)
            if join_w >= 0:
                os.close(join_w)
            init.run(spec, child_sock, fifo_fd, stdio, cgroup_dirs, join_fd=join_r if join_w >= 0 else None)
        finally:
            os._exit(125)
    child_sock.close()
    os.close(fifo_fd)
    if join_w >= 0:
        os.close(join_r)
        try:
            for d in cgroup_dirs.values():
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            os.write(join_w, b"1")
        except OSError as e:
            if e.errno not in (errno.ESRCH, errno.EPIPE):
                os.kill(pid, 9)
                raise CreateFailed(f"moving the container's init into its cgroup: {e}", 125) from None
            # the init is gone already: its own error comes through the sync socket
        finally:
            os.close(join_w)
    return InitHandle(pid, parent_sock)


def wait_ready(handle: InitHandle) -> int | None:
    """Read the init's sync messages until "ready". Returns the console master fd, if any."""
    master: int | None = None
    while True:
        try:
            data, fds, _flags, _addr = usock.recv_fds(handle.sync, 65536, 4)
        except OSError as e:
            raise CreateFailed(f"container init: {e.strerror}", 125) from None
        if not data:
            raise CreateFailed("container init exited before it was ready", 125)
        kind, _, rest = data.decode(errors="replace").partition(" ")
        if kind == "console":
            master = fds[0]
        elif kind == "ready":
            return master
        elif kind == "error":
            for fd in fds:
                os.close(fd)
            code, _, message = rest.partition(" ")
            raise CreateFailed(message, int(code))


def restore_pid_ns() -> None:
    """Undo fork_init's unshare for this process's later children (e.g. before exec'ing the shim)."""
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.setns(fd, k.CLONE_NEWPID, "/proc/self/ns/pid")
    finally:
        os.close(fd)


def open_fifo_for_start(fifo_path: str, pid: int, timeout: float = 30.0) -> None:
    """`start`: release the init blocked on the exec fifo; fail if it died meanwhile."""
    import select
    import time

    fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                data = os.read(fd, 1)
                if data:
                    break
            if not alive(pid):
                raise CreateFailed("container init exited before start", 125)
            if time.monotonic() > deadline:
                raise CreateFailed("timed out waiting for the container's init at start", 125)
    finally:
        os.close(fd)
    try:
        os.unlink(fifo_path)
    except FileNotFoundError:
        pass


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
