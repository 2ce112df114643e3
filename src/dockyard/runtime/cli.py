"""`dockyard-runtime`: runc's command line over `dockyard.runtime.api.Runtime`.

    dockyard-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND ...

Commands: create, start, state, kill, delete, run, list, pause, resume, ps, features, version.
Errors are one line on stderr (and a record in --log, where containerd looks) and exit 1,
as runc does. This module is imported on every call, so it imports only what the chosen
command needs: `--version` touches nothing but `dockyard.__version__`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` costs ~5 ms at import; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

    from .api import Runtime

    Options = dict[str, Any]
    _OptTable = dict[str, tuple[str, str]]  # spelling -> (dest, "flag" | "value")

DEFAULT_ROOT = "/run/dockyard-runtime"
SPEC_VERSION = "1.0.2"

USAGE = """\
usage: dockyard-runtime [global options] COMMAND [options] ARGS

An OCI runtime with runc's command line (Dockyard's own runtime).

global options:
  --root DIR          state directory (default /run/dockyard-runtime)
  --log FILE          append errors to FILE (containerd reads them from there)
  --log-format FMT    text (default) or json
  --debug             accepted for compatibility
  --version, -v       print the version

commands:
  create [--bundle DIR] [--pid-file F] [--console-socket S] ID
  start ID                 release a created container's command
  state ID                 print the OCI state JSON
  kill [--all] ID [SIG]    send SIG (default SIGTERM) to the init, or to every process
  delete [--force] ID      remove a stopped (or, with --force, any) container
  run [--bundle DIR] [--pid-file F] [--console-socket S] [--detach] [--keep] ID
  list [--format table|json] [--quiet]
  pause ID / resume ID     freeze / thaw every process of the container
  ps [--format table|json] ID [ps options]
  features                 print the supported features as JSON
  version                  print the version
