"""Dockyard's own OCI runtime as a library: create / start / state / kill / delete / pause.

State lives under a runtime root (like runc's --root): <root>/<id>/state.json and the exec
fifo. `create` forks the init in a throwaway child; with a `ShimSpec` that child then execs
the shim, making the container's init the shim's child (the engine's path). Without one
(`dockyard-runtime create`), the init is left for the caller's subreaper, as runc does.
"""

from __future__ import annotations

import os
import _signal as signal  # the C core: `signal` builds IntEnums (importing enum) at import
import sys
from .._path import Path

from .._record import dataclass, field
from .. import _json, _util
from ..errors import AlreadyExists, Conflict, ExecFailed, FailedPrecondition, InvalidArgument, NotFound
from ..kernel import usock
from . import spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

SHIM_PATH = str(Path(__file__).with_name("shim_entry.py"))
#: the C shim (scripts/build-shim), used when built, unless DOCKYARD_SHIM=python
SHIM_BINARY = str(Path(__file__).with_name("bin") / "dockyard-shim")

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-"

#: forks the container's process: (stdio fds for the child, fds the child must close) -> handle
if TYPE_CHECKING:
    Forker = Callable[[tuple[int, int, int] | None, tuple[int, ...]], spawn.InitHandle]


class Status:
    """OCI container statuses (plain strings, as in the state JSON)."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True)
class State:
    """The OCI `state` of a container."""

    id: str
    status: str  # one of Status.*
    pid: int
    bundle: str
    annotations: dict[str, str] = field(default_factory=dict)

    def to_oci(self) -> dict:
        return {"ociVersion": "1.0.2", "id": self.id, "status": self.status,
                "pid": self.pid if self.status != Status.STOPPED else 0,
                "bundle": self.bundle, "annotations": self.annotations}


@dataclass(frozen=True)
class ShimSpec:
    """How the engine wants the container's stdio handled by its shim."""

    run_dir: str
    log_path: str
    log_max_size: int
    log_max_files: int
    open_stdin: bool
    stdin_once: bool
    exit_cmd: tuple[str, ...]
    #: remove run_dir when the process exits (exec sessions)
    remove_run_dir: bool = False
    #: descriptors the shim keeps open for the container's lifetime (published ports' sockets)
    hold_fds: tuple[int, ...] = ()


def _cgroup(spec: dict):  # type: ignore[no-untyped-def]
    from .cgroups import open_manager

    path = (spec.get("linux") or {}).get("cgroupsPath")
    return open_manager(path) if path else None


