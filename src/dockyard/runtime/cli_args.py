"""`dockyard-runtime`'s argv grammar: runc's option spellings, container ids and signals.

A table per command maps each spelling to its destination and kind ("flag" options take no
value); `parse` reads `--opt value`, `--opt=value`, `-o value` and Go's `-opt`. Every error
is a `UsageError`, which `cli.main` prints as one line with exit status 1, as runc does.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ~5 ms at import; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any

    Options = dict[str, Any]
    _OptTable = dict[str, tuple[str, str]]  # spelling -> (dest, "flag" | "value")


DEFAULT_ROOT = "/run/dockyard-runtime"  # --root


class UsageError(Exception):
    """Bad command line: printed as one line, exit 1."""


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


def one_id(args: list[str], command: str, extra: int = 0) -> str:
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