"""


class UsageError(Exception):
    """Bad command line: printed as one line, exit 1."""


# ---------------------------------------------------------------------------
# argv parsing: a table per command, runc's spellings. "flag" options take no value.

_GLOBAL: _OptTable = {
    "--root": ("root", "value"), "--log": ("log", "value"), "--log-format": ("log_format", "value"),
    "--debug": ("debug", "flag"), "--systemd-cgroup": ("systemd_cgroup", "flag"),
    "--rootless": ("rootless", "value"), "--criu": ("criu", "value"),
    "--help": ("help", "flag"), "-h": ("help", "flag"),
    "--version": ("version", "flag"), "-v": ("version", "flag"),
}
_CREATE: _OptTable = {
    "--bundle": ("bundle", "value"), "-b": ("bundle", "value"),
    "--pid-file": ("pid_file", "value"), "--console-socket": ("console_socket", "value"),
    "--no-pivot": ("no_pivot", "flag"), "--no-new-keyring": ("no_new_keyring", "flag"),
    "--preserve-fds": ("preserve_fds", "value"), "--pidfd-socket": ("pidfd_socket", "value"),
}
_RUN: _OptTable = {**_CREATE, "--detach": ("detach", "flag"), "-d": ("detach", "flag"),
                   "--keep": ("keep", "flag")}
_KILL: _OptTable = {"--all": ("all", "flag"), "-a": ("all", "flag")}
_DELETE: _OptTable = {"--force": ("force", "flag"), "-f": ("force", "flag")}
_LIST: _OptTable = {"--format": ("format", "value"), "-f": ("format", "value"),
                    "--quiet": ("quiet", "flag"), "-q": ("quiet", "flag")}
_PS: _OptTable = {"--format": ("format", "value"), "-f": ("format", "value")}
_NONE: _OptTable = {}


def parse(argv: list[str], table: _OptTable, stop_at_positional: bool) -> tuple[Options, list[str]]:
    """Parse `--opt value`, `--opt=value`, `-o value` and Go's `-opt` spellings.

    Options may follow positionals (runc's callers put them first, people do not), unless
    `stop_at_positional` (global options before the command; `ps ID -ef`)."""
    opts: Options = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            rest.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            if stop_at_positional:
                rest.extend(argv[i:])
                break
            continue
        name, eq, value = arg.partition("=")
        if name not in table and not name.startswith("--") and "--" + name[1:] in table:
            name = "--" + name[1:]  # Go flag style: -bundle
        if name not in table:
            raise UsageError(f"flag provided but not defined: {arg.partition('=')[0]}")
        dest, kind = table[name]
        if kind == "flag":
            if eq:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise UsageError(f"invalid boolean value {value!r} for {name}")
                opts[dest] = value.lower() in ("true", "1")
            else:
                opts[dest] = True
            continue
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: {name}")
            value = argv[i]
            i += 1
        opts[dest] = value
    return opts, rest


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid: str) -> str:
    """runc's rule (^[\\w+-.]+$, and not . or ..): the id names a directory under --root."""
    if not cid or cid in (".", "..") or not set(cid) <= _ID_CHARS:
        raise UsageError(f"invalid container id {cid!r}")
    return cid


def _one_id(args: list[str], command: str, extra: int = 0) -> str:
    if not args:
        raise UsageError(f'"{command}" requires a container id')
    if len(args) > 1 + extra:
        raise UsageError(f'"{command}" takes {"at most " if extra else ""}{1 + extra} argument(s), got {len(args)}')
    return check_id(args[0])


def parse_signal(text: str) -> int:
    """runc's spellings: 9, KILL, SIGKILL, kill, RTMIN+3."""
    import signal

    if text.isdigit():
        n = int(text)
        if 0 < n < signal.NSIG:
            return n
        raise UsageError(f"invalid signal: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, attr, sign in (("SIGRTMIN+", "SIGRTMIN", 1), ("SIGRTMAX-", "SIGRTMAX", -1)):
        if name.startswith(base) and name[len(base):].isdigit():
            n = int(getattr(signal, attr)) + sign * int(name[len(base):])
            if int(signal.SIGRTMIN) <= n <= int(signal.SIGRTMAX):
                return n
            raise UsageError(f"invalid signal: {text}")
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None


# ---------------------------------------------------------------------------
# helpers

def _runtime(g: Options) -> Runtime:
    from .api import Runtime

    return Runtime(g.get("root") or DEFAULT_ROOT)


def _read_config(bundle: str) -> dict[str, Any]:
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


def _check_console(spec: dict[str, Any], console_socket: str | None, detached: bool) -> None:
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


def _check_create_opts(o: Options) -> None:
    if o.get("preserve_fds") not in (None, "0"):
        raise UsageError("--preserve-fds is not supported by dockyard-runtime")
    if o.get("pidfd_socket"):
        raise UsageError("--pidfd-socket is not supported by dockyard-runtime")


def _create(g: Options, o: Options, cid: str, console_socket: str | None) -> tuple[Runtime, int]:
    bundle = os.path.abspath(o.get("bundle") or ".")
    rt = _runtime(g)
    pid = rt.create(cid, bundle, stdio=(0, 1, 2), console_socket=console_socket)
    if o.get("pid_file"):
        try:
            _write_pid_file(o["pid_file"], pid)
        except BaseException:
            _destroy_quietly(rt, cid)
            raise
    return rt, pid


def _destroy_quietly(rt: Runtime, cid: str) -> None:
    try:
        rt.delete(cid, force=True)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass


# ---------------------------------------------------------------------------
# commands

def cmd_create(g: Options, argv: list[str]) -> int:
    o, args = parse(argv, _CREATE, False)
    cid = _one_id(args, "create")
    _check_create_opts(o)
    bundle = os.path.abspath(o.get("bundle") or ".")
    cs = os.path.abspath(o["console_socket"]) if o.get("console_socket") else None
    _check_console(_read_config(bundle), cs, detached=True)
    _create(g, o, cid, cs)
    return 0


def cmd_start(g: Options, argv: list[str]) -> int:
    _, args = parse(argv, _NONE, False)
    _runtime(g).start(_one_id(args, "start"))
    return 0


def cmd_state(g: Options, argv: list[str]) -> int:
    import json

    _, args = parse(argv, _NONE, False)
    cid = _one_id(args, "state")
    rt = _runtime(g)
    print(json.dumps(_state_doc(rt, cid), indent=2))
    return 0


def _state_doc(rt: Runtime, cid: str) -> dict[str, Any]:
    st = rt.state(cid)
    doc: dict[str, Any] = st.to_oci()
    raw = rt._load(cid)  # the created time is recorded but not part of State
    doc["rootfs"] = _rootfs_of(st.bundle)
    doc["created"] = raw.get("created", "")
    doc["owner"] = ""
    return doc


def _rootfs_of(bundle: str) -> str:
    try:
        root = _read_config(bundle).get("root", {}).get("path", "")
    except UsageError:
        return ""
    return root if not root or os.path.isabs(root) else os.path.join(bundle, root)


def cmd_kill(g: Options, argv: list[str]) -> int:
    o, args = parse(argv, _KILL, False)
    cid = _one_id(args, "kill", extra=1)
    sig = parse_signal(args[1]) if len(args) > 1 else 15
    _runtime(g).kill(cid, sig, all_processes=bool(o.get("all")))
    return 0


def cmd_delete(g: Options, argv: list[str]) -> int:
    from ..errors import NotFound

    o, args = parse(argv, _DELETE, False)
    cid = _one_id(args, "delete")
    rt = _runtime(g)
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
    from ..errors import Conflict

    _, args = parse(argv, _NONE, False)
    cid = _one_id(args, "pause")
    rt = _runtime(g)
    status = rt.state(cid).status
    if status != "running":
        raise Conflict(f"container {cid} is {status}, not running")
    rt.pause(cid)
    return 0


def cmd_resume(g: Options, argv: list[str]) -> int:
    from ..errors import Conflict

    _, args = parse(argv, _NONE, False)
    cid = _one_id(args, "resume")
    rt = _runtime(g)
    status = rt.state(cid).status
    if status != "paused":
        raise Conflict(f"container {cid} is {status}, not paused")
    rt.resume(cid)
    return 0


def cmd_list(g: Options, argv: list[str]) -> int:
    import json

    o, args = parse(argv, _LIST, False)
    if args:
        raise UsageError('"list" takes no arguments')
    fmt = o.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r}")
    rt = _runtime(g)
    docs = []
    for cid in rt.list():
        try:
            docs.append(_state_doc(rt, cid))
        except Exception:  # noqa: BLE001 - a container deleted meanwhile is not listed
            continue
    if o.get("quiet"):
        for d in docs:
            print(d["id"])
    elif fmt == "json":
        print(json.dumps(docs))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], _owner(rt, d["id"]))
                 for d in docs]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths)) + "   " + r[-1])
    return 0


