"""The websocket side of `GET /containers/{id}/attach/ws` (RFC 6455, the little of it Docker's
attach uses): the handshake answer, server frames out, client frames in, and the pump between a
websocket client and a container's shim. Output goes out raw (never multiplexed), as Docker's."""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import struct

from .._record import dataclass
from ..engine import stream as shimproto

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def encode(payload: bytes, opcode: int = BINARY) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes


def decode(buf: bytes) -> tuple[list[Frame], bytes]:
    """Complete (unmasked) frames at the front of `buf`, and the rest."""
    frames = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n = struct.unpack(">H", buf[2:4])[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                break
            n = struct.unpack(">Q", buf[2:10])[0]
            pos = 10
        mask = b""
        if b1 & 0x80:
            if len(buf) < pos + 4:
                break
            mask = buf[pos:pos + 4]
            pos += 4
        if len(buf) < pos + n:
            break
        data = buf[pos:pos + n]
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        frames.append(Frame(b0 & 0x0F, data))
        buf = buf[pos + n:]
    return frames, buf


def pump(client: socket.socket, pending: BinaryIO, shim: socket.socket, *, stdin: bool,
         opcode: int = BINARY) -> int | None:
    """Websocket frames from the client → the shim's stdin; shim output → frames. Returns the
    exit code (None when either side went away first)."""
    inbuf = pending.read()
    shimbuf = b""
    while True:
        frames, inbuf = decode(inbuf)
        for f in frames:
            if f.opcode == CLOSE:
                try:
                    client.sendall(encode(f.payload[:2], CLOSE))
                except OSError:
                    pass
                return None
            if f.opcode == PING:
                client.sendall(encode(f.payload, PONG))
            elif f.opcode in (TEXT, BINARY, 0) and stdin and f.payload:
                shim.sendall(shimproto.frame(shimproto.STDIN, f.payload))
        r, _, _ = select.select([client, shim], [], [])
        if client in r:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                return None
            inbuf += data
        if shim in r:
            try:
                chunk = shim.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return None
            got, shimbuf = shimproto.split_frames(shimbuf + chunk)
            for kind, payload in got:
                if kind in (shimproto.STDOUT, shimproto.STDERR) and payload:
                    client.sendall(encode(payload, opcode))
                elif kind == shimproto.EXIT:
                    try:
                        client.sendall(encode(struct.pack(">H", 1000), CLOSE))
                    except OSError:
                        pass
                    return int(payload)
