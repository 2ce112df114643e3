"""`dockyard` entry point: global flags, command dispatch with lazy imports, error mapping."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

#: command -> "module:function" (modules under dockyard.cli); imported only when used
COMMANDS: dict[str, str] = {
    "run": "run:cmd_run", "create": "run:cmd_create", "start": "lifecycle:cmd_start",
    "stop": "lifecycle:cmd_stop", "kill": "lifecycle:cmd_kill", "restart": "lifecycle:cmd_restart",
    "rm": "lifecycle:cmd_rm", "wait": "lifecycle:cmd_wait", "pause": "lifecycle:cmd_pause",
    "unpause": "lifecycle:cmd_unpause", "rename": "lifecycle:cmd_rename",
    "ps": "query:cmd_ps", "inspect": "query:cmd_inspect", "logs": "logs:cmd_logs", "top": "query:cmd_top",
    "stats": "query:cmd_stats", "attach": "attach:cmd_attach", "exec": "exec:cmd_exec",
    "cp": "files:cmd_cp", "diff": "files:cmd_diff", "export": "files:cmd_export", "commit": "files:cmd_commit",
    "container-prune": "lifecycle:cmd_prune", "container-inspect": "query:cmd_container_inspect",
    "import": "images:cmd_import", "images": "images:cmd_images", "tag": "images:cmd_tag",
    "rmi": "images:cmd_rmi", "image-inspect": "images:cmd_image_inspect",
    "build": "build:cmd_build", "history": "imageio:cmd_history", "save": "imageio:cmd_save",
    "load": "imageio:cmd_load", "image-prune": "imageio:cmd_image_prune", "system-df": "imageio:cmd_system_df",
    "network-create": "network:cmd_network_create", "network-ls": "network:cmd_network_ls",
    "network-inspect": "network:cmd_network_inspect", "network-rm": "network:cmd_network_rm",
    "network-prune": "network:cmd_network_prune", "network-connect": "network:cmd_network_connect",
    "network-disconnect": "network:cmd_network_disconnect", "port": "network:cmd_port",
    "info": "system:cmd_info", "version": "system:cmd_version", "system-_exited": "system:cmd_exited",
}
COMMANDS["builder-prune"] = "build:cmd_builder_prune"
# volumes (cli/volumes.py): `volume create|ls|inspect|rm|prune`
COMMANDS["volume"] = "volumes:cmd_volume"
# the Engine API server (cli/serve.py)
COMMANDS["serve"] = "serve:cmd_serve"
# registries (cli/registry.py): pull, push, login, logout, manifest inspect
COMMANDS.update({"pull": "registry:cmd_pull", "push": "registry:cmd_push", "login": "registry:cmd_login",
                 "logout": "registry:cmd_logout", "manifest-inspect": "registry:cmd_manifest_inspect"})
#: two-word forms (`docker container ls`) -> command
SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("container", "ls"): "ps", ("container", "list"): "ps", ("container", "ps"): "ps",
    ("container", "prune"): "container-prune", ("container", "inspect"): "container-inspect",
    ("image", "ls"): "images", ("image", "list"): "images", ("image", "inspect"): "image-inspect",
    ("image", "rm"): "rmi", ("image", "remove"): "rmi", ("image", "tag"): "tag", ("image", "import"): "import",
    ("system", "info"): "info", ("system", "df"): "system-df", ("image", "prune"): "image-prune",
    ("image", "history"): "history", ("image", "save"): "save", ("image", "load"): "load",
    ("image", "build"): "build", ("builder", "build"): "build", ("system", "_exited"): "system-_exited", ("container", "rm"): "rm",
    ("container", "remove"): "rm",
}
for _c in ("create", "ls", "inspect", "rm", "prune", "connect", "disconnect"):
    SUBCOMMANDS[("network", _c)] = f"network-{_c}"
SUBCOMMANDS[("network", "list")] = "network-ls"
SUBCOMMANDS[("network", "remove")] = "network-rm"
SUBCOMMANDS[("container", "port")] = "port"
SUBCOMMANDS[("builder", "prune")] = "builder-prune"
SUBCOMMANDS.update({("image", "pull"): "pull", ("image", "push"): "push", ("manifest", "inspect"): "manifest-inspect"})
for _c in ("run", "create", "start", "stop", "kill", "restart", "wait", "pause", "unpause", "rename", "logs",
           "top", "stats", "attach", "exec", "cp", "diff", "export", "commit"):
    SUBCOMMANDS[("container", _c)] = _c

USAGE = """Usage:  dockyard [OPTIONS] COMMAND

A Docker-compatible container engine, in Python

