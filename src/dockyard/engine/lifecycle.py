"""Container lifecycle: create, start, stop, kill, restart, pause, rename, remove, exit handling.

Rules: every state change happens under the container's lock and is saved atomically; a
failed create or start leaves nothing half-made behind (rw layer, mounts, cgroup, runtime
state), and the user sees one message naming the container and the cause.
"""

from __future__ import annotations

import os
import time

from .. import _util
from ..errors import Conflict, DockyardError, ExecFailed, InvalidArgument, NotFound
from . import names as namegen
from .configs import HOSTS, merge_image_config, read_or_default_hosts, resolv_conf
from . import events, netmodes, stream
from .core import Engine
from .records import Container, new_state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

DEFAULT_LOG_MAX_SIZE = 20 * 1000 * 1000
DEFAULT_LOG_MAX_FILES = 5

# ---- create ---------------------------------------------------------------------

def create(engine: Engine, config: dict[str, Any], host_config: dict[str, Any], name: str | None,
           networking: dict[str, Any] | None = None) -> Container:
    image = engine.images.resolve(config["Image"])
    engine.runtime_named(host_config.get("Runtime"))  # unknown runtime: fail before creating
    from .specgen import validate_sysctls

    validate_sysctls(host_config)
    if name is not None:
        name = namegen.validate(name)
    merged = merge_image_config(config, image.config)
    if not (merged.get("Entrypoint") or merged.get("Cmd")):
        raise InvalidArgument("no command specified")
    cid = _util.new_id()
    endpoints = (networking or {}).get("EndpointsConfig")
    net_settings = netmodes.quick_prepare(engine, host_config, endpoints)
    netattach = None
    if net_settings is None:
        from . import netattach

        net_settings = netattach.prepare(engine, host_config, endpoints)
    mode = host_config.get("NetworkMode") or "default"
    if mode == "host":
        hostname = os.uname().nodename  # socket.gethostname()
    else:
        hostname = merged.get("Hostname") or cid[:12]
    merged["Hostname"] = hostname
    merged.setdefault("Domainname", "")
    merged["Image"] = config["Image"]
    log_cfg = host_config.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    if log_cfg.get("Type") not in ("json-file", "", None):
        raise InvalidArgument(f"logging driver {log_cfg.get('Type')!r} is not supported (only json-file)")
    log_cfg["Type"] = "json-file"
    cdir = engine.containers.path(cid)
    doc: dict[str, Any] = {
        "ID": cid, "Created": _util.now_rfc3339(),
        "Path": (merged.get("Entrypoint") or merged.get("Cmd") or [""])[0],
        "Args": ((merged.get("Entrypoint") or []) + (merged.get("Cmd") or []))[1:],
        "Config": merged, "Image": image.id, "Name": "", "Driver": "overlay2", "Platform": "linux",
        "RestartCount": 0, "State": new_state(), "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": None,
        "LogPath": str(cdir / f"{cid}-json.log"),
        "HostnamePath": str(cdir / "hostname"), "HostsPath": str(cdir / "hosts"),
        "ResolvConfPath": str(cdir / "resolv.conf"), "NetworkSettings": net_settings,
    }
    c = Container(doc, host_config)
    hosts = HOSTS if mode != "host" else read_or_default_hosts("/etc/hosts")
    if netattach is not None:
        netattach.resolve_host_gateway(engine, host_config)
    for extra in host_config.get("ExtraHosts") or []:
        h, _, ip = extra.rpartition(":")
        hosts += f"{ip}\t{h}\n"
    resolv = resolv_conf(host_config, netattach and netattach.resolv_nameservers(engine, net_settings))
    store = engine.containers
    with _util.locked(engine.paths.lock):
        if name is None:
            taken = store.names()
            for attempt in range(10):
                name = namegen.generate(attempt)
                if name not in taken:
                    break
        assert name is not None
        doc["Name"] = "/" + name
        store.reserve_name(name, cid, durable=not host_config.get("AutoRemove"))
        # The directory is made under the lock: a concurrent create treats a reserved name
        # whose holder has no directory as stale, so the holder must exist from here on.
        try:
            cdir.mkdir(parents=True)
        except BaseException:
            store.release_name(name, cid)
            raise
    try:
        for fname, data in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
            _util.atomic_write(cdir / fname, data, durable=False)
        engine.layers.create_rw(cid, image.top_chain_id, {
            "etc/hostname": ((hostname + "\n").encode(), 0o644),
            "etc/hosts": (hosts.encode(), 0o644),
            "etc/resolv.conf": (resolv.encode(), 0o644),
        })
        from .mounts import creating as mounts_creating  # volumes and mounts -> MountPoints

        with mounts_creating(engine, c):
            store.save(c, host_config=True)
        events.container(engine, "create", c)
    except BaseException:
        with _util.locked(engine.paths.lock):
            store.release_name(name, cid)
        _remove_rw_quietly(engine, cid)
        store.delete(cid)
        raise
    return c


