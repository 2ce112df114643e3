"""Sockets for the start path on `_socket`, the C module under the stdlib's `socket`.

`import socket` costs every `dockyard run` about 2 ms: it imports `selectors` and turns the
module's constants into four IntEnums. The engine's start path needs only plain sockets, a
socketpair and descriptor passing (SCM_RIGHTS), which `_socket` has; the objects are
`_socket.socket`, which lacks only the conveniences (`accept`, `makefile`, `with`) that this
path does not use.
"""

from __future__ import annotations

import struct
from _socket import (AF_INET, AF_UNIX, CMSG_LEN, SCM_RIGHTS, SOCK_DGRAM, SOCK_SEQPACKET,
                     SOCK_STREAM, SOL_SOCKET, sethostname, socket, socketpair)

__all__ = ["AF_INET", "AF_UNIX", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_STREAM", "recv_fds", "send_fds",
           "sethostname", "socket", "socketpair"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable


def send_fds(sock: Any, buffers: Iterable[bytes], fds: list[int], flags: int = 0) -> int:
    """`socket.send_fds`: the buffers, with `fds` passed along."""
    return int(sock.sendmsg(list(buffers), [(SOL_SOCKET, SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))], flags))


def recv_fds(sock: Any, bufsize: int, maxfds: int, flags: int = 0) -> tuple[bytes, list[int], int, Any]:
    """`socket.recv_fds`: (data, received fds, msg flags, address)."""
    msg, ancdata, mflags, addr = sock.recvmsg(bufsize, CMSG_LEN(maxfds * 4), flags)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            n = len(data) // 4
            fds.extend(struct.unpack(f"{n}i", data[:n * 4]))
    return msg, fds, mflags, addr