Options:
      --root string      Data root (default /var/lib/dockyard, or $DOCKYARD_ROOT)
      --runroot string   Runtime state root (default /run/dockyard, or $DOCKYARD_RUNROOT)
  -v, --version          Print version information and quit

Commands:
  run, create, start, stop, kill, restart, rm, wait, pause, unpause, rename,
  ps, inspect, logs, top, stats, attach, exec, cp, diff, export, commit,
  import, images, tag, rmi, port, info, version, pull, push, login, logout
Management commands: container, image, manifest, network, system, volume

Run 'dockyard COMMAND --help' for more information on a command.
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("--root", "--runroot") and args:
            os.environ["DOCKYARD_ROOT" if opt == "--root" else "DOCKYARD_RUNROOT"] = args.pop(0)
        elif opt.startswith("--root="):
            os.environ["DOCKYARD_ROOT"] = opt.split("=", 1)[1]
        elif opt.startswith("--runroot="):
            os.environ["DOCKYARD_RUNROOT"] = opt.split("=", 1)[1]
        elif opt in ("-v", "--version"):
            from dockyard import __version__

            print(f"Dockyard version {__version__}")
            return 0
        elif opt in ("-h", "--help"):
            print(USAGE)
            return 0
        elif opt in ("-D", "--debug"):
            os.environ["DOCKYARD_DEBUG"] = "1"
        else:
            print(f"unknown flag: {opt}\nSee 'dockyard --help'.", file=sys.stderr)
            return 125
    if not args:
        print(USAGE)
        return 0
    cmd = args.pop(0)
    if cmd in ("container", "image", "system", "builder", "network", "manifest") and args and (cmd, args[0]) in SUBCOMMANDS:
        cmd = SUBCOMMANDS[(cmd, args.pop(0))]
    elif cmd in ("container", "image", "system", "network", "manifest"):
        print(f"Usage:  dockyard {cmd} COMMAND\n\nRun 'dockyard {cmd} COMMAND --help' for more information.",
              file=sys.stderr if args else sys.stdout)
        return 125 if args else 0
    target = COMMANDS.get(cmd)
    if target is None:
        print(f"dockyard: '{cmd}' is not a dockyard command.\nSee 'dockyard --help'", file=sys.stderr)
        return 125
    mod_name, func_name = target.split(":")
    if cmd not in _KEEP_GC:
        # A short-lived command makes little cyclic garbage; the collector's passes over the
        # objects that imports create cost `run` several ms. Long-lived commands keep it.
        import gc

        gc.disable()
        _fast_exit[0] = True
    if cmd == "run":
        # First thing: the first no-op migration waits an RCU grace period while holding the
        # kernel's cgroup mutex, which the container's cgroup mkdirs need; begun here, its
        # wait overlaps the imports (runtime/cgroups/warm.py).
        from dockyard.runtime.cgroups import warm

        warm.start()
    module = f"dockyard.cli.{mod_name}"
    __import__(module)  # importlib.import_module without importing importlib (and warnings)
    func: Callable[[list[str]], int] = getattr(sys.modules[module], func_name)
    return run_command(func, args, cmd)


#: set by main() for a short-lived command: `entry` may skip the interpreter's teardown
_fast_exit = [False]


def entry() -> None:
    """The launchers' entry point: `main()`, then, after a short-lived command (one that
    runs without the garbage collector, see `_KEEP_GC`), leave with `os._exit` once stdout
    and stderr are flushed. The interpreter's teardown (clearing every module, a last
    collection) costs `dockyard run` ~3 ms of its time and CPU, and such a command keeps no
    file open for writing and registers no exit handlers. Tests call `main()` itself."""
    code = main()
    if _fast_exit[0]:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(int(code) & 0xFF)
    sys.exit(code)


#: commands that may run for long or move much data keep the cyclic garbage collector (pull
#: and push turn it on once layers move: `engine.distmeta.moving_data`)
_KEEP_GC = frozenset(("serve", "build", "load", "save", "import", "export", "commit", "logs",
                      "attach", "stats", "cp", "events"))

#: commands whose engine errors exit 125 (Docker: `run` and `create`); the others exit 1
_EXIT_125 = ("run", "create")


def run_command(func: Callable[[list[str]], int], args: list[str], cmd: str = "") -> int:
    from dockyard.errors import DockyardError, ExecFailed

    try:
        return func(args) or 0
    except DockyardError as e:
        print(f"Error: {e}", file=sys.stderr)
        if isinstance(e, ExecFailed) or cmd in _EXIT_125:
            return e.exit_code
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        if os.environ.get("DOCKYARD_DEBUG"):
            raise
        print(f"Error: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    raise SystemExit(main())