class Runtime:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, cid: str) -> Path:
        if not cid or cid.strip(_ID_CHARS) or cid in (".", ".."):
            raise InvalidArgument(f"invalid container id {cid!r}: use letters, digits, '_', '+', '.' and '-'")
        return self.root / cid

    # -- create ----------------------------------------------------------------
    def create(self, cid: str, bundle: str, shim: ShimSpec | None = None,
               stdio: tuple[int, int, int] | None = None, console_socket: str | None = None) -> int:
        d = self._dir(cid)
        try:
            d.mkdir(parents=True)
        except FileExistsError:
            raise AlreadyExists(f"container {cid} already exists in the runtime") from None
        cg = None
        try:
            with open(os.path.join(bundle, "config.json"), "rb") as f:
                spec = _json.loads(f.read())
            root = spec["root"]["path"]
            if not os.path.isabs(root):
                spec["root"]["path"] = os.path.join(bundle, root)
            cg = _cgroup(spec)
            cgroup_dirs: dict[str, str] = {}
            if cg is not None:
                from .cgroups import Resources

                cg.create()
                cg.apply(Resources.from_oci((spec.get("linux") or {}).get("resources")))
                cgroup_dirs = {k: str(v) for k, v in cg.paths.items()}
            fifo = str(d / "exec.fifo")
            os.mkfifo(fifo, 0o600)
            if shim is not None:
                pid = self._spawn_with_shim(
                    lambda io, close: spawn.fork_init(spec, fifo, io, cgroup_dirs, close),
                    bool(spec["process"].get("terminal")), shim)
            else:
                pid = self._create_plain(spec, fifo, cgroup_dirs, stdio, console_socket)
            _util.write_json(d / "state.json", durable=False, obj={"id": cid, "pid": pid, "bundle": bundle,
                                                "created": _util.now_rfc3339(),
                                                "start_time": _start_time(pid),
                                                "annotations": spec.get("annotations") or {},
                                                "cgroupsPath": (spec.get("linux") or {}).get("cgroupsPath")})
            return pid
        except BaseException as e:
            cleanup_error = self._cleanup_failed(d, cg)
            if cleanup_error:
                e.add_note(f"cleanup after the failed create: {cleanup_error}")
            raise

    @staticmethod
    def _cleanup_failed(d: Path, cg: Any) -> str | None:
        """Undo a failed create: kill what reached the cgroup, remove it and the state dir."""
        problem = None
        if cg is not None:
            try:
                cg.kill_all(signal.SIGKILL)
                cg.destroy()
            except Exception as e:  # report, but keep the original error first
                problem = str(e)
        _util.rmtree(d)
        return problem

    def _create_plain(self, spec: dict, fifo: str, cgroup_dirs: dict[str, str],
                      stdio: tuple[int, int, int] | None, console_socket: str | None) -> int:
        """runc-style: fork the init from a child, report its pid, leave it running."""
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            h = None
            try:
                os.close(r)
                h = spawn.fork_init(spec, fifo, stdio or (0, 1, 2), cgroup_dirs, close_in_child=(w,))
                try:
                    master = spawn.wait_ready(h)
                except spawn.CreateFailed as e:
                    os.write(w, _json.dumps({"error": str(e), "code": e.code}).encode())
                    os._exit(1)
                if master is not None and console_socket:
                    s = usock.socket(usock.AF_UNIX, usock.SOCK_STREAM)
                    s.connect(console_socket)
                    usock.send_fds(s, [b"/dev/ptmx"], [master])
                    s.close()
                os.write(w, _json.dumps({"pid": h.pid}).encode())
                os._exit(0)
            except BaseException as e:
                if h is not None:
                    try:
                        os.kill(h.pid, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    os.write(w, _json.dumps({"error": str(e) or type(e).__name__, "code": 125}).encode())
                except OSError:
                    pass
            finally:
                os._exit(1)
        os.close(w)
        msg = _read_all(r)
        os.waitpid(child, 0)
        return _pid_or_raise(msg)

    def _spawn_with_shim(self, fork: Forker | None, terminal: bool, shim: ShimSpec,
                         external: dict | None = None) -> int:
        """Fork (via `fork`) the container's process, held at its fifo, and exec the shim as
        its parent right away: the shim's interpreter start overlaps with the init's set-up,
        and the shim reports the init's "ready" (or its error) back on a status pipe."""
        parent_fds: list[int] = []
        child_fds: list[int] = []
        stdio: tuple[int, int, int] | None = None
        cfg: dict[str, Any] = {"run_dir": shim.run_dir, "log_path": shim.log_path,
                               "log_max_size": shim.log_max_size, "log_max_files": shim.log_max_files,
                               "exit_cmd": list(shim.exit_cmd), "remove_run_dir": int(shim.remove_run_dir)}
        for k, v in (external or {}).items():
            cfg["ext_" + k] = v
        if not terminal:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if shim.open_stdin:
                in_r, in_w = os.pipe()
                cfg["stdin_fd"] = in_w
                parent_fds.append(in_w)
                child_fds.append(in_r)
            else:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                child_fds.append(in_r)
            stdio = (in_r, out_w, err_w)
            cfg.update(stdout_fd=out_r, stderr_fd=err_r)
            parent_fds += [out_r, err_r]
            child_fds += [out_w, err_w]
        r, w = os.pipe()
        x = os.fork()
        if x == 0:
            try:
                os.close(r)
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                keep = list(parent_fds)
                if fork is not None:
                    h = fork(stdio, tuple(parent_fds) + (w,))
                    for fd in child_fds:
                        os.close(fd)
                    spawn.restore_pid_ns()
                    cfg["pid"] = h.pid
                    cfg["sync_fd"] = h.sync.fileno()
                    keep.append(h.sync.fileno())
                elif stdio is not None:
                    # an external runtime: the shim runs its create itself
                    cfg["child_stdio"] = list(stdio)
                    keep += list(stdio)
                cfg["status_fd"] = w
                keep.append(w)
                keep += list(shim.hold_fds)
                listener = usock.socket(usock.AF_UNIX, usock.SOCK_STREAM)
                sock_path = os.path.join(shim.run_dir, "sock")
                listener.bind(sock_path)
                os.chmod(sock_path, 0o600)
                listener.listen(64)
                cfg["listen_fd"] = listener.fileno()
                keep.append(listener.fileno())
                for fd in keep:
                    os.set_inheritable(fd, True)
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1):
                    os.dup2(devnull, fd)
                errlog = os.open(os.path.join(shim.run_dir, "shim.log"),
                                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                os.dup2(errlog, 2)
                argv = _shim_argv(cfg)
                os.execv(argv[0], argv)
            except BaseException as e:  # report, never return into the caller's code
                try:
                    os.write(w, _json.dumps({"error": f"shim: {e}", "code": 125}).encode())
                except OSError:
                    pass
            finally:
                os._exit(1)
        os.close(w)
        for fd in child_fds + parent_fds:
            os.close(fd)
        msg = _read_all(r)
        os.waitpid(x, 0)
        return _pid_or_raise(msg)

    # -- exec ------------------------------------------------------------------------
    def exec_create(self, cid: str, exec_id: str, process: dict, shim: ShimSpec) -> int:
        """Start a tenant process in a running container, held at its fifo until exec_start."""
        from . import tenant

        st = self.state(cid)
        if st.status not in (Status.RUNNING,):
            raise Conflict(f"container {cid} is not running")
        fifo = str(self._dir(cid) / f"exec-{exec_id}.fifo")
        os.mkfifo(fifo, 0o600)
        try:
            cg = self._load(cid).get("cgroupsPath")
            cgroup_dirs: dict[str, str] = {}
            if cg:
                from .cgroups import open_manager

                cgroup_dirs = {k: str(v) for k, v in open_manager(cg).paths.items()}
            return self._spawn_with_shim(
                lambda io, close: tenant.fork_tenant(st.pid, process, fifo, io, cgroup_dirs, close),
                bool(process.get("terminal")), shim)
        except BaseException:
            try:
                os.unlink(fifo)
            except FileNotFoundError:
                pass
            raise

    def exec_abort(self, cid: str, exec_id: str, pid: int | None) -> None:
        """Undo an exec_create whose start will not happen: kill the waiting process (its
        shim then exits) and remove its fifo."""
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.unlink(self._dir(cid) / f"exec-{exec_id}.fifo")
        except FileNotFoundError:
            pass

    def exec_start(self, cid: str, exec_id: str, pid: int) -> None:
        try:
            spawn.open_fifo_for_start(str(self._dir(cid) / f"exec-{exec_id}.fifo"), pid)
        except spawn.CreateFailed as e:
            raise FailedPrecondition(str(e)) from None

    # -- other verbs ---------------------------------------------------------------
    def _load(self, cid: str) -> dict:
        try:
            return _util.read_json(self._dir(cid) / "state.json")
        except FileNotFoundError:
            raise NotFound(f"container {cid} does not exist in the runtime") from None

    def state(self, cid: str) -> State:
        st = self._load(cid)
        pid = int(st["pid"])
        if not _alive(pid) or (st.get("start_time") and _start_time(pid) != st["start_time"]):
            status = Status.STOPPED
        elif (self._dir(cid) / "exec.fifo").exists():
            status = Status.CREATED
        else:
            status = Status.RUNNING
            cg = st.get("cgroupsPath")
            if cg:
                from .cgroups import open_manager

                try:
                    if open_manager(cg).is_frozen():
                        status = Status.PAUSED
                except OSError:
                    pass
        return State(cid, status, pid, st["bundle"], st.get("annotations") or {})

    def start(self, cid: str) -> None:
        st = self.state(cid)
        if st.status != Status.CREATED:
            raise Conflict(f"container {cid} is {st.status}, not created")
        try:
            spawn.open_fifo_for_start(str(self._dir(cid) / "exec.fifo"), st.pid)
        except spawn.CreateFailed as e:
            raise FailedPrecondition(str(e)) from None

    def kill(self, cid: str, sig: int = signal.SIGTERM, all_processes: bool = False) -> None:
        st = self.state(cid)
        if st.status == Status.STOPPED and not all_processes:
            raise Conflict(f"container {cid} is not running")
        if all_processes:
            cg = self._load(cid).get("cgroupsPath")
            if cg:
                from .cgroups import open_manager

                open_manager(cg).kill_all(sig)
                return
        if st.status == Status.STOPPED:
            return
        if st.status == Status.PAUSED and sig == signal.SIGKILL:
            self.resume(cid)
        os.kill(st.pid, sig)

    def pause(self, cid: str) -> None:
        self._freezer(cid).freeze()

    def resume(self, cid: str) -> None:
        self._freezer(cid).thaw()

    def _freezer(self, cid: str):  # type: ignore[no-untyped-def]
        from .cgroups import open_manager

        cg = self._load(cid).get("cgroupsPath")
        if not cg:
            raise FailedPrecondition(f"container {cid} has no cgroup to freeze")
        return open_manager(cg)

    def delete(self, cid: str, force: bool = False) -> None:
        import time

        st = self.state(cid)
        if st.status != Status.STOPPED:
            if not force:
                raise Conflict(f"cannot delete container {cid} that is not stopped: {st.status}")
            self.kill(cid, signal.SIGKILL, all_processes=True)
            for _ in range(200):
                if not _alive(st.pid):
                    break
                time.sleep(0.01)
        cg = self._load(cid).get("cgroupsPath")
        if cg:
            from .cgroups import open_manager

            open_manager(cg).destroy()
        _util.rmtree(self._dir(cid))

    def list(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists())
        except FileNotFoundError:
            return []


def _shim_args(cfg: dict[str, Any]) -> list[str]:
    """The shim's configuration as key=value argv items (lists joined by \\x1f): the shim
    parses them without importing json."""
    out = []
    for k, v in cfg.items():
        if isinstance(v, (list, tuple)):
            v = "\x1f".join(str(x) for x in v)
        out.append(f"{k}={v}")
    return out


def _shim_argv(cfg: dict[str, Any]) -> list[str]:
    """The C shim when it is built and no external runtime is involved (that part is
    Python only), else the Python shim. DOCKYARD_SHIM=python forces the Python one,
    DOCKYARD_SHIM=/abs/path names another build of the C one."""
    choice = os.environ.get("DOCKYARD_SHIM", "")
    binary = choice if choice.startswith("/") else SHIM_BINARY
    if (choice != "python" and os.access(binary, os.X_OK)
            and not any(k.startswith("ext_") or k == "child_stdio" for k in cfg)):
        return [binary, *_shim_args(cfg)]
    return [sys.executable, "-E", "-s", "-S", SHIM_PATH, *_shim_args(cfg)]


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks)


def _pid_or_raise(msg: bytes) -> int:
    if not msg:
        raise FailedPrecondition("container init exited before reporting its state")
    data = _json.loads(msg)
    if "error" in data:
        code = int(data.get("code", 125))
        if code in (126, 127):
            raise ExecFailed(f"failed to create task for container: {data['error']}", code)
        raise FailedPrecondition(f"failed to create task for container: {data['error']}")
    return int(data["pid"])


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a reused PID from the process we started."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_alive = spawn.alive
