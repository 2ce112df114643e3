"""Client side of the shim's attach protocol (see runtime/shim_loop.py): connect, pump, resize."""

from __future__ import annotations

import os
import select
import struct

from ..kernel import usock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

STDOUT, STDERR, EXIT = 1, 2, 3
STDIN, CLOSE_STDIN, RESIZE, CLEANED = 0, 4, 5, 6


class Detached(Exception):
    """The user typed the detach key sequence."""


class DetachMatcher:
    """Finds the detach key sequence in input that arrives in pieces (it may span reads);
    a partial match that breaks off is passed on as typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to forward, whether the whole sequence was typed)."""
        send = bytearray()
        for b in data:
            if b != self.keys[self.matched] and self.matched:
                send += self.keys[:self.matched]  # a prefix that broke off was typed
                self.matched = 0
            if b == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(send), True
                continue
            send.append(b)
        return bytes(send), False


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


def connect(run_dir: str, stdin: bool, stdout: bool, stderr: bool, stdin_once: bool = False,
            cleanup: bool = False) -> usock.socket:
    """Attach to a shim. With `cleanup`, this client promises to record the exit itself and
    then call `cleaned(sock)`, so the shim need not start its exit command."""
    s = usock.socket(usock.AF_UNIX, usock.SOCK_STREAM)
    s.connect(os.path.join(run_dir, "sock"))
    flags = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "stdin_once": stdin_once, "cleanup": cleanup}
    s.sendall(" ".join(f"{k}={int(v)}" for k, v in flags.items()).encode() + b"\n")
    return s


def cleaned(s: usock.socket) -> None:
    try:
        s.sendall(frame(CLEANED, b""))
    except OSError:
        pass
    s.close()


def resize(s: usock.socket, rows: int, cols: int) -> None:
    s.sendall(frame(RESIZE, f"{rows} {cols}".encode()))


def split_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Complete frames at the front of `buf`, and the incomplete rest."""
    frames = []
    while len(buf) >= 8:
        kind, length = struct.unpack(">BxxxI", buf[:8])
        if len(buf) < 8 + length:
            break
        frames.append((kind, buf[8:8 + length]))
        buf = buf[8 + length:]
    return frames, buf


def read_exit(s: usock.socket) -> int | None:
    """Read frames until the exit frame; its code, or None if the shim went away first."""
    buf = b""
    while True:
        data = s.recv(65536)
        if not data:
            return None
        frames, buf = split_frames(buf + data)
        for kind, payload in frames:
            if kind == EXIT:
                return int(payload)


def parse_detach_keys(spec: str) -> bytes:
    """Docker's --detach-keys syntax: 'ctrl-p,ctrl-q', 'a', 'ctrl-@'..."""
    out = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            ch = part[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch)
            out.append(code if code is not None else (ord(ch.lower()) - ord("a") + 1))
        elif len(part) == 1:
            out.append(ord(part))
        else:
            from ..errors import InvalidArgument

            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


def pump(s: usock.socket, stdin_fd: int | None, out: BinaryIO, err: BinaryIO,
         detach_keys: bytes = b"\x10\x11", tty: bool = False) -> int | None:
    """Copy stdin to the container and its output to out/err until it exits.
    Returns the exit code, or None if the connection closed without one.
    Raises Detached when the detach sequence is typed (only on a terminal)."""
    buf = b""
    matcher = DetachMatcher(detach_keys)
    fds: list[int] = [s.fileno()]
    if stdin_fd is not None:
        fds.append(stdin_fd)
    while True:
        r, _, _ = select.select(fds, [], [])
        if stdin_fd is not None and stdin_fd in r:
            data = os.read(stdin_fd, 65536)
            if not data:
                s.sendall(frame(CLOSE_STDIN, b""))
                fds.remove(stdin_fd)
                stdin_fd = None
            else:
                if tty and detach_keys:
                    data, detached = matcher.feed(data)
                    if detached:
                        raise Detached()
                if data:
                    s.sendall(frame(STDIN, data))
        if s.fileno() in r:
            chunk = s.recv(65536)
            if not chunk:
                return None
            frames, buf = split_frames(buf + chunk)
            for kind, payload in frames:
                if kind == STDOUT:
                    out.write(payload)
                    out.flush()
                elif kind == STDERR:
                    err.write(payload)
                    err.flush()
                elif kind == EXIT:
                    return int(payload)