def _owner(rt: Runtime, cid: str) -> str:
    import pwd

    try:
        uid = os.stat(os.path.join(str(rt.root), cid)).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return "#?"


def cmd_ps(g: Options, argv: list[str]) -> int:
    import json

    from ..errors import Conflict

    o, args = parse(argv, _PS, True)
    if not args:
        raise UsageError('"ps" requires a container id')
    cid, ps_args = check_id(args[0]), args[1:]
    fmt = o.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r}")
    rt = _runtime(g)
    if rt.state(cid).status == "stopped":
        raise Conflict(f"container {cid} is not running")
    cg = rt._load(cid).get("cgroupsPath")
    pids: list[int] = []
    if cg:
        from .cgroups import open_manager

        pids = open_manager(cg).pids()
    if fmt == "json":
        print(json.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise UsageError(f"ps: {out.stderr.strip() or 'failed'}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise UsageError("ps: no PID column in the output of ps") from None
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def cmd_run(g: Options, argv: list[str]) -> int:
    o, args = parse(argv, _RUN, False)
    cid = _one_id(args, "run")
    _check_create_opts(o)
    bundle = os.path.abspath(o.get("bundle") or ".")
    spec = _read_config(bundle)
    detach = bool(o.get("detach"))
    cs = os.path.abspath(o["console_socket"]) if o.get("console_socket") else None
    _check_console(spec, cs, detached=detach)
    terminal = bool(spec["process"].get("terminal"))
    if detach:
        rt, _pid = _create(g, o, cid, cs)
        _start_or_destroy(rt, cid)
        return 0

    from ..kernel.syscalls import set_child_subreaper

    # create forks the init from a child that exits: be the subreaper it is reparented to,
    # so that we can wait for it (must happen before the fork).
    set_child_subreaper()
    forwarder = _Forwarder(resize_master=terminal and cs is None)  # signals during create wait
    console = None
    if terminal and cs is None:
        console = _ConsoleListener()
        cs = console.path
    try:
        rt, pid = _create(g, o, cid, cs)
    except BaseException:
        if console is not None:
            console.close()
        raise
    try:
        master = console.receive() if console is not None else None
        _start_or_destroy(rt, cid)
        forwarder.attach(pid, master)
        if master is not None:
            status = _proxy_console(master, pid)
        else:
            status = _reap_until(pid)  # type: ignore[assignment]
    finally:
        if console is not None:
            console.close()
        if not o.get("keep"):
            _destroy_quietly(rt, cid)
    assert status is not None
    return status


def _start_or_destroy(rt: Runtime, cid: str) -> None:
    try:
        rt.start(cid)
    except BaseException:
        _destroy_quietly(rt, cid)
        raise


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap_until(pid: int, block: bool = True) -> int | None:
    """Reap children (we are a subreaper: strays come to us too) until `pid` is reaped."""
    while True:
        try:
            got, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            raise RuntimeError(f"container init {pid} is not our child") from None
        if got == pid:
            return _exit_code(status)
        if got == 0:
            return None


class _Forwarder:
    """`run` in the foreground: every signal we get goes to the container's init (as runc
    does); those that arrive before the init exists are held and sent once it does. With
    our own pty, SIGWINCH resizes it instead."""

    def __init__(self, resize_master: bool) -> None:
        import signal

        self.owner = os.getpid()
        self.pid: int | None = None
        self.master: int | None = None
        self.pending: list[int] = []
        skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGURG, signal.SIGPIPE}
        if resize_master:
            skip.add(signal.SIGWINCH)
            signal.signal(signal.SIGWINCH, self._resize)
        for s in range(1, signal.NSIG):
            if s in skip:
                continue
            try:
                signal.signal(s, self._forward)
            except (OSError, ValueError):
                pass

    def attach(self, pid: int, master: int | None) -> None:
        self.pid, self.master = pid, master
        pending, self.pending = self.pending, []
        for sig in pending:
            self._forward(sig, None)
        if master is not None:
            self._resize()

    def _forward(self, sig: int, _frame: Any) -> None:
        if os.getpid() != self.owner:
            # in a process forked by create (the init before its exec): act as if unhandled
            import signal

            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return
        if self.pid is None:
            self.pending.append(sig)
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _resize(self, _sig: int = 0, _frame: Any = None) -> None:
        if self.master is None:
            return
        import fcntl
        import termios

        try:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass


class _ConsoleListener:
    """`run` with a terminal and no --console-socket: receive the pty master ourselves."""

    def __init__(self) -> None:
        import socket
        import tempfile

        self._dir = tempfile.mkdtemp(prefix="dockyard-runtime-console-")
        self.path = os.path.join(self._dir, "console.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(1)

    def receive(self) -> int:
        import socket

        conn, _ = self._sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise RuntimeError("the container's init sent no console")
        return fds[0]

    def close(self) -> None:
        import shutil

        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _proxy_console(master: int, pid: int) -> int:
    """Copy our stdin to the pty and the pty to our stdout until the init exits."""
    import select
    import signal
    import termios
    import tty

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    signal.set_wakeup_fd(wake_w)
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    os.set_blocking(master, False)  # never block on the pty while the container blocks on us
    to_master = bytearray()
    stdin_open = True
    code: int | None = None
    try:
        while True:
            if code is None:
                code = _reap_until(pid, block=False)
            rlist = [master, wake_r] + ([0] if stdin_open and len(to_master) < 65536 else [])
            wlist = [master] if to_master else []
            try:
                ready, writable, _ = select.select(rlist, wlist, [], 0.5 if code is None else 0.05)
            except InterruptedError:
                continue
            if not ready and not writable and code is not None:
                break  # the init is gone and the pty is quiet
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    to_master += data
                else:
                    stdin_open = False
            if master in writable:
                try:
                    del to_master[:os.write(master, to_master)]
                except BlockingIOError:
                    pass
                except OSError:
                    to_master.clear()
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every slave closed, the container is gone
                    data = b""
                if not data:
                    if code is None:
                        code = _reap_until(pid)
                    break
                os.write(1, data)
    finally:
        signal.set_wakeup_fd(-1)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
        os.close(wake_r)
        os.close(wake_w)
    assert code is not None
    return code


def cmd_features(g: Options, argv: list[str]) -> int:
    """runc's `features` document (containerd parses it): what this runtime implements."""
    import json

    from ..kernel.caps import CAPS
    from .rootfs import _FLAGS, _PROPAGATION

    parse(argv, _NONE, False)
    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": [],
        "mountOptions": sorted(set(_FLAGS) | set(_PROPAGATION)),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": list(CAPS),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.dockyard.runtime.version": _version()},
    }
    print(json.dumps(doc, indent=4))
    return 0


