"""The commands' flag parser (cli/flags.py, Docker's rules): exit 125 with one line on bad flags."""

from __future__ import annotations

import sys

from ..errors import InvalidArgument
from .flags import REMAINDER, FlagParser, Namespace

__all__ = ["REMAINDER", "Namespace", "Parser", "UsageError", "confirm", "engine", "print_err"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

if TYPE_CHECKING:
    from ..engine.core import Engine


class UsageError(InvalidArgument):
    pass


class Parser(FlagParser):
    def __init__(self, prog: str, usage: str | None = None, description: str | None = None) -> None:
        super().__init__(prog=f"dockyard {prog}", usage=usage, description=description)
        self.cmd = prog
        # Docker keeps -h free (run -h is --hostname): only --help prints help
        self.add_argument("--help", action="help", help="Print usage")

    def error(self, message: str) -> NoReturn:
        """Docker's usage error: the message, "See 'dockyard CMD --help'." on stderr, exit 125."""
        print(f"{message}\nSee 'dockyard {self.cmd} --help'.", file=sys.stderr)
        raise SystemExit(125)


def engine() -> "Engine":
    from ..engine.core import Engine

    return Engine()


def print_err(msg: str) -> None:
    print(msg, file=sys.stderr)


def confirm(what: str) -> bool:
    """Docker's prune prompt: "WARNING! This will remove <what>." then y/N from stdin."""
    sys.stdout.write(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
