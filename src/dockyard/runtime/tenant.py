"""A tenant process: `exec` into a running container's namespaces and cgroup.

Like the init (init.py) but joining instead of creating: the forking parent enters the
container's PID namespace so its child lands inside; the child joins the cgroup and the
other namespaces (mount last), optionally opens a pty inside the container, reports
"ready", waits on the exec fifo, drops to the user and capabilities, and execs.
"""

from __future__ import annotations

import os
import socket

from ..kernel import syscalls as k
from . import init
from .spawn import InitHandle

#: namespaces joined by the child, in order (mount last: it changes the root)
_JOIN_ORDER = ("ipc", "uts", "net", "cgroup", "mnt")


def fork_tenant(init_pid: int, process: dict, fifo_path: str, stdio: tuple[int, int, int] | None,
                cgroup_dirs: dict[str, str], close_in_child: tuple[int, ...] = ()) -> InitHandle:
    """Fork the tenant; must be called in a throwaway process (it joins the PID namespace)."""
    ns_fds: dict[str, int] = {}
    own = {}
    for name in ("pid",) + _JOIN_ORDER:
        path = f"/proc/{init_pid}/ns/{name}"
        try:
            target = os.readlink(path)
            if target == os.readlink(f"/proc/self/ns/{name}"):
                continue  # shared with the host (e.g. --network host): nothing to join
            ns_fds[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            own[name] = target
        except FileNotFoundError:
            continue
    if "pid" in ns_fds:
        fd = ns_fds.pop("pid")
        try:
            k.setns(fd, k.CLONE_NEWPID, f"/proc/{init_pid}/ns/pid")
        finally:
            os.close(fd)
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fifo_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            parent_sock.close()
            for fd in close_in_child:
                os.close(fd)
            _child(process, child_sock, fifo_fd, stdio, cgroup_dirs, ns_fds)
        finally:
            os._exit(125)
    child_sock.close()
    os.close(fifo_fd)
    for fd in ns_fds.values():
        os.close(fd)
    return InitHandle(pid, parent_sock)


def _child(process: dict, sync: socket.socket, fifo_fd: int, stdio: tuple[int, int, int] | None,
           cgroup_dirs: dict[str, str], ns_fds: dict[str, int]) -> None:
    try:
        if process.get("terminal"):
            import termios  # noqa: F401  (before the mount namespace switch hides the host's modules)
        init.start_process(stdio, cgroup_dirs)
        flags = {"ipc": k.CLONE_NEWIPC, "uts": k.CLONE_NEWUTS, "net": k.CLONE_NEWNET,
                 "cgroup": k.CLONE_NEWCGROUP, "mnt": k.CLONE_NEWNS}
        for name in _JOIN_ORDER:
            if name in ns_fds:
                k.setns(ns_fds[name], flags[name], f"namespace {name}")
                os.close(ns_fds[name])
        os.chdir("/")
        master = -1
        if process.get("terminal"):
            master, slave_name = init._open_console("/", process.get("consoleSize"))
            init.send(sync, "console", [master])
            init._attach_console(slave_name)
            os.close(master)
        env = init._env_dict(process.get("env") or [])
        args = process.get("args") or []
        if not args:
            raise init.InitError("no command specified", 125)
        cwd = process.get("cwd") or "/"
        if not os.path.isdir(cwd):
            raise init.InitError(f"chdir to cwd (\"{cwd}\") set in config.json failed: no such file or directory", 126)
        path = init.find_executable(args[0], env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        init.send(sync, "ready")
        wfd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(wfd, b"0")
        os.close(wfd)
        os.close(fifo_fd)
        sync.close()
        init.become(process, path, args, env, cwd)
    except init.InitError as e:
        init._fail(sync, str(e), e.code)
    except OSError as e:
        init._fail(sync, f"{e.strerror}: {e.filename}" if e.filename else str(e), 125)
    except Exception as e:
        init._fail(sync, f"exec: {type(e).__name__}: {e}", 125)
