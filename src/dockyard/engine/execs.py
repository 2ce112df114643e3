"""`exec`: run another process in a running container, through its own small shim."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable

from .. import _util
from ..errors import Conflict, ExecFailed, InvalidArgument
from . import configs, lifecycle
from .core import Engine
from .records import Container
from .specgen import resolve_user


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
                     before_start: Callable[[str], None] | None = None) -> ExecSession:
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
    exec_id = _util.new_id()
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
