"""`dockyard-runtime run`: create and start, then, in the foreground, wait for the init.

In the foreground the command is the init's subreaper and parent in all but name: it
forwards every signal it gets to the init, and with a terminal and no --console-socket it
receives the pty master itself (`_ConsoleListener`) and copies between it and its own
stdin/stdout (`_proxy_console`) until the init exits; its exit status is the init's.
"""

from __future__ import annotations

import os

from .cli_args import _RUN, one_id, parse
from .cli_lifecycle import check_console, check_create_opts, create_container, destroy_quietly, read_config

TYPE_CHECKING = False  # `typing` costs ~5 ms at import; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any

    from .api import Runtime
    from .cli_args import Options


def cmd_run(g: Options, argv: list[str]) -> int:
    o, args = parse(argv, _RUN, False)
    cid = one_id(args, "run")
    check_create_opts(o)
    bundle = os.path.abspath(o.get("bundle") or ".")
    spec = read_config(bundle)
    detach = bool(o.get("detach"))
    cs = os.path.abspath(o["console_socket"]) if o.get("console_socket") else None
    check_console(spec, cs, detached=detach)
    terminal = bool(spec["process"].get("terminal"))
    if detach:
        rt, _pid = create_container(g, o, cid, cs)
        _start_or_destroy(rt, cid)
        return 0

    from ..kernel.syscalls import set_child_subreaper

    # create forks the init from a child that exits: be the subreaper it is reparented to,
    # so that we can wait for it (must happen before the fork).
    set_child_subreaper()
    forwarder = _Forwarder(resize_master=terminal and cs is None)  # signals during create wait
    console = None
    if terminal and cs is None:
        console = _ConsoleListener()
        cs = console.path
    try:
        rt, pid = create_container(g, o, cid, cs)
    except BaseException:
        if console is not None:
            console.close()
        raise
    try:
        master = console.receive() if console is not None else None
        _start_or_destroy(rt, cid)
        forwarder.attach(pid, master)
        if master is not None:
            status = _proxy_console(master, pid)
        else:
            status = _reap_until(pid)  # type: ignore[assignment]
    finally:
        if console is not None:
            console.close()
        if not o.get("keep"):
            destroy_quietly(rt, cid)
    assert status is not None
    return status


def _start_or_destroy(rt: Runtime, cid: str) -> None:
    try:
        rt.start(cid)
    except BaseException:
        destroy_quietly(rt, cid)
        raise


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap_until(pid: int, block: bool = True) -> int | None:
    """Reap children (we are a subreaper: strays come to us too) until `pid` is reaped."""
    while True:
        try:
            got, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            raise RuntimeError(f"container init {pid} is not our child") from None
        if got == pid:
            return _exit_code(status)
        if got == 0:
            return None


class _Forwarder:
    """`run` in the foreground: every signal we get goes to the container's init (as runc
    does); those that arrive before the init exists are held and sent once it does. With
    our own pty, SIGWINCH resizes it instead."""

    def __init__(self, resize_master: bool) -> None:
        import signal

        self.owner = os.getpid()
        self.pid: int | None = None
        self.master: int | None = None
        self.pending: list[int] = []
        skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGURG, signal.SIGPIPE}
        if resize_master:
            skip.add(signal.SIGWINCH)
            signal.signal(signal.SIGWINCH, self._resize)
        for s in range(1, signal.NSIG):
            if s in skip:
                continue
            try:
                signal.signal(s, self._forward)
            except (OSError, ValueError):
                pass

    def attach(self, pid: int, master: int | None) -> None:
        self.pid, self.master = pid, master
        pending, self.pending = self.pending, []
        for sig in pending:
            self._forward(sig, None)
        if master is not None:
            self._resize()

    def _forward(self, sig: int, _frame: Any) -> None:
        if os.getpid() != self.owner:
            # in a process forked by create (the init before its exec): act as if unhandled
            import signal

            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return
        if self.pid is None:
            self.pending.append(sig)
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _resize(self, _sig: int = 0, _frame: Any = None) -> None:
        if self.master is None:
            return
        import fcntl
        import termios

        try:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass


class _ConsoleListener:
    """`run` with a terminal and no --console-socket: receive the pty master ourselves."""

    def __init__(self) -> None:
        import socket
        import tempfile

        self._dir = tempfile.mkdtemp(prefix="dockyard-runtime-console-")
        self.path = os.path.join(self._dir, "console.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(1)

    def receive(self) -> int:
        import socket

        conn, _ = self._sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise RuntimeError("the container's init sent no console")
        return fds[0]

    def close(self) -> None:
        import shutil

        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _proxy_console(master: int, pid: int) -> int:
    """Copy our stdin to the pty and the pty to our stdout until the init exits."""
    import select
    import signal
    import termios
    import tty

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    signal.set_wakeup_fd(wake_w)
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    os.set_blocking(master, False)  # never block on the pty while the container blocks on us
    to_master = bytearray()
    stdin_open = True
    code: int | None = None
    try:
        while True:
            if code is None:
                code = _reap_until(pid, block=False)
            rlist = [master, wake_r] + ([0] if stdin_open and len(to_master) < 65536 else [])
            wlist = [master] if to_master else []
            try:
                ready, writable, _ = select.select(rlist, wlist, [], 0.5 if code is None else 0.05)
            except InterruptedError:
                continue
            if not ready and not writable and code is not None:
                break  # the init is gone and the pty is quiet
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    to_master += data
                else:
                    stdin_open = False
            if master in writable:
                try:
                    del to_master[:os.write(master, to_master)]
                except BlockingIOError:
                    pass
                except OSError:
                    to_master.clear()
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every slave closed, the container is gone
                    data = b""
                if not data:
                    if code is None:
                        code = _reap_until(pid)
                    break
                os.write(1, data)
    finally:
        signal.set_wakeup_fd(-1)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
        os.close(wake_r)
        os.close(wake_w)
    assert code is not None
    return code
