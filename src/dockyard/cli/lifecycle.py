"""start, stop, kill, restart, rm, wait, pause, unpause, rename, container prune."""

from __future__ import annotations

import sys

from ..engine import control, lifecycle
from ..errors import DockyardError, NotModified
from .args import Parser, confirm, engine


def _each(refs: list[str], action, quiet: bool = False) -> int:  # type: ignore[no-untyped-def]
    """Apply `action` to each container; print each ref on success, errors on stderr (Docker)."""
    eng = engine()
    failed = False
    for ref in refs:
        try:
            c = eng.containers.resolve(ref)
            action(eng, c)
            if not quiet:
                print(ref)
        except NotModified:
            if not quiet:
                print(ref)
        except DockyardError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_start(argv: list[str]) -> int:
    p = Parser("start", usage="dockyard start [OPTIONS] CONTAINER [CONTAINER...]", description="Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("containers", nargs="+")
    ns = p.parse_args(argv)
    if ns.attach or ns.interactive:
        if len(ns.containers) > 1:
            from ..errors import InvalidArgument

            raise InvalidArgument("you cannot start and attach multiple containers at once")
        from .attach import session, _finish

        eng = engine()
        c = eng.containers.resolve(ns.containers[0])
        holder: dict[str, object] = {}
        want_stdin = ns.interactive and bool(c.config.get("OpenStdin"))

        def before(run_dir: str) -> None:
            holder["sock"], holder["pump"] = session(run_dir, c, ns.detach_keys, want_stdin, cleanup=True,
                                                     streams=(True, True))
        c = lifecycle.start(eng, c, before_start=before)
        return _finish(eng, c, holder)
    return _each(ns.containers, lambda e, c: lifecycle.start(e, c))


def cmd_stop(argv: list[str]) -> int:
    p = Parser("stop", usage="dockyard stop [OPTIONS] CONTAINER [CONTAINER...]", description="Stop one or more running containers")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, help="Seconds to wait before killing the container")
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("containers", nargs="+")
    ns = p.parse_args(argv)
    return _each(ns.containers, lambda e, c: control.stop(e, c, ns.time, ns.signal))


def cmd_restart(argv: list[str]) -> int:
    p = Parser("restart", usage="dockyard restart [OPTIONS] CONTAINER [CONTAINER...]", description="Restart one or more containers")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, help="Seconds to wait before killing the container")
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("containers", nargs="+")
    ns = p.parse_args(argv)

    def restart(e, c):  # type: ignore[no-untyped-def]
        c = control.stop(e, c, ns.time, ns.signal)
        c = e.containers.load(c.id)
        lifecycle.start(e, c)
    return _each(ns.containers, restart)


def cmd_kill(argv: list[str]) -> int:
    p = Parser("kill", usage="dockyard kill [OPTIONS] CONTAINER [CONTAINER...]", description="Kill one or more running containers")
    p.add_argument("-s", "--signal", help='Signal to send to the container (default "KILL")')
    p.add_argument("containers", nargs="+")
    ns = p.parse_args(argv)
    control.parse_signal(ns.signal)
    return _each(ns.containers, lambda e, c: control.kill(e, c, ns.signal))


def cmd_rm(argv: list[str]) -> int:
    p = Parser("rm", usage="dockyard rm [OPTIONS] CONTAINER [CONTAINER...]", description="Remove one or more containers")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    p.add_argument("containers", nargs="+")
    ns = p.parse_args(argv)
    return _each(ns.containers, lambda e, c: lifecycle.remove(e, c, ns.force, volumes=ns.volumes))


def cmd_wait(argv: list[str]) -> int:
    p = Parser("wait", usage="dockyard wait CONTAINER [CONTAINER...]", description="Block until one or more containers stop, then print their exit codes")
    p.add_argument("containers", nargs="+")
    ns = p.parse_args(argv)
    eng = engine()
    failed = False
    for ref in ns.containers:
        try:
            c = eng.containers.resolve(ref)
            print(lifecycle.wait_exit(eng, c), flush=True)
        except DockyardError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_pause(argv: list[str]) -> int:
    p = Parser("pause", usage="dockyard pause CONTAINER [CONTAINER...]", description="Pause all processes within one or more containers")
    p.add_argument("containers", nargs="+")
    return _each(p.parse_args(argv).containers, control.pause)


def cmd_unpause(argv: list[str]) -> int:
    p = Parser("unpause", usage="dockyard unpause CONTAINER [CONTAINER...]", description="Unpause all processes within one or more containers")
    p.add_argument("containers", nargs="+")
    return _each(p.parse_args(argv).containers, control.unpause)


def cmd_rename(argv: list[str]) -> int:
    p = Parser("rename", usage="dockyard rename CONTAINER NEW_NAME", description="Rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    ns = p.parse_args(argv)
    eng = engine()
    control.rename(eng, eng.containers.resolve(ns.container), ns.new_name)
    return 0


def cmd_prune(argv: list[str]) -> int:
    p = Parser("container prune", usage="dockyard container prune [OPTIONS]", description="Remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")
    ns = p.parse_args(argv)
    if not ns.force and not confirm("all stopped containers"):
        return 0
    eng = engine()
    from .. import _util
    from ..engine.query import label_match

    removed = []
    until = None
    labels = []
    for f in ns.filter:
        k, _, v = f.partition("=")
        if k == "until":
            from ..engine.logs import parse_time

            until = parse_time(v)
        elif k == "label":
            labels.append(v)
    for c in eng.containers.all():
        c = lifecycle.refresh(eng, c)
        if c.running:
            continue
        if until is not None and _util.parse_rfc3339(c.doc["Created"]) >= until:
            continue
        if labels and not all(label_match(c.config.get("Labels") or {}, l) for l in labels):
            continue
        try:
            lifecycle.remove(eng, c)
            removed.append(c.id)
        except DockyardError as e:
            print(f"Error: {e}", file=sys.stderr)
    if removed:
        print("Deleted Containers:")
        for cid in removed:
            print(cid)
        print()
    print("Total reclaimed space: 0B")
    return 0
