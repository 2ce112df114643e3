"""Container streams: logs, attach (hijacked), resize, archive (GET/HEAD/PUT), export, stats."""

from __future__ import annotations

import base64
import json
import socket
import stat
import time

from ..engine import files, lifecycle, logs
from ..engine import stats as cstats
from ..engine import stream as shimproto
from ..errors import Conflict
from . import shapes, streams
from .containers import container
from .router import Empty, HTTPError, Hijack, Json, Raw, Request, Response, Stream, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"


# ---- logs -------------------------------------------------------------------------------------

@route("GET", "/containers/{id}/logs")
def get_logs(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    want_out, want_err = req.qbool("stdout"), req.qbool("stderr")
    if not (want_out or want_err):
        raise HTTPError(400, "Bad parameters: you must choose at least one stream")
    tail_s = req.q("tail") or "all"
    try:
        tail = None if tail_s == "all" else int(tail_s)
    except ValueError:
        tail = None  # Docker: an invalid tail means all
    since = logs.parse_time(req.q("since")) if req.q("since") not in (None, "", "0") else None
    until = logs.parse_time(req.q("until")) if req.q("until") not in (None, "", "0") else None
    follow, stamps = req.qbool("follow"), req.qbool("timestamps")
    tty = bool(c.config.get("Tty"))

    def gen() -> Iterator[bytes]:
        for e in logs.read(engine, c, follow, tail, since, until):
            is_err = e.stream == "stderr"
            if (is_err and not want_err) or (not is_err and not want_out):
                continue
            data = (e.time.encode() + b" " + e.data) if stamps else e.data
            yield data if tty else shapes.frame(2 if is_err else 1, data)

    return Stream(gen(), RAW if tty else MUX)


# ---- attach -------------------------------------------------------------------------------------

@route("POST", "/containers/{id}/attach")
def attach(req: Request) -> Response:
    engine = req.engine
    c = lifecycle.refresh(engine, container(req))
    if c.state.get("Paused"):
        raise Conflict("You cannot attach to a paused container, unpause it first")
    want_in = req.qbool("stdin") and bool(c.config.get("OpenStdin"))
    want_out, want_err = req.qbool("stdout"), req.qbool("stderr")
    keys = shimproto.parse_detach_keys(req.q("detachKeys") or "ctrl-p,ctrl-q")
    tty = bool(c.config.get("Tty"))
    replay, live = req.qbool("logs"), req.qbool("stream")
    stdin_once = bool(c.config.get("StdinOnce")) and want_in

    p = streams.PendingAttach(want_in, want_out, want_err, stdin_once)
    # The docker CLI starts the container as soon as it has the 101: an attach to a container
    # that is not running registers before the 101 goes out, or the start could miss it
    early = live and not c.running
    if early:
        streams.register(c.id, p)

    def run(client: socket.socket, pending: BinaryIO) -> None:
        if replay:
            for e in logs.read(engine, c):
                is_err = e.stream == "stderr"
                if (is_err and want_err) or (not is_err and want_out):
                    client.sendall(e.data if tty else shapes.frame(2 if is_err else 1, e.data))
        if not live:
            return
        shim = _shim(engine, c, client, p, registered=early)
        if shim is None:
            return
        try:
            got = streams.pump(client, pending, shim, tty=tty, stdin=want_in,
                               detach_keys=keys if want_in and tty else b"", close_stdin=stdin_once)
            if got.exit_code is not None:
                streams.record_exit(c.id, got.exit_code)
        finally:
            streams.close_quietly(shim)

    return Hijack(run, RAW if tty else MUX, abort=(lambda: streams.withdraw(c.id, p)) if early else None)


def _shim(engine: Any, c: Any, client: socket.socket, p: streams.PendingAttach,
          registered: bool = False) -> socket.socket | None:
    """A connection to the container's shim: now if it runs, else when it next starts (or
    None if the client hung up or the start failed). `registered`: `p` waits for a start
    already (registered before the response went out)."""
    if not registered:
        cur = lifecycle.refresh(engine, engine.containers.load(c.id))
        if cur.running:
            try:
                return shimproto.connect(lifecycle.run_dir(engine, c.id), p.stdin, p.stdout, p.stderr,
                                         stdin_once=p.stdin_once)
            except OSError:
                pass  # it exited just now: wait for the next start
        streams.register(c.id, p)
    if not streams.wait_ready(p, client):
        streams.withdraw(c.id, p)
        return None
    streams.unregister(c.id, p)
    return p.sock


@route("GET", "/containers/{id}/attach/ws")
def attach_ws(req: Request) -> Response:
    from . import websocket

    engine = req.engine
    c = lifecycle.refresh(engine, container(req))
    key = req.headers.get("sec-websocket-key")
    if req.headers.get("upgrade", "").lower() != "websocket" or not key:
        raise HTTPError(400, "websocket upgrade required (Upgrade: websocket, Sec-WebSocket-Key)")
    want_in = req.qbool("stdin") and bool(c.config.get("OpenStdin"))
    want_out, want_err = req.qbool("stdout"), req.qbool("stderr")
    replay, live = req.qbool("logs"), req.qbool("stream")
    opcode = websocket.BINARY if tuple(int(x) for x in req.api_version.split(".")) >= (1, 42) else websocket.TEXT
    p = streams.PendingAttach(want_in, want_out, want_err, bool(c.config.get("StdinOnce")) and want_in)
    early = live and not c.running  # registered before the 101, as `attach`
    if early:
        streams.register(c.id, p)

    def run(client: socket.socket, pending: BinaryIO) -> None:
        if replay:
            for e in logs.read(engine, c):
                if (e.stream == "stderr" and want_err) or (e.stream != "stderr" and want_out):
                    client.sendall(websocket.encode(e.data, opcode))
        if not live:
            return
        shim = _shim(engine, c, client, p, registered=early)
        if shim is None:
            return
        try:
            code = websocket.pump(client, pending, shim, stdin=want_in, opcode=opcode)
            if code is not None:
                streams.record_exit(c.id, code)
        finally:
            streams.close_quietly(shim)

    return Hijack(run, "", status=101, reason="Switching Protocols",
                  headers=(("Upgrade", "websocket"), ("Connection", "Upgrade"),
                           ("Sec-WebSocket-Accept", websocket.accept_key(key))),
                  abort=(lambda: streams.withdraw(c.id, p)) if early else None)


@route("POST", "/containers/{id}/resize")
def resize(req: Request) -> Response:
    engine = req.engine
    c = lifecycle.refresh(engine, container(req))
    h, w = req.qint("h", 0) or 0, req.qint("w", 0) or 0
    if not c.running:
        raise Conflict(f"Container {c.id} is not running")
    _resize(lifecycle.run_dir(engine, c.id), h, w)
    return Raw(b"", "text/plain; charset=utf-8")


def _resize(run_dir: str, h: int, w: int) -> None:
    try:
        s = shimproto.connect(run_dir, False, False, False)
    except OSError as e:
        raise Conflict(f"cannot resize: the process is not running ({e.strerror})") from None
    try:
        shimproto.resize(s, h, w)
    finally:
        s.close()


# ---- archive -----------------------------------------------------------------------------------

#: Go's os.FileMode bits, which the docker CLI decodes from the path stat header
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    out = mode & 0o777
    if stat.S_ISDIR(mode):
        out |= _GO_DIR
    elif stat.S_ISLNK(mode):
        out |= _GO_SYMLINK
    elif stat.S_ISFIFO(mode):
        out |= _GO_PIPE
    elif stat.S_ISSOCK(mode):
        out |= _GO_SOCKET
    elif stat.S_ISBLK(mode):
        out |= _GO_DEVICE
    elif stat.S_ISCHR(mode):
        out |= _GO_DEVICE | _GO_CHARDEV
    if mode & stat.S_ISUID:
        out |= _GO_SETUID
    if mode & stat.S_ISGID:
        out |= _GO_SETGID
    if mode & stat.S_ISVTX:
        out |= _GO_STICKY
    return out


def _stat_header(st: files.PathStat) -> tuple[str, str]:
    mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.mtime)) + f".{int(st.mtime % 1 * 1e9):09d}Z"
    doc = {"name": st.name, "size": st.size, "mode": go_file_mode(st.mode), "mtime": mtime,
           "linkTarget": st.link_target}
    return "X-Docker-Container-Path-Stat", base64.b64encode(json.dumps(doc).encode()).decode()


