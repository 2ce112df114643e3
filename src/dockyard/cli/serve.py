"""`dockyard serve`: the Docker Engine API on a unix socket (default) or TCP (TLS, or a loud
warning on loopback), or on a socket systemd passes (LISTEN_FDS)."""

from __future__ import annotations

import grp
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from urllib.parse import urlsplit

from ..errors import InvalidArgument
from .args import Parser, engine

DEFAULT_SOCKET = "/run/dockyard.sock"


def default_socket(eng: object) -> str:
    """/run/dockyard.sock for the default data root; `<runroot>/dockyard.sock` for others."""
    from ..paths import DEFAULT_ROOT

    paths = eng.paths  # type: ignore[attr-defined]
    return DEFAULT_SOCKET if str(paths.root) == DEFAULT_ROOT else str(paths.runroot / "dockyard.sock")


def _group_id(name: str, create: bool) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        pass
    if name.isdigit():
        return int(name)
    if not create or os.geteuid() != 0:
        print(f"warning: group {name!r} does not exist; the socket stays root-only", file=sys.stderr)
        return None
    try:
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
        return grp.getgrnam(name).gr_gid
    except (OSError, subprocess.CalledProcessError, KeyError) as e:
        print(f"warning: cannot create group {name!r} ({e}); the socket stays root-only", file=sys.stderr)
        return None


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(argv: list[str]) -> int:
    p = Parser("serve", usage="dockyard serve [OPTIONS]",
               description="Serve the Docker Engine API (v1.45) for docker, the Docker SDKs and compose")
    p.add_argument("-H", "--host", action="append", default=[],
                   help="Daemon socket to listen on: unix:///path or tcp://host:port (repeatable)")
    p.add_argument("--group", "-G", default="dockyard", help='Group of the unix socket (default "dockyard")')
    p.add_argument("--tlsverify", action="store_true", help="Use TLS and verify client certificates")
    p.add_argument("--tlscacert", help="Trust client certificates signed by this CA")
    p.add_argument("--tlscert", help="Path to the TLS certificate file")
    p.add_argument("--tlskey", help="Path to the TLS key file")
    p.add_argument("--insecure-tcp", action="store_true",
                   help="Allow plain TCP on a non-loopback address (anyone who can connect is root)")
    p.add_argument("--debug", "-D", action="store_true", help="Log each request on stderr")
    ns = p.parse_args(argv)
    from ..api.server import Listener, Server

    eng = engine()
    listeners: list[Listener] = []
    if os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID") in (None, str(os.getpid())):
        for i in range(int(os.environ["LISTEN_FDS"])):
            listeners.append(Listener("fd", fd=3 + i))
    gid = None
    for host in ns.host or ([] if listeners else ["unix://" + default_socket(eng)]):
        u = urlsplit(host if "://" in host else "unix://" + host)
        if u.scheme == "unix":
            if gid is None:
                gid = _group_id(ns.group, create=True)
            listeners.append(Listener("unix", address=u.path or default_socket(eng), gid=gid))
        elif u.scheme == "tcp":
            listeners.append(_tcp(ns, u.hostname or "127.0.0.1", u.port or (2376 if ns.tlsverify else 2375)))
        else:
            raise InvalidArgument(f"invalid -H {host!r}: use unix:///path or tcp://host:port")
    server = Server(eng, listeners, debug=ns.debug)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = ", ".join(f"{lst.address}:{lst.port}" if lst.kind == "tcp" else lst.address or f"fd {lst.fd}"
                      for lst in listeners)
    print(f"Dockyard API listening on {where}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.close()
    return 0


def _tcp(ns: object, host: str, port: int) -> "object":
    from ..api.server import Listener

    if getattr(ns, "tlsverify"):
        import ssl

        for opt in ("tlscacert", "tlscert", "tlskey"):
            if not getattr(ns, opt):
                raise InvalidArgument(f"--tlsverify needs --{opt}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(getattr(ns, "tlscert"), getattr(ns, "tlskey"))
        ctx.load_verify_locations(getattr(ns, "tlscacert"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return Listener("tcp", address=host, port=port, tls=ctx)
    if not _is_loopback(host) and not getattr(ns, "insecure_tcp"):
        raise InvalidArgument(f"refusing plain TCP on {host}:{port}: anyone who can reach it gets root on this "
                              "host. Use --tlsverify with --tlscacert/--tlscert/--tlskey, or --insecure-tcp")
    print(f"WARNING: API is accessible on http://{host}:{port} without encryption.\n"
          "         Access to the API is equivalent to root access on the host: anyone who can\n"
          "         connect to this address controls every container. Use --tlsverify.",
          file=sys.stderr, flush=True)
    return Listener("tcp", address=host, port=port)