def _remove_rw_quietly(engine: Engine, cid: str) -> None:
    try:
        engine.layers.remove_rw(cid)
    except (DockyardError, OSError):
        pass


# ---- start -----------------------------------------------------------------------

def _lookup_pid(engine: Engine) -> Callable[[str], int]:
    def lookup(ref: str) -> int:
        other = engine.containers.resolve(ref)
        if not other.running:
            raise Conflict(f"cannot join the namespaces of a non-running container: {other.id}")
        return int(other.state["Pid"])
    return lookup


def run_dir(engine: Engine, cid: str) -> str:
    return str(engine.paths.container_run(cid))


def start(engine: Engine, c: Container, before_start: Callable[[str], None] | None = None,
          console_size: tuple[int, int] | None = None, volatile: bool | None = None) -> Container:
    """Start a created or exited container. `before_start(run_dir)` runs once the shim is up
    and the init waits at the exec fifo (the CLI attaches there, so no output is lost).
    `volatile`: mount its overlay without syncs (default: for --rm containers; the builder's
    step containers too, whose upper dir becomes a layer synced once at the end of the build)."""
    from ..runtime.api import ShimSpec
    from .specgen import build_spec

    store = engine.containers
    with store.lock(c.id):
        c = store.load(c.id)
        if c.running:
            refresh(engine, c)
            c = store.load(c.id)
            if c.running:
                from ..errors import NotModified

                raise NotModified(f"container {c.id[:12]} is already running")
        rdir = run_dir(engine, c.id)
        _util.rmtree(rdir)
        os.makedirs(rdir, mode=0o700)
        sandbox = None
        try:
            _stale_runtime_cleanup(engine, c)
            if netmodes.mode_of(c.host_config) in ("none", "host"):
                sandbox = netmodes.Sandbox()  # none, host: the runtime's (netattach.setup's answer)
            else:
                from . import netattach

                sandbox = netattach.setup(engine, c)
            if volatile is None:
                volatile = bool(c.host_config.get("AutoRemove"))
            rootfs = str(engine.layers.mount_rw(c.id, volatile=volatile))
            if c.doc.get("MountPoints"):  # volumes: device mounts, -v host dirs, copy-up
                from .mounts import on_start as mounts_on_start

                mounts_on_start(engine, c, rootfs)
            spec = build_spec(c, rootfs, _lookup_pid(engine), netns=sandbox.netns)
            if console_size and spec["process"].get("terminal"):
                spec["process"]["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
            _util.write_json(os.path.join(rdir, "config.json"), spec, 0o600, durable=False)
            cfg, hc = c.config, c.host_config
            log_opts = (hc.get("LogConfig") or {}).get("Config") or {}
            max_size = _util.parse_bytes(log_opts["max-size"]) if log_opts.get("max-size") else DEFAULT_LOG_MAX_SIZE
            max_files = int(log_opts.get("max-file") or DEFAULT_LOG_MAX_FILES)
            shim = ShimSpec(run_dir=rdir, log_path=c.doc["LogPath"], log_max_size=max_size,
                            log_max_files=max_files, open_stdin=bool(cfg.get("OpenStdin")),
                            stdin_once=bool(cfg.get("StdinOnce")),
                            exit_cmd=tuple(engine.cli_argv("system", "_exited", c.id)),
                            hold_fds=tuple(s.fileno() for s in sandbox.hold))
            pid = engine.runtime_for(c).create(c.id, rdir, shim=shim)
            from ..runtime.cgroups import warm

            warm.stop()  # the init is in its cgroup (see runtime/cgroups/warm.py)
            sandbox.close()  # the shim holds the published ports' sockets from here on
            if before_start is not None:
                before_start(rdir)
            engine.runtime_for(c).start(c.id)
        except BaseException as e:
            if sandbox is not None:
                sandbox.close()
            _abort_start(engine, c, e)
            raise
        st = c.state
        st.update(Status="running", Running=True, Paused=False, Pid=pid, ExitCode=0, Error="",
                  OOMKilled=False, StartedAt=_util.now_rfc3339(), FinishedAt=_util.ZERO_TIME)
        store.save(c)
        events.container(engine, "start", c)
        return c


def _stale_runtime_cleanup(engine: Engine, c: Container) -> None:
    try:
        engine.runtime_for(c).delete(c.id, force=True)
    except NotFound:
        pass


def _abort_start(engine: Engine, c: Container, err: BaseException) -> None:
    try:
        engine.runtime_for(c).delete(c.id, force=True)
    except (DockyardError, OSError):
        pass
    try:
        engine.layers.unmount_rw(c.id)
    except (DockyardError, OSError):
        pass
    _release_network(engine, c)
    _util.rmtree(run_dir(engine, c.id))
    _release_mounts(engine, c)
    st = c.state
    code = err.exit_code if isinstance(err, ExecFailed) else 128
    st.update(Status="created" if st.get("StartedAt") == _util.ZERO_TIME else "exited", Running=False,
              Pid=0, ExitCode=code, Error=str(err))
    engine.containers.save(c)


def _release_network(engine: Engine, c: Container) -> None:
    """Tear down the container's network sandbox; a failure is reported, never fatal here."""
    if netmodes.runtime_owned(c.host_config):
        return  # nothing of ours (netattach.teardown's answer)
    from . import netattach

    try:
        netattach.teardown(engine, c)
    except (DockyardError, OSError) as e:
        import sys

        print(f"warning: container {c.id[:12]}: network cleanup: {e}", file=sys.stderr)


def _release_mounts(engine: Engine, c: Container) -> None:
    """Volumes: the last user of a local-driver volume with a device unmounts it."""
    if c.doc.get("MountPoints"):
        from .mounts import on_stop

        on_stop(engine, c)


# ---- exit handling -------------------------------------------------------------

def handle_exit(engine: Engine, cid: str) -> Container | None:
    """Record a container's exit and release what it held. Idempotent; safe to race with
    the shim's exit command. Returns the container (with `removed` set when --rm removed
    it: its state is still the exit's), or None if it did not exist."""
    store = engine.containers
    try:
        return _handle_exit_locked(engine, cid)
    finally:
        store.forget_lock(cid)


def _handle_exit_locked(engine: Engine, cid: str) -> Container | None:
    store = engine.containers
    with store.lock(cid):
        try:
            c = store.load(cid)
        except NotFound:
            return None
        if not c.running:
            return c
        try:
            rstate = engine.runtime_for(c).state(cid)
            if rstate.status != "stopped":
                return c  # still running
        except NotFound:
            pass
        info = _read_exit(run_dir(engine, cid))
        oom = False
        try:
            from ..runtime.cgroups import open_manager

            oom = open_manager(f"/dockyard/{cid}").oom_kill_count() > 0
        except Exception:
            oom = False
        try:
            engine.runtime_for(c).delete(cid, force=True)
        except NotFound:
            pass
        try:
            engine.layers.unmount_rw(cid)
        except (DockyardError, OSError):
            pass
        _release_network(engine, c)
        _util.rmtree(run_dir(engine, cid))
        _release_mounts(engine, c)
        c.state.update(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=int(info["exit_code"]),
                       FinishedAt=info["finished_at"], OOMKilled=oom)
        auto_remove = bool(c.host_config.get("AutoRemove"))
        if not auto_remove:
            store.save(c)
        if oom:
            events.container(engine, "oom", c)
        events.container(engine, "die", c, exitCode=c.state["ExitCode"])
        if auto_remove:  # its exited state is written only if the removal fails
            try:
                _remove_locked(engine, c)
            except BaseException:
                store.save(c)
                raise
            c.removed = True
        return c


def _read_exit(rdir: str) -> dict[str, Any]:
    """The shim's exit record. The init may be dead a moment before its shim has reaped it
    and written the record: wait while the shim is still serving (its socket exists)."""
    exit_file = os.path.join(rdir, "exit.json")
    sock = os.path.join(rdir, "sock")
    deadline = time.monotonic() + 10
    while True:
        try:
            return _util.read_json(exit_file)  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            pass
        if not os.path.exists(sock) or time.monotonic() > deadline:
            return {"exit_code": 255, "finished_at": _util.now_rfc3339()}
        time.sleep(0.005)


def refresh_or_none(engine: Engine, c: Container) -> Container | None:
    """Reconcile a record that says running with the runtime (e.g. the shim was killed).
    Returns None when that reconciliation auto-removed the container (--rm)."""
    if not c.running:
        return c
    try:
        if engine.runtime_for(c).state(c.id).status != "stopped":
            return c
    except NotFound:
        pass
    got = handle_exit(engine, c.id)
    return None if got is None or got.removed else got


def refresh(engine: Engine, c: Container) -> Container:
    got = refresh_or_none(engine, c)
    return got if got is not None else c


def wait_exit(engine: Engine, c: Container, exited: bool = False) -> int:
    """Block until the container is not running; return its exit code. `exited` says the
    caller already saw the exit (an attach stream's exit frame): skip asking the shim."""
    sock_path = os.path.join(run_dir(engine, c.id), "sock")
    if c.running:
        seen = None
        if not exited:
            from ..kernel import usock

            try:
                s = usock.socket(usock.AF_UNIX, usock.SOCK_STREAM)
                s.connect(sock_path)
                s.sendall(b"wait=1\n")
                seen = stream.read_exit(s)
                s.close()
            except OSError:
                pass
        while True:
            try:
                if engine.runtime_for(c).state(c.id).status == "stopped":
                    break
            except NotFound:
                break
            time.sleep(0.05)
        got = handle_exit(engine, c.id)
        if got is not None:
            c = got
        elif seen is not None:  # the exit command recorded it and --rm removed it meanwhile
            return seen
    return int(c.state.get("ExitCode", 0))


def wait_condition(engine: Engine, cid: str, condition: str = "not-running",
                   pause: Callable[[float], None] = time.sleep,
                   exit_hint: Callable[[str], int | None] = lambda _cid: None) -> int:
    """Docker's wait conditions: `not-running` (now, if it is not), `next-exit` (the next
    exit from now), `removed` (until the record is gone). Returns the exit code; `exit_hint`
    may know a code seen elsewhere (an attach stream) when the container vanished first."""
    if condition not in ("not-running", "next-exit", "removed", ""):
        raise InvalidArgument(f"invalid condition: {condition!r}")
    c = engine.containers.load(cid)
    first = (c.state.get("StartedAt"), c.state.get("FinishedAt"))
    last = int(c.state.get("ExitCode") or 0)
    while True:
        try:
            c = engine.containers.load(cid)
        except NotFound:
            hint = exit_hint(cid)
            return last if hint is None else hint
        got = refresh_or_none(engine, c)
        if got is None:
            hint = exit_hint(cid)
            return int(c.state.get("ExitCode") or 0) if hint is None else hint
        c = got
        if c.running:
            last = wait_exit(engine, c)
            if condition != "removed":
                return last
            continue
        last = int(c.state.get("ExitCode") or 0)
        if condition in ("not-running", ""):
            return last
        if condition == "next-exit" and (c.state.get("StartedAt"), c.state.get("FinishedAt")) != first \
                and c.state.get("FinishedAt") != _util.ZERO_TIME:
            return last
        pause(0.05)


def _wait_dead(pid: int, timeout: float | None) -> bool:
    from ..runtime.spawn import alive as _alive

    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while _alive(pid):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


# ---- remove ------------------------------------------------------------------------

def remove(engine: Engine, c: Container, force: bool = False, volumes: bool = False) -> None:
    c = refresh(engine, c)
    if c.running:
        if not force:
            raise Conflict(f"You cannot remove a running container {c.id}. Stop the container before "
                           "attempting removal or force remove")
        try:
            engine.runtime_for(c).kill(c.id, 9, all_processes=True)  # SIGKILL
        except (Conflict, NotFound, FileNotFoundError):
            pass  # already gone: another rm or the exit handling got there first
        _wait_dead(int(c.state["Pid"]), 10)
        got = handle_exit(engine, c.id)
        if got is None or got.removed:
            return
    try:
        with engine.containers.lock(c.id):
            try:
                c = engine.containers.load(c.id)
            except NotFound:
                return
            _remove_locked(engine, c, volumes)
    finally:
        engine.containers.forget_lock(c.id)


def _remove_locked(engine: Engine, c: Container, volumes: bool = False) -> None:
    try:
        engine.runtime_for(c).delete(c.id, force=True)
    except NotFound:
        pass
    if c.running:
        _release_network(engine, c)
    engine.images.remove_container_layer(c.id, c.doc.get("Image"))
    _util.rmtree(run_dir(engine, c.id))
    with _util.locked(engine.paths.lock):
        engine.containers.release_name(c.name, c.id)
    engine.containers.delete(c.id)
    events.container(engine, "destroy", c)
    execs_dir = engine.paths.runroot / "execs"
    if os.path.isdir(execs_dir) and os.listdir(execs_dir):
        from .execs import prune_records

        prune_records(engine, c.id)
    if c.doc.get("MountPoints"):  # rm -v and --rm take the anonymous volumes along
        from .mounts import on_remove as mounts_on_remove

        mounts_on_remove(engine, c, volumes or bool(c.host_config.get("AutoRemove")))
