"""Exec endpoints: create an exec instance, start it (hijacked or detached), resize, inspect."""

from __future__ import annotations

import socket
import threading

from ..engine import execs
from ..engine import stream as shimproto
from ..errors import DockyardError, ExecFailed
from . import streams
from .shapes import frame
from .containers import container
from .router import HTTPError, Hijack, Json, Raw, Request, Response, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"


def _size(v: Any) -> tuple[int, int] | None:
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v) and v[0] and v[1]:
        return int(v[0]), int(v[1])
    return None


@route("POST", "/containers/{id}/exec")
def create(req: Request) -> Response:
    body = req.json_object()
    cmd = body.get("Cmd") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    if not isinstance(cmd, list) or not cmd:
        raise HTTPError(400, "No exec command specified")
    env = body.get("Env") or []
    opts = execs.ExecOptions(cmd=tuple(str(x) for x in cmd), tty=bool(body.get("Tty")),
                             interactive=bool(body.get("AttachStdin")), env=tuple(env),
                             workdir=body.get("WorkingDir") or "", user=body.get("User") or "",
                             privileged=bool(body.get("Privileged")), console_size=_size(body.get("ConsoleSize")))
    keys = body.get("DetachKeys") or ""
    if keys:
        shimproto.parse_detach_keys(keys)
    exec_id = execs.create(req.engine, container(req), opts, detach_keys=keys,
                           attach_stdout=bool(body.get("AttachStdout")), attach_stderr=bool(body.get("AttachStderr")))
    return Json({"Id": exec_id}, status=201)


@route("POST", "/exec/{id}/start")
def start(req: Request) -> Response:
    engine = req.engine
    body = req.json_object()
    exec_id = req.params["id"]
    rec = execs.startable(engine, exec_id)
    tty = bool(body["Tty"]) if "Tty" in body and body["Tty"] is not None else bool(rec["Options"]["tty"])
    size = _size(body.get("ConsoleSize"))
    if body.get("Detach"):
        session = execs.start(engine, exec_id, tty=tty, console_size=size)
        threading.Thread(target=execs.watch, args=(engine, exec_id, session), daemon=True).start()
        return Raw(b"", "application/json")
    want_in = bool(rec["Options"]["interactive"])
    keys = shimproto.parse_detach_keys(rec.get("DetachKeys") or "ctrl-p,ctrl-q") if want_in and tty else b""

    def run(client: socket.socket, pending: BinaryIO) -> None:
        # Started after the 101 went out, as Docker does: output never shares a packet with
        # the response headers (docker-py reads the stream from the raw socket, so bytes its
        # header parser buffered would be lost)
        holder: dict[str, socket.socket] = {}

        def before(run_dir: str) -> None:
            holder["shim"] = shimproto.connect(run_dir, want_in, True, True, stdin_once=want_in)

        try:
            execs.start(engine, exec_id, before_start=before, tty=tty, console_size=size)
        except ExecFailed as e:
            # Docker: the message goes to stdout; the exit code (126/127) is in the inspect
            msg = str(e).encode() + b"\r\n"
            client.sendall(msg if tty else frame(1, msg))
            return
        except DockyardError as e:
            msg = f"Error: {e}".encode() + b"\r\n"
            client.sendall(msg if tty else frame(2, msg))
            return
        shim = holder["shim"]
        try:
            got = streams.pump(client, pending, shim, tty=tty, stdin=want_in, detach_keys=keys)
        finally:
            streams.close_quietly(shim)
        if got.detached:
            session_watch(engine, exec_id)
        else:
            execs.finished(engine, exec_id, got.exit_code)

    return Hijack(run, RAW if tty else MUX)


def session_watch(engine: Any, exec_id: str) -> None:
    """After a detach: record the exit when it comes."""
    rd = execs.exec_dir(engine, exec_id)
    threading.Thread(target=execs.watch, args=(engine, exec_id, execs.ExecSession(exec_id, rd, 0)),
                     daemon=True).start()


@route("POST", "/exec/{id}/resize")
def resize(req: Request) -> Response:
    engine = req.engine
    exec_id = req.params["id"]
    h, w = req.qint("h", 0) or 0, req.qint("w", 0) or 0
    from .containers_io import _resize

    rec = execs.load(engine, exec_id)
    if not rec.get("Started") or (rec.get("Running") is False and rec.get("ExitCode") is None):
        return Raw(b"", "text/plain; charset=utf-8")  # not started yet: it starts at ConsoleSize
    _resize(execs.exec_dir(engine, exec_id), h, w)
    return Raw(b"", "text/plain; charset=utf-8")


@route("GET", "/exec/{id}/json")
def inspect(req: Request) -> Response:
    return Json(execs.inspect(req.engine, req.params["id"]))
