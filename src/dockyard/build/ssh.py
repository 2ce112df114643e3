"""SSH agent forwarding for ``RUN --mount=type=ssh`` (``build --ssh``), as BuildKit does it.

* ``--ssh default`` forwards the agent at ``$SSH_AUTH_SOCK``; ``--ssh ID=PATH[,PATH…]``
  forwards the agent socket PATH, or, when the PATHs are key files, a private
  ``ssh-agent`` started for this build with those keys loaded (stopped at the end).
* In a step, each ssh mount is a socket at its target (default
  ``/run/buildkit/ssh_agent.N``) with the mount's mode (0600) and owner (0:0): a proxy
  socket on the run root, bind-mounted in, whose connections this process relays to the
  agent while the step runs. The first ssh mount's target becomes ``SSH_AUTH_SOCK`` unless
  the step's environment sets it. Neither the socket nor any key reaches the image or the
  cache key.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time

from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator


def parse_ssh_flag(value: str) -> tuple[str, list[str]]:
    """``default`` or ``ID[=PATH[,PATH…]]`` -> (id, paths); an empty list means
    ``$SSH_AUTH_SOCK``."""
    sid, sep, rest = value.partition("=")
    if not sid:
        raise InvalidArgument(f"invalid --ssh {value!r}: expected default|<id>[=<socket>|<key>[,<key>]]")
    paths = [p for p in rest.split(",") if p] if sep else []
    if sep and not paths:
        raise InvalidArgument(f"invalid --ssh {value!r}: no path after '='")
    return sid, paths


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def agents(specs: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    """The agent socket for each --ssh id, valid inside the block."""
    out: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for sid, paths in specs.items():
            if not paths:
                sock = os.environ.get("SSH_AUTH_SOCK", "")
                if not sock:
                    raise InvalidArgument(f"--ssh {sid}: SSH_AUTH_SOCK is not set (start an ssh-agent, "
                                          f"or give --ssh {sid}=<socket or key file>)")
                paths = [sock]
            if len(paths) == 1 and _is_socket(paths[0]):
                out[sid] = paths[0]
                continue
            for p in paths:
                if not os.path.isfile(p):
                    raise InvalidArgument(f"--ssh {sid}: {p} is neither an agent socket nor a key file")
            out[sid] = stack.enter_context(_private_agent(sid, paths))
        yield out


@contextlib.contextmanager
def _private_agent(sid: str, keys: list[str]) -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="dockyard-ssh-")
    sock = os.path.join(tmp, "agent.sock")
    try:
        proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        os.rmdir(tmp)
        raise InvalidArgument(f"--ssh {sid}: key files need ssh-agent, which is not installed") from None
    try:
        for _ in range(400):
            if _is_socket(sock) or proc.poll() is not None:
                break
            time.sleep(0.005)
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        p = subprocess.run(["ssh-add", "-q", *keys], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise InvalidArgument(f"--ssh {sid}: cannot load the keys: {(p.stderr or p.stdout).strip()}")
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)
        with contextlib.suppress(OSError):
            os.unlink(sock)
        with contextlib.suppress(OSError):
            os.rmdir(tmp)


def _relay(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, agent: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(agent)
        except OSError:
            conn.close()
            continue

        def pump(c: socket.socket = conn, u: socket.socket = up) -> None:
            t = threading.Thread(target=_relay, args=(u, c), daemon=True)
            t.start()
            _relay(c, u)
            t.join()
            c.close()
            u.close()

        threading.Thread(target=pump, daemon=True).start()


@contextlib.contextmanager
def proxy(agent: str, base: str, uid: int, gid: int, mode: int) -> Iterator[str]:
    """A socket under `base` (owner `uid`:`gid`, `mode`) relaying to the agent at `agent`."""
    os.makedirs(base, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=base)
    path = os.path.join(tmp, "agent.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stop = threading.Event()
    try:
        listener.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        listener.listen(16)
        threading.Thread(target=_serve, args=(listener, agent, stop), daemon=True).start()
        yield path
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(tmp)
