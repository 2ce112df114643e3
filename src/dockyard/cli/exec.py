"""`dockyard exec`."""

from __future__ import annotations

import sys

from ..engine import execs, stream
from .args import Parser, engine
from .attach import _winsize


def cmd_exec(argv: list[str]) -> int:
    from .args import REMAINDER

    p = Parser("exec", usage="dockyard exec [OPTIONS] CONTAINER COMMAND [ARG...]",
               description="Execute a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    p.add_argument("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("container")
    p.add_argument("command", nargs=REMAINDER)
    ns = p.parse_args(argv)
    if not ns.command:
        p.error('"dockyard exec" requires at least 2 arguments.')
    from .runflags import _env_files

    eng = engine()
    c = eng.containers.resolve(ns.container)
    opts = execs.ExecOptions(cmd=tuple(ns.command), tty=ns.tty, interactive=ns.interactive, detach=ns.detach,
                             env=tuple(_env_files(ns.env_file) + ns.env), workdir=ns.workdir, user=ns.user,
                             privileged=ns.privileged,
                             console_size=(_winsize(sys.stdout.fileno()) or _winsize(0)) if ns.tty else None)
    if ns.detach:
        execs.create_and_start(eng, c, opts)
        return 0
    holder: dict[str, object] = {}
    from .attach import session

    view = type(c)(dict(c.doc, Config=dict(c.config, Tty=ns.tty, AttachStdout=True, AttachStderr=True,
                                            StdinOnce=ns.interactive)), c.host_config)

    def before(run_dir: str) -> None:
        holder["sock"], holder["pump"] = session(run_dir, view, ns.detach_keys, ns.interactive)

    execs.create_and_start(eng, c, opts, before_start=before)
    try:
        code = holder["pump"]()  # type: ignore[operator]
    except stream.Detached:
        print("\r\nread escape sequence", file=sys.stderr)
        return 0
    return 126 if code is None else code
