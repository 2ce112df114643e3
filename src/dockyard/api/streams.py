"""Hijacked streams: pumping a client connection to a shim (attach, exec), attaches that wait
for their container to start, start/exit notifications for `wait`, and pipe producers.

The docker CLI attaches before it starts a container (so no output is lost): such an attach
registers here and the start handler connects it to the new shim at the moment the
container's init waits at its exec fifo, exactly as the CLI's foreground `run` does.
"""

from __future__ import annotations

import os
import select
import socket
import threading

from .._record import dataclass, field
from ..engine import stream as shimproto
from .shapes import frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterator

# ---- start notifications (wait, pending attaches) ------------------------------------------

_changed = threading.Condition()
_generation = 0


def notify() -> None:
    """A container started or exited through this server: wake the waiters."""
    global _generation
    with _changed:
        _generation += 1
        _changed.notify_all()


def wait_change(timeout: float) -> None:
    with _changed:
        gen = _generation
        _changed.wait_for(lambda: _generation != gen, timeout)


_exits: dict[str, int] = {}


def record_exit(cid: str, code: int) -> None:
    """An attach stream saw the container's exit frame (kept for a `wait` that finds the
    container already removed by --rm)."""
    with _changed:
        _exits[cid] = code
        if len(_exits) > 1000:
            _exits.pop(next(iter(_exits)))
    notify()


def exit_seen(cid: str) -> int | None:
    with _changed:
        return _exits.get(cid)


@dataclass
class PendingAttach:
    stdin: bool
    stdout: bool
    stderr: bool
    stdin_once: bool
    ready: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None
    failed: str = ""
    #: set by `withdraw`; the start then connects it no more (under `lock`)
    withdrawn: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_pending_lock = threading.Lock()
_pending: dict[str, list[PendingAttach]] = {}


def register(cid: str, p: PendingAttach) -> None:
    with _pending_lock:
        _pending.setdefault(cid, []).append(p)


def unregister(cid: str, p: PendingAttach) -> None:
    with _pending_lock:
        lst = _pending.get(cid, [])
        if p in lst:
            lst.remove(p)
        if not lst:
            _pending.pop(cid, None)


def withdraw(cid: str, p: PendingAttach) -> None:
    """The client of a registered attach is gone (or never got its 101): forget it, and close
    its shim connection should a start have made one (nobody would read it)."""
    unregister(cid, p)
    with p.lock:
        p.withdrawn = True
        sock, p.sock = p.sock, None
    close_quietly(sock)


def connect_pending(cid: str) -> Callable[[str], None]:
    """A `before_start` for lifecycle.start: connect every waiting attach to the new shim."""

    def connect(run_dir: str) -> None:
        with _pending_lock:
            waiting = _pending.pop(cid, [])
        for p in waiting:
            with p.lock:
                if p.withdrawn:
                    continue
                try:
                    p.sock = shimproto.connect(run_dir, p.stdin, p.stdout, p.stderr, stdin_once=p.stdin_once)
                except OSError as e:
                    p.failed = f"attach: {e}"
                p.ready.set()
    return connect


def fail_pending(cid: str, message: str) -> None:
    with _pending_lock:
        waiting = _pending.pop(cid, [])
    for p in waiting:
        p.failed = message
        p.ready.set()


# ---- pumping a hijacked connection ------------------------------------------------------------

@dataclass(frozen=True)
class PumpResult:
    exit_code: int | None  # None: the shim went away without one, or the client left
    detached: bool = False


def pump(client: socket.socket, pending: BinaryIO, shim: socket.socket, *, tty: bool, stdin: bool,
         detach_keys: bytes = b"", close_stdin: bool = True) -> PumpResult:
    """Client bytes → the shim's stdin frames (with Docker's detach sequence, which callers
    pass for a TTY only, as Docker reads it only there); shim output →
    the client, raw for a TTY or in Docker's multiplexed frames. Ends at the exit frame.
    When the client closes its side, the process's stdin is closed if `close_stdin` and not
    a TTY (Docker's StdinOnce and exec rule); output keeps flowing either way."""
    buf = b""
    matcher = shimproto.DetachMatcher(detach_keys or b"\x10\x11")
    early = pending.read()
    client_open = True
    while True:
        fds = [shim] + ([client] if client_open else [])
        if early:
            r = [client]
        else:
            r, _, _ = select.select(fds, [], [])
        if client in r and client_open:
            if early:
                data, early = early, b""
            else:
                try:
                    data = client.recv(65536)
                except (ConnectionError, OSError):
                    data = b""
            if not data:
                # the docker CLI half-closes after its input (even with no stdin attached):
                # output keeps flowing to it
                client_open = False
                if stdin and close_stdin and not tty:
                    try:
                        shim.sendall(shimproto.frame(shimproto.CLOSE_STDIN, b""))
                    except OSError:
                        pass
            elif stdin:
                if detach_keys:
                    data, detached = matcher.feed(data)
                    if detached:
                        return PumpResult(None, detached=True)
                if data:
                    shim.sendall(shimproto.frame(shimproto.STDIN, data))
        if shim in r:
            try:
                chunk = shim.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return PumpResult(None)
            frames, buf = shimproto.split_frames(buf + chunk)
            out = bytearray()
            for kind, payload in frames:
                if kind in (shimproto.STDOUT, shimproto.STDERR):
                    out += payload if tty else frame(kind, payload)
                elif kind == shimproto.EXIT:
                    if out:
                        client.sendall(bytes(out))
                    return PumpResult(int(payload))
            if out:
                client.sendall(bytes(out))


def wait_ready(p: PendingAttach, client: socket.socket) -> bool:
    """Block until the container started (True) or the client hung up (False)."""
    while not p.ready.wait(0.2):
        if not p.stdin and _hung_up(client):
            return False
    return p.sock is not None


def _hung_up(sock: socket.socket) -> bool:
    try:
        r, _, _ = select.select([sock], [], [], 0)
        return bool(r) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def close_quietly(*socks: socket.socket | None) -> None:
    for s in socks:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


# ---- producers: a function writing to a file becomes a chunk iterator -----------------------

def produced(write: Callable[[BinaryIO], object], chunk: int = 1 << 16) -> Iterator[bytes]:
    """Run `write(fileobj)` in a thread; yield what it writes. Its error is raised here."""
    r, w = os.pipe()
    err: list[BaseException] = []

    def run() -> None:
        try:
            with os.fdopen(w, "wb") as out:
                write(out)
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: B902 - re-raised in the reader
            err.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        with os.fdopen(r, "rb") as src:
            while True:
                data = src.read1(chunk)  # type: ignore[attr-defined]
                if not data:
                    break
                yield data
    finally:
        t.join(timeout=30)
    if err:
        raise err[0]
