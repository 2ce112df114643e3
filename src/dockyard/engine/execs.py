"""`exec`: run another process in a running container, through its own small shim."""

from __future__ import annotations

import os
import shutil

from .._record import dataclass
from .. import _util
from ..errors import Conflict, ExecFailed, InvalidArgument
from . import configs, lifecycle
from .core import Engine
from .records import Container
from .specgen import resolve_user

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class ExecOptions:
    cmd: tuple[str, ...]
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    privileged: bool = False
    console_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ExecSession:
    id: str
    run_dir: str
    pid: int


def exec_dir(engine: Engine, exec_id: str) -> str:
    return str(engine.paths.runroot / "x" / exec_id)


def create_and_start(engine: Engine, c: Container, opts: ExecOptions,
                     before_start: Callable[[str], None] | None = None, exec_id: str = "") -> ExecSession:
    """Run `opts.cmd` in `c` under its own shim in `exec_dir(engine, exec_id)` (a new ID
    unless given: an exec instance's own, so resize and watch find its shim by that ID)."""
    from ..runtime.api import ShimSpec

    c = lifecycle.refresh(engine, c)
    if not c.running:
        raise Conflict(f"container {c.id} is not running")
    if c.state.get("Paused"):
        raise Conflict(f"container {c.id} is paused, unpause the container before exec")
    if not opts.cmd:
        raise InvalidArgument("exec requires a command")
    spec = _util.read_json(os.path.join(lifecycle.run_dir(engine, c.id), "config.json"))
    proc: dict[str, Any] = dict(spec["process"])
    rootfs = spec["root"]["path"]
    home = None
    if opts.user:
        try:
            uid, gid, extra, home = resolve_user(rootfs, opts.user)
        except InvalidArgument as e:
            raise ExecFailed(str(e), 126) from None
        proc["user"] = {"uid": uid, "gid": gid, "additionalGids": extra}
    extra = [e if "=" in e else f"{e}={os.environ[e]}" for e in opts.env if "=" in e or e in os.environ]
    base_env = list(proc.get("env") or [])
    if home is not None:  # another user: their HOME, unless -e HOME says otherwise
        base_env = configs.merge_env(base_env, [f"HOME={home}"])
    env = configs.merge_env(base_env, extra)
    if opts.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    proc.update(args=list(opts.cmd), env=env, terminal=opts.tty, cwd=opts.workdir or proc.get("cwd") or "/")
    proc.pop("consoleSize", None)
    if opts.tty and opts.console_size:
        proc["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}
    if opts.workdir and not opts.workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{opts.workdir}' is invalid, it needs to be an absolute path")
    if opts.privileged:
        from ..kernel import caps

        host = caps.host_caps()
        proc["capabilities"] = {"bounding": host, "effective": host, "permitted": host}
    exec_id = exec_id or _util.new_id()
    rdir = exec_dir(engine, exec_id)
    os.makedirs(rdir, mode=0o700)
    shim = ShimSpec(run_dir=rdir, log_path="", log_max_size=0, log_max_files=1,
                    open_stdin=opts.interactive, stdin_once=opts.interactive, exit_cmd=(),
                    remove_run_dir=True)
    runtime = engine.runtime_for(c)
    pid = None
    try:
        pid = runtime.exec_create(c.id, exec_id, proc, shim)
        if before_start is not None:
            before_start(rdir)
        runtime.exec_start(c.id, exec_id, pid)
    except BaseException:
        runtime.exec_abort(c.id, exec_id, pid)
        shutil.rmtree(rdir, ignore_errors=True)
        raise
    return ExecSession(exec_id, rdir, pid)


# ---- exec instances (the Engine API's create-then-start model) ------------------------------
#
# `POST /containers/{id}/exec` makes a record; `POST /exec/{id}/start` (maybe from another
# connection) starts it; `GET /exec/{id}/json` reads it. Records live under
# `<runroot>/execs/<id>.json` (they die with a reboot, as Docker's do with the daemon) and go
# when their container is removed.

def _record_path(engine: Engine, exec_id: str) -> str:
    return str(engine.paths.runroot / "execs" / f"{exec_id}.json")


def create(engine: Engine, c: Container, opts: ExecOptions, detach_keys: str = "",
           attach_stdout: bool = True, attach_stderr: bool = True) -> str:
    """Validate and record an exec instance; returns its ID (nothing runs yet). The attach
    flags are only recorded (inspect's OpenStdout/OpenStderr): output is always streamed."""
    c = lifecycle.refresh(engine, c)
    if not c.running:
        raise Conflict(f"container {c.id} is not running")
    if c.state.get("Paused"):
        raise Conflict(f"container {c.id} is paused, unpause the container before exec")
    if not opts.cmd:
        raise InvalidArgument("No exec command specified")
    exec_id = _util.new_id()
    rec = {"ID": exec_id, "ContainerID": c.id, "Running": False, "ExitCode": None, "Pid": 0,
           "Started": False, "DetachKeys": detach_keys, "CreatedAt": _util.now_rfc3339(),
           "OpenStdout": attach_stdout, "OpenStderr": attach_stderr,
           "Options": {"cmd": list(opts.cmd), "tty": opts.tty, "interactive": opts.interactive,
                       "env": list(opts.env), "workdir": opts.workdir, "user": opts.user,
                       "privileged": opts.privileged,
                       "console_size": list(opts.console_size) if opts.console_size else None}}
    os.makedirs(os.path.dirname(_record_path(engine, exec_id)), mode=0o700, exist_ok=True)
    _util.write_json(_record_path(engine, exec_id), rec, 0o600, durable=False)
    from . import events

    events.container(engine, "exec_create: " + " ".join(opts.cmd), c, execID=exec_id)
    return exec_id


def load(engine: Engine, exec_id: str) -> dict[str, Any]:
    from ..errors import NotFound

    try:
        rec: dict[str, Any] = _util.read_json(_record_path(engine, exec_id))
    except (FileNotFoundError, ValueError):
        raise NotFound(f"No such exec instance: {exec_id}") from None
    return rec


def options(rec: dict[str, Any], *, tty: bool | None = None,
            console_size: tuple[int, int] | None = None) -> ExecOptions:
    o = rec["Options"]
    size = console_size or (tuple(o["console_size"]) if o.get("console_size") else None)
    return ExecOptions(cmd=tuple(o["cmd"]), tty=o["tty"] if tty is None else tty,
                       interactive=o["interactive"], env=tuple(o["env"]), workdir=o["workdir"],
                       user=o["user"], privileged=o["privileged"], console_size=size)  # type: ignore[arg-type]


def start(engine: Engine, exec_id: str, before_start: Callable[[str], None] | None = None,
          tty: bool | None = None, console_size: tuple[int, int] | None = None) -> ExecSession:
    """Start a recorded exec instance once (Conflict if it was started before)."""
    path = _record_path(engine, exec_id)
    with _util.locked(path + ".lock"):
        rec = load(engine, exec_id)
        if rec.get("Started"):
            raise Conflict(f"Exec command {exec_id} has already run")
        rec["Started"] = True
        _util.write_json(path, rec, 0o600, durable=False)
    c = engine.containers.load(rec["ContainerID"])
    opts = options(rec, tty=tty, console_size=console_size)
    try:
        session = create_and_start(engine, c, opts, before_start=before_start, exec_id=exec_id)
    except ExecFailed as e:
        finished(engine, exec_id, e.exit_code)
        raise
    except BaseException:
        finished(engine, exec_id, 126)
        raise
    _update(engine, exec_id, Running=True, Pid=session.pid)
    from . import events

    events.container(engine, "exec_start: " + " ".join(opts.cmd), c, execID=exec_id)
    return session


def _update(engine: Engine, exec_id: str, **fields: Any) -> None:
    path = _record_path(engine, exec_id)
    with _util.locked(path + ".lock"):
        try:
            rec = load(engine, exec_id)
        except Exception:
            return
        rec.update(fields)
        _util.write_json(path, rec, 0o600, durable=False)


def finished(engine: Engine, exec_id: str, exit_code: int | None) -> None:
    """Record the exit of an exec instance (its stream saw the exit frame, or a watcher did)."""
    _update(engine, exec_id, Running=False, ExitCode=exit_code)  # Pid stays, as Docker's inspect
    try:
        rec = load(engine, exec_id)
        from . import events

        events.container(engine, "exec_die", engine.containers.load(rec["ContainerID"]),
                         execID=exec_id, exitCode=exit_code)
    except Exception:
        pass


def watch(engine: Engine, exec_id: str, session: ExecSession) -> int | None:
    """Block until a started exec exits (asking its shim), record and return the code."""
    import socket as _socket

    from . import stream

    code: int | None = None
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.connect(os.path.join(session.run_dir, "sock"))
        s.sendall(b"stdout=0 stderr=0\n")
        code = stream.read_exit(s)
        s.close()
    except OSError:
        pass
    finished(engine, exec_id, code)
    return code


def inspect(engine: Engine, exec_id: str) -> dict[str, Any]:
    """Docker's exec inspect JSON."""
    rec = load(engine, exec_id)
    o = rec["Options"]
    running = bool(rec.get("Running"))
    if running and rec.get("Pid"):
        from ..runtime.spawn import alive

        if not alive(int(rec["Pid"])):
            running = False
    user = o.get("user") or ""
    return {"ID": rec["ID"], "Running": running, "ExitCode": rec.get("ExitCode"),
            "ProcessConfig": {"tty": o["tty"], "entrypoint": o["cmd"][0], "arguments": o["cmd"][1:],
                              "privileged": o["privileged"], **({"user": user} if user else {})},
            "OpenStdin": o["interactive"], "OpenStderr": bool(rec.get("OpenStderr", True)),
            "OpenStdout": bool(rec.get("OpenStdout", True)),
            "CanRemove": False, "ContainerID": rec["ContainerID"], "DetachKeys": rec.get("DetachKeys") or "",
            "Pid": int(rec.get("Pid") or 0)}


def ids_of(engine: Engine, container_id: str) -> list[str]:
    """Docker's ExecIDs of a container: its exec instances not finished yet (created, or
    started and still running), oldest first. Docker forgets an exec here when it exits (it
    stays inspectable by its ID); so does this."""
    found = []
    for n, rec in _records(engine):
        if rec.get("ContainerID") != container_id or rec.get("ExitCode") is not None:
            continue
        if rec.get("Started"):
            # running (its process still there); not the instant between start and run
            if not rec.get("Running") or not rec.get("Pid"):
                continue
            from ..runtime.spawn import alive

            if not alive(int(rec["Pid"])):
                continue  # exited while nobody watched
        found.append((str(rec.get("CreatedAt") or ""), str(rec.get("ID") or n[:-5])))
    return [eid for _, eid in sorted(found)]


def _records(engine: Engine) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, record) of every readable exec record."""
    d = engine.paths.runroot / "execs"
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for n in names:
        if not n.endswith(".json"):
            continue
        try:
            yield n, _util.read_json(d / n)
        except (OSError, ValueError):
            continue


def prune_records(engine: Engine, container_id: str | None = None) -> None:
    """Drop the records of a removed container (or of every container that is gone)."""
    d = engine.paths.runroot / "execs"
    for n, rec in _records(engine):
        cid = rec.get("ContainerID")
        if (container_id is not None and cid == container_id) or \
                (container_id is None and not engine.containers.path(cid).exists()):
            for suffix in ("", ".lock"):
                try:
                    os.unlink(str(d / n) + suffix)
                except FileNotFoundError:
                    pass


def startable(engine: Engine, exec_id: str) -> dict[str, Any]:
    """The exec's record if it can start now: not started before, its container running and
    not paused (NotFound / Conflict otherwise). `start` checks again, under the lock."""
    rec = load(engine, exec_id)
    if rec.get("Started"):
        raise Conflict(f"Exec command {exec_id} has already run")
    c = lifecycle.refresh(engine, engine.containers.load(rec["ContainerID"]))
    if not c.running:
        raise Conflict(f"container {c.id} is not running")
    if c.state.get("Paused"):
        raise Conflict(f"container {c.id} is paused, unpause the container before exec")
    return rec
