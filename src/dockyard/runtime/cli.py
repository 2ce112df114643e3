"""`dockyard-runtime`: runc's command line over `dockyard.runtime.api.Runtime`.

    dockyard-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND ...

Commands: create, start, state, kill, delete, run, list, pause, resume, ps, features, version.
Errors are one line on stderr (and a record in --log, where containerd looks) and exit 1,
as runc does.

This module is the entry point (global options, dispatch, error reporting) and answers
help, version and features itself. It is imported on every call, so it imports only what
the chosen command needs: `--version` touches nothing but the argv grammar and
`dockyard.__version__`. The other commands live beside it, a module imported only when one
of its commands is chosen (`COMMANDS`):

    cli_args        the argv grammar: option tables, `parse`, container ids, signal names
    cli_lifecycle   create, start, state, kill, delete, pause, resume (and the bundle,
                    console-socket and --pid-file handling `run` shares with create)
    cli_run         run: create and start, then in the foreground forward signals, proxy a pty
    cli_query       list and ps
"""

from __future__ import annotations

import os
import sys

# the argv grammar; re-exported, callers and tests spell it cli.parse, cli.UsageError, ...
from .cli_args import (  # noqa: F401
    _GLOBAL, _NONE, _PS, _RUN, DEFAULT_ROOT, UsageError, check_id, parse, parse_signal,
)

TYPE_CHECKING = False  # `typing` costs ~5 ms at import; only the type checker needs it
if TYPE_CHECKING:
    from typing import Callable, NoReturn

    from .cli_args import Options

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


#: command -> "module:function" (modules under dockyard.runtime); imported only when chosen
COMMANDS: dict[str, str] = {
    "create": "cli_lifecycle:cmd_create", "start": "cli_lifecycle:cmd_start",
    "state": "cli_lifecycle:cmd_state", "kill": "cli_lifecycle:cmd_kill",
    "delete": "cli_lifecycle:cmd_delete", "pause": "cli_lifecycle:cmd_pause",
    "resume": "cli_lifecycle:cmd_resume", "run": "cli_run:cmd_run",
    "list": "cli_query:cmd_list", "ps": "cli_query:cmd_ps",
}


# ---------------------------------------------------------------------------
# help, version, features

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


#: the commands this module answers itself
_OWN: dict[str, Callable[[Options, list[str]], int]] = {
    "features": cmd_features, "version": cmd_version, "help": cmd_help, "exec": cmd_exec,
}


def _command(name: str) -> Callable[[Options, list[str]], int]:
    """The function behind command `name` (one of `_OWN` or `COMMANDS`), importing only the
    module that defines it."""
    if name in _OWN:
        return _OWN[name]
    mod_name, func_name = COMMANDS[name].split(":")
    module = f"dockyard.runtime.{mod_name}"
    __import__(module)  # importlib.import_module without importing importlib
    fn: Callable[[Options, list[str]], int] = getattr(sys.modules[module], func_name)
    return fn


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
        if command not in _OWN and command not in COMMANDS:
            raise UsageError(f"No help topic for '{command}'")
        if any(a in ("--help", "-h") for a in cargv):
            return cmd_help(g, [])
        return _command(command)(g, cargv)
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
