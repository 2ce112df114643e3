"""Attaching a terminal or pipes to a container: `run` (foreground), `start -a`, `attach`."""

from __future__ import annotations

import os
import _signal as signal  # the C core: `signal` builds IntEnums (importing enum) at import
import sys

from .._lean import contextmanager, suppress
from ..engine import lifecycle, stream
from ..engine.core import Engine
from ..engine.records import Container
from ..errors import Conflict
from .args import Parser, engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator


@contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    import termios
    import tty

    if not os.isatty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    try:
        # TCSANOW, not setraw's default TCSAFLUSH: keystrokes typed before we got here
        # belong to the container and must not be thrown away
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _winsize(fd: int) -> tuple[int, int] | None:
    import fcntl
    import struct
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return None


def session(run_dir: str, c: Container, detach_keys: str | None, want_stdin: bool,
            cleanup: bool = False, streams: tuple[bool, bool] | None = None) -> tuple[object, object]:
    """Connect to the shim; returns (socket, pump function). `streams` = (stdout, stderr)
    to attach; by default the container's AttachStdout/AttachStderr (what `run` asked for)."""
    cfg = c.config
    tty = bool(cfg.get("Tty"))
    out, err = streams if streams is not None else (bool(cfg.get("AttachStdout", True)),
                                                    bool(cfg.get("AttachStderr", True)))
    sock = stream.connect(run_dir, stdin=want_stdin, stdout=out, stderr=err,
                          stdin_once=bool(cfg.get("StdinOnce")) and want_stdin, cleanup=cleanup)
    keys = stream.parse_detach_keys(detach_keys or "ctrl-p,ctrl-q")

    def pump() -> int | None:
        stdin_fd = sys.stdin.fileno() if want_stdin else None
        if tty:
            ws = _winsize(sys.stdout.fileno()) or _winsize(0)
            if ws:
                stream.resize(sock, *ws)
            def on_winch(*_a: object) -> None:
                w = _winsize(sys.stdout.fileno()) or _winsize(0)
                if w:
                    stream.resize(sock, *w)
            signal.signal(signal.SIGWINCH, on_winch)
            with raw_terminal(stdin_fd if stdin_fd is not None else 0):
                return stream.pump(sock, stdin_fd, sys.stdout.buffer, sys.stderr.buffer, keys, tty=True)
        return stream.pump(sock, stdin_fd, sys.stdout.buffer, sys.stderr.buffer, keys, tty=False)
    return sock, pump


def attach_and_start(eng: Engine, c: Container, detach_keys: str | None, sig_proxy: bool = True) -> int:
    holder: dict[str, object] = {}
    want_stdin = bool(c.config.get("AttachStdin"))

    def before_start(run_dir: str) -> None:
        holder["sock"], holder["pump"] = session(run_dir, c, detach_keys, want_stdin, cleanup=True)

    size = (_winsize(sys.stdout.fileno()) or _winsize(0)) if c.config.get("Tty") else None
    try:
        c = lifecycle.start(eng, c, before_start=before_start, console_size=size)
    except BaseException:
        if c.host_config.get("AutoRemove"):
            with suppress(Exception):
                lifecycle.remove(eng, eng.containers.load(c.id), force=True)
        raise
    return _finish(eng, c, holder, sig_proxy)


#: signals the CLI passes on to the container (Docker's --sig-proxy), not those about itself
_NOT_PROXIED = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGPIPE, signal.SIGURG, signal.SIGKILL,
                signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}


def _proxy_signals(eng: Engine, c: Container) -> None:
    runtime = eng.runtime_for(c)

    def forward(sig: int, _frame: object) -> None:
        try:
            runtime.kill(c.id, sig)
        except Exception:
            pass  # the container is gone already: its exit frame is on the way

    for sig in signal.valid_signals():
        if sig not in _NOT_PROXIED and sig < signal.SIGRTMIN:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass


def _finish(eng: Engine, c: Container, holder: dict[str, object], sig_proxy: bool = True) -> int:
    pump = holder["pump"]
    if sig_proxy and not c.config.get("Tty"):
        _proxy_signals(eng, c)  # with a tty, Ctrl-C and friends travel as bytes instead
    try:
        code = pump()  # type: ignore[operator]
    except stream.Detached:
        print(f"\r\nread escape sequence", file=sys.stderr)
        return 0
    final = lifecycle.wait_exit(eng, c, exited=code is not None)
    stream.cleaned(holder["sock"])  # type: ignore[arg-type]
    return code if code is not None else final


def cmd_attach(argv: list[str]) -> int:
    p = Parser("attach", usage="dockyard attach [OPTIONS] CONTAINER",
               description="Attach local standard input, output, and error streams to a running container")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", help="Proxy all received signals to the process")
    p.add_argument("container")
    ns = p.parse_args(argv)
    eng = engine()
    c = lifecycle.refresh(eng, eng.containers.resolve(ns.container))
    if not c.running:
        raise Conflict("You cannot attach to a stopped container, start it first")
    if c.state.get("Paused"):
        raise Conflict("You cannot attach to a paused container, unpause it first")
    want_stdin = bool(c.config.get("OpenStdin")) and not ns.no_stdin
    sock, pump = session(lifecycle.run_dir(eng, c.id), c, ns.detach_keys, want_stdin, streams=(True, True))
    return _finish(eng, c, {"sock": sock, "pump": pump}, sig_proxy=ns.sig_proxy.lower() not in ("false", "0"))
