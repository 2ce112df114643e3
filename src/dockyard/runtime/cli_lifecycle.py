"""`dockyard-runtime` create, start, state, kill, delete, pause and resume.

Also what `run` shares with `create`: reading the bundle's config.json, the console-socket
and option checks made before anything forks, the --pid-file, and removing a container a
failed command leaves behind.
"""

from __future__ import annotations

import os

from .cli_args import _CREATE, _DELETE, _KILL, _NONE, DEFAULT_ROOT, UsageError, one_id, parse, parse_signal

TYPE_CHECKING = False  # `typing` costs ~5 ms at import; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any

    from .api import Runtime
    from .cli_args import Options


def open_runtime(g: Options) -> Runtime:
    """The runtime over --root (default DEFAULT_ROOT)."""
    from .api import Runtime

    return Runtime(g.get("root") or DEFAULT_ROOT)


def read_config(bundle: str) -> dict[str, Any]:
    """The bundle's config.json, which must have a process section."""
    import json

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            spec = json.loads(f.read())
    except FileNotFoundError:
        raise UsageError(f"JSON specification file config.json not found in bundle {bundle}") from None
    except ValueError as e:
        raise UsageError(f"{bundle}/config.json: invalid JSON: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("process"), dict):
        raise UsageError(f"{bundle}/config.json: no process section")
    return spec


def _write_pid_file(path: str, pid: int) -> None:
    """Like runc: write to a temp name beside it, then rename (readers never see it half-done)."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def check_console(spec: dict[str, Any], console_socket: str | None, detached: bool) -> None:
    """runc's rules for process.terminal and --console-socket; the socket must exist."""
    terminal = bool(spec["process"].get("terminal"))
    if terminal and detached and not console_socket:
        raise UsageError("cannot allocate tty if dockyard-runtime will detach without setting console socket")
    if not terminal and console_socket:
        raise UsageError("cannot use console socket if dockyard-runtime will not allocate tty")
    if console_socket:
        # check before forking the init: a create that cannot hand over the pty fails late
        # and (runtime/api.py) loses the cause
        import stat

        try:
            st = os.stat(console_socket)
        except OSError as e:
            raise UsageError(f"console socket {console_socket}: {e.strerror}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"console socket {console_socket}: not a unix socket")


def check_create_opts(o: Options) -> None:
    """Refuse the create options that runc has and this runtime does not implement."""
    if o.get("preserve_fds") not in (None, "0"):
        raise UsageError("--preserve-fds is not supported by dockyard-runtime")
    if o.get("pidfd_socket"):
        raise UsageError("--pidfd-socket is not supported by dockyard-runtime")


def create_container(g: Options, o: Options, cid: str, console_socket: str | None) -> tuple[Runtime, int]:
    """Create `cid` from --bundle and write --pid-file; on failure to write it, remove it again."""
    bundle = os.path.abspath(o.get("bundle") or ".")
    rt = open_runtime(g)
    pid = rt.create(cid, bundle, stdio=(0, 1, 2), console_socket=console_socket)
    if o.get("pid_file"):
        try:
            _write_pid_file(o["pid_file"], pid)
        except BaseException:
            destroy_quietly(rt, cid)
            raise
    return rt, pid


def destroy_quietly(rt: Runtime, cid: str) -> None:
    """Force-delete `cid` after a failure, ignoring errors (the failure is what to report)."""
    try:
        rt.delete(cid, force=True)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass


# ---------------------------------------------------------------------------
# commands

def cmd_create(g: Options, argv: list[str]) -> int:
    o, args = parse(argv, _CREATE, False)
    cid = one_id(args, "create")
    check_create_opts(o)
    bundle = os.path.abspath(o.get("bundle") or ".")
    cs = os.path.abspath(o["console_socket"]) if o.get("console_socket") else None
    check_console(read_config(bundle), cs, detached=True)
    create_container(g, o, cid, cs)
    return 0


def cmd_start(g: Options, argv: list[str]) -> int:
    _, args = parse(argv, _NONE, False)
    open_runtime(g).start(one_id(args, "start"))
    return 0


def cmd_state(g: Options, argv: list[str]) -> int:
    import json

    _, args = parse(argv, _NONE, False)
    cid = one_id(args, "state")
    rt = open_runtime(g)
    print(json.dumps(state_doc(rt, cid), indent=2))
    return 0


def state_doc(rt: Runtime, cid: str) -> dict[str, Any]:
    """runc's state document: the OCI state plus rootfs, created and owner."""
    st = rt.state(cid)
    doc: dict[str, Any] = st.to_oci()
    raw = rt._load(cid)  # the created time is recorded but not part of State
    doc["rootfs"] = _rootfs_of(st.bundle)
    doc["created"] = raw.get("created", "")
    doc["owner"] = ""
    return doc


def _rootfs_of(bundle: str) -> str:
    try:
        root = read_config(bundle).get("root", {}).get("path", "")
    except UsageError:
        return ""
    return root if not root or os.path.isabs(root) else os.path.join(bundle, root)


def cmd_kill(g: Options, argv: list[str]) -> int:
    o, args = parse(argv, _KILL, False)
    cid = one_id(args, "kill", extra=1)
    sig = parse_signal(args[1]) if len(args) > 1 else 15
    open_runtime(g).kill(cid, sig, all_processes=bool(o.get("all")))
    return 0


def cmd_delete(g: Options, argv: list[str]) -> int:
    from ..errors import NotFound

    o, args = parse(argv, _DELETE, False)
    cid = one_id(args, "delete")
    rt = open_runtime(g)
    try:
        st = rt.state(cid)
    except NotFound:
        # a create that died before writing its state leaves only the directory: remove it
        import shutil

        shutil.rmtree(os.path.join(str(rt.root), cid), ignore_errors=True)
        if o.get("force"):
            return 0
        raise
    # runc deletes a created (never started) container without --force: nothing ran yet
    rt.delete(cid, force=bool(o.get("force")) or st.status == "created")
    return 0


def cmd_pause(g: Options, argv: list[str]) -> int:
    return _freeze_or_thaw(g, argv, "pause", "running")


def cmd_resume(g: Options, argv: list[str]) -> int:
    return _freeze_or_thaw(g, argv, "resume", "paused")


def _freeze_or_thaw(g: Options, argv: list[str], command: str, required: str) -> int:
    """pause (from running) or resume (from paused) every process of the container."""
    from ..errors import Conflict

    _, args = parse(argv, _NONE, False)
    cid = one_id(args, command)
    rt = open_runtime(g)
    status = rt.state(cid).status
    if status != required:
        raise Conflict(f"container {cid} is {status}, not {required}")
    if command == "pause":
        rt.pause(cid)
    else:
        rt.resume(cid)
    return 0