def _version() -> str:
    from .. import __version__

    return __version__


def cmd_version(g: Options, argv: list[str]) -> int:
    print(f"dockyard-runtime version {_version()}\nspec: {SPEC_VERSION}")
    return 0


def cmd_help(g: Options, argv: list[str]) -> int:
    sys.stdout.write(USAGE)
    return 0


def cmd_exec(g: Options, argv: list[str]) -> int:
    raise UsageError("exec is not supported by dockyard-runtime yet")


COMMANDS: dict[str, Callable[[Options, list[str]], int]] = {
    "create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill,
    "delete": cmd_delete, "run": cmd_run, "list": cmd_list, "ps": cmd_ps,
    "pause": cmd_pause, "resume": cmd_resume, "features": cmd_features,
    "version": cmd_version, "help": cmd_help, "exec": cmd_exec,
}


# ---------------------------------------------------------------------------
# entry point

def _log_error(g: Options, message: str) -> None:
    """Append the error to --log in runc's formats (containerd reads the last error there)."""
    path = g.get("log")
    if not path:
        return
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if g.get("log_format") == "json":
        import json

        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f'time="{now}" level=error msg="{message.replace(chr(34), chr(92) + chr(34))}"'
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _fail(g: Options, message: str) -> NoReturn:
    message = " ".join(str(message).split()) or "unknown error"
    _log_error(g, message)
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except OSError:
        pass
    raise SystemExit(1)


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    g: Options = {}
    try:
        g, rest = parse(args, _GLOBAL, True)
        if g.get("version"):
            return cmd_version(g, [])
        if g.get("help") or not rest:
            return cmd_help(g, [])
        if g.get("log_format") not in (None, "text", "json"):
            raise UsageError(f"invalid log-format: {g['log_format']}")
        command, cargv = rest[0], rest[1:]
        fn = COMMANDS.get(command)
        if fn is None:
            raise UsageError(f"No help topic for '{command}'")
        if any(a in ("--help", "-h") for a in cargv):
            return cmd_help(g, [])
        return fn(g, cargv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _fail(g, "interrupted")
    except BaseException as e:  # noqa: BLE001 - one line, never a traceback
        if os.environ.get("DOCKYARD_RUNTIME_TRACEBACK"):
            import traceback

            traceback.print_exc()
        _fail(g, _describe(e))


if __name__ == "__main__":
    sys.exit(main())