def _path(req: Request) -> str:
    path = req.q("path")
    if not path:
        raise HTTPError(400, "Bad parameters: path cannot be empty")
    return path


@route("HEAD", "/containers/{id}/archive")
def archive_head(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    with files.container_fs(engine, c, req.params["id"]) as fs:
        st = fs.stat(_path(req))
    return Raw(b"", "application/json", headers=(_stat_header(st),))


@route("GET", "/containers/{id}/archive")
def archive_get(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    path = _path(req)
    with files.container_fs(engine, c, req.params["id"]) as fs:
        st = fs.stat(path)

    def write(out: BinaryIO) -> None:
        with files.container_fs(engine, c, req.params["id"]) as fs2:
            fs2.archive(path, out)

    return Stream(streams.produced(write), "application/x-tar", headers=(_stat_header(st),))


@route("PUT", "/containers/{id}/archive", stream_body=True)
def archive_put(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    path = _path(req)
    assert req.rfile is not None
    with files.container_fs(engine, c, req.params["id"]) as fs:
        fs.extract(path, req.rfile, copy_uid_gid=req.qbool("copyUIDGID"))
    return Empty(200)


@route("GET", "/containers/{id}/export")
def export(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    return Stream(streams.produced(lambda out: files.export(engine, c, out)), "application/x-tar")


# ---- stats ---------------------------------------------------------------------------------------

def _with_pre(cur: dict[str, Any], pre: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(cur)
    if pre is None:
        out["preread"] = "0001-01-01T00:00:00Z"
        out["precpu_stats"] = cstats.empty_cpu()
    else:
        out["preread"] = pre["read"]
        out["precpu_stats"] = pre["cpu_stats"]
    return out


@route("GET", "/containers/{id}/stats")
def stats(req: Request) -> Response:
    engine = req.engine
    c = lifecycle.refresh(engine, container(req))
    stream_ = req.qbool("stream", True)
    one_shot = req.qbool("one-shot")
    if not stream_:
        if one_shot or not c.running:
            return Json(_with_pre(cstats.sample(c), None))
        pre = cstats.sample(c)
        time.sleep(0.5)
        return Json(_with_pre(cstats.sample(c), pre))

    def gen() -> Iterator[bytes]:
        pre = None
        while True:
            cur_c = lifecycle.refresh(engine, engine.containers.load(c.id))
            cur = cstats.sample(cur_c)
            yield json.dumps(_with_pre(cur, pre)).encode() + b"\n"
            if not cur_c.running:
                return
            pre = cur
            for _ in range(10):
                time.sleep(0.1)
                yield b""

    return Stream(gen(), "application/json")

