"""`dockyard logs`."""

from __future__ import annotations

import sys

from ..engine import logs
from ..errors import InvalidArgument
from .args import Parser, engine


def cmd_logs(argv: list[str]) -> int:
    p = Parser("logs", usage="dockyard logs [OPTIONS] CONTAINER", description="Fetch the logs of a container")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
    p.add_argument("--until", help="Show logs before a timestamp or relative")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("container")
    ns = p.parse_args(argv)
    tail = None
    if ns.tail != "all":
        try:
            tail = int(ns.tail)
        except ValueError:
            raise InvalidArgument(f'invalid value for "tail": {ns.tail}') from None
    eng = engine()
    c = eng.containers.resolve(ns.container)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for e in logs.read(eng, c, ns.follow, tail, logs.parse_time(ns.since), logs.parse_time(ns.until)):
        target = err if e.stream == "stderr" else out
        if ns.timestamps:
            target.write(e.time.encode() + b" ")
        target.write(e.data)
        if ns.follow:
            target.flush()
    out.flush()
    err.flush()
    return 0
