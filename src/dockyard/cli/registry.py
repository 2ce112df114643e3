"""`pull`, `push`, `login`, `logout`, `manifest inspect`, and the progress display they share.

On a terminal the per-layer lines are redrawn in place with ANSI cursor moves, as the docker
CLI's jsonmessage display does; otherwise one plain line per state change (byte counts are
left out, as Docker does).
"""

from __future__ import annotations

import os
import sys
from _thread import allocate_lock  # threading.Lock without importing threading

from ..engine.distmeta import Event, progress_bar
from ..errors import InvalidArgument
from .args import Parser, engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


class Display:
    """Renders progress `Event`s (thread-safe: pull and push workers emit concurrently)."""

    def __init__(self, out: TextIO, terminal: bool | None = None, quiet: bool = False) -> None:
        self.out = out
        self.terminal = out.isatty() if terminal is None else terminal
        self.quiet = quiet
        self.width = _columns() if self.terminal else 0
        self._ids: dict[str, int] = {}
        self._lock = allocate_lock()

    def emit(self, event: Event) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.terminal:
                self._terminal(event)
            elif not (event.has_counts and progress_bar(event.current or 0, event.total or 0, 0)):
                self.out.write(f"{event.id}: {event.status}\n" if event.id else f"{event.status}\n")
            self.out.flush()

    def _terminal(self, event: Event) -> None:
        w = self.out.write
        if not event.id or event.status.startswith("Pulling from"):
            self._ids = {}
            w(f"{event.id}: {event.status}\n" if event.id else f"{event.status}\n")
            return
        line = self._ids.get(event.id)
        if line is None:
            line = self._ids[event.id] = len(self._ids)
            w("\n")
        diff = len(self._ids) - line
        if diff:
            w(f"\x1b[{diff}A")
        bar = progress_bar(event.current or 0, event.total or 0, self.width) if event.has_counts else ""
        w(f"\x1b[2K\r{event.id}: {event.status} {bar}\r")
        if diff:
            w(f"\x1b[{diff}B")


def _columns() -> int:
    """shutil.get_terminal_size's width (COLUMNS, else the terminal's, else 200), without
    importing shutil and the compression modules it loads."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 200  # type: ignore[union-attr]
    except (OSError, AttributeError, ValueError):
        return 200


def cmd_pull(argv: list[str]) -> int:
    p = Parser("pull", usage="dockyard pull [OPTIONS] NAME[:TAG|@DIGEST]",
               description="Download an image from a registry")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", help="Skip image verification (default true)")
    p.add_argument("name")
    ns = p.parse_args(argv)
    from ..engine.distribution import pull
    from ..images.refs import parse_reference

    named = parse_reference(ns.name, default_tag=False)
    if named.is_name_only and not ns.all_tags:
        named = named.with_tag("latest")
    pull(engine(), ns.name, ns.platform, ns.all_tags, Display(sys.stdout, quiet=ns.quiet))
    print(str(named))
    _exiting()
    return 0


def pull_for_run(name: str, quiet: bool) -> None:
    """`run`/`create --pull`: pull output goes to stderr, as Docker's."""
    from ..engine.distribution import pull
    from ..images.refs import parse_reference

    tagged = parse_reference(name).familiar()  # Docker's run pulls name:latest, no "Using default tag"
    pull(engine(), tagged, None, False, Display(sys.stderr, quiet=quiet))


def cmd_push(argv: list[str]) -> int:
    p = Parser("push", usage="dockyard push [OPTIONS] NAME[:TAG]",
               description="Upload an image to a registry")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--compression", default="gzip", choices=("gzip", "zstd"),
                   help="Layer compression (gzip or zstd)")
    p.add_argument("--disable-content-trust", action="store_true", help="Skip image signing (default true)")
    p.add_argument("name")
    ns = p.parse_args(argv)
    from ..engine.distribution_push import push

    push(engine(), ns.name, ns.all_tags, Display(sys.stdout, quiet=ns.quiet), ns.compression)
    if ns.quiet:  # the docker CLI prints the normalised name, as given (no default tag)
        from ..images.refs import parse_reference

        print(str(parse_reference(ns.name, default_tag=False)))
    _exiting()
    return 0


def _exiting() -> None:
    """The command is done and the process about to exit: what is alive now is left out of
    the interpreter's last garbage collection (an up-to-date pull spent ~1.5 ms on it)."""
    import gc

    gc.freeze()


def _server_key(server: str | None) -> str:
    """The registry host a login is for (docker.io for none)."""
    if not server:
        return "docker.io"
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return "docker.io"
    return s


def _display_server(host: str) -> str:
    return "https://index.docker.io/v1/" if host == "docker.io" else host


def cmd_login(argv: list[str]) -> int:
    p = Parser("login", usage="dockyard login [OPTIONS] [SERVER]",
               description="Log in to a registry.\nIf no server is specified, the default is defined by the daemon.")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("server", nargs="?")
    ns = p.parse_args(argv)
    if ns.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        if ns.password_stdin:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if ns.password_stdin:
        if not ns.username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        ns.password = sys.stdin.read().rstrip("\r\n")
    host = _server_key(ns.server)
    user, password = ns.username, ns.password
    if not user:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        user = input("Username: ").strip()
    if not user:
        raise InvalidArgument("Username cannot be empty")
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        import getpass

        password = getpass.getpass("Password: ")
    if not password:
        raise InvalidArgument("Password Required")
    from ..engine.distmeta import login

    where = login(host, user, password)
    if where:
        print(f"WARNING! Your password will be stored unencrypted in {where}.\n"
              "Configure a credential helper to remove this warning. See\n"
              "https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n",
              file=sys.stderr)
    print("Login Succeeded")
    return 0


def cmd_logout(argv: list[str]) -> int:
    p = Parser("logout", usage="dockyard logout [SERVER]",
               description="Log out from a registry.\nIf no server is specified, the default is defined by the daemon.")
    p.add_argument("server", nargs="?")
    ns = p.parse_args(argv)
    host = _server_key(ns.server)
    from ..engine.distmeta import logout

    if logout(host):
        print(f"Removing login credentials for {_display_server(host)}")
    else:
        print(f"Not logged in to {_display_server(host)}")
    return 0


def cmd_manifest_inspect(argv: list[str]) -> int:
    p = Parser("manifest inspect", usage="dockyard manifest inspect [OPTIONS] [MANIFEST_LIST] MANIFEST",
               description="Display an image manifest, or manifest list")
    p.add_argument("--insecure", action="store_true", help="Allow communication with an insecure registry")
    p.add_argument("-v", "--verbose", action="store_true", help="Output additional info including layers and platform")
    p.add_argument("names", nargs="+")
    ns = p.parse_args(argv)
    if len(ns.names) > 2:
        raise InvalidArgument('"manifest inspect" requires at most 2 arguments.')
    from ..engine.distribution import manifest_json

    raw = manifest_json(engine(), ns.names[-1])
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
        return 0
    print(json.dumps(doc, indent="\t", ensure_ascii=False))
    return 0
