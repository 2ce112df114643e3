"""The engine's side of the embedded DNS server for user-defined networks (the server itself
is dnsserver.py, with dnsforward.py and dnstcp.py).

One server per data root (`python -m dockyard.network.dnsd TABLE`), shared by all user
networks. It listens on UDP and TCP port 53 on each network's gateway address, answers the
names in the table file for the network a query arrived on, and forwards every other query
to the upstream resolvers. Beside the table: `.lock` (the engine's lock), `.pid` (flocked by
the server for its life), `.status` (what the server loaded: serial, listening, failed) and
`.log`. The engine calls `set_network`/`drop_network` (table edit under the lock, then
SIGHUP, then wait for the status to show the new serial) and `stop`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from ..errors import FailedPrecondition, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from .._path import Path

MODULE = "dockyard.network.dnsd"
READY_TIMEOUT = 5.0


def _sidecar(table_path: Path | str, suffix: str) -> str:
    return os.path.abspath(os.fspath(table_path)) + suffix


def _read_table(table_path: str) -> dict[str, Any]:
    """The table (`{"networks": {}}` when there is none); ValueError when it is not one."""
    try:
        with open(table_path, "rb") as f:
            table = json.loads(f.read())
    except FileNotFoundError:
        return {"networks": {}}
    if not isinstance(table, dict) or not isinstance(table.get("networks", {}), dict):
        raise ValueError(f"{table_path}: not a DNS table")
    table.setdefault("networks", {})
    return table


def _canon_ip(ip: str) -> str:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, ip))


def _proc_is_server(pid: int, table_path: str) -> bool:
    """Is `pid` a DNS server process for this table (not a recycled pid)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z" and MODULE.encode() in argv and os.fsencode(table_path) in argv


def server_pid(table_path: Path | str) -> int | None:
    """The running server's pid from its pidfile, if that process really is the server."""
    table = _sidecar(table_path, "")
    try:
        with open(table + ".pid", "rb") as f:
            pid = int(f.read().strip() or b"0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _proc_is_server(pid, table) else None


def _spawn(table: str) -> int:
    """Start the server detached and return its pid once its pidfile names it."""
    import subprocess

    env = dict(os.environ)
    pkgroot = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    env["PYTHONPATH"] = pkgroot + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(table + ".log", "ab") as log:
        launcher = subprocess.Popen([sys.executable, "-s", "-S", "-m", MODULE, table],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                                    env=env, start_new_session=True, close_fds=True)
    if launcher.wait(READY_TIMEOUT) != 0:   # it forks the server and exits at once
        raise FailedPrecondition(f"the DNS server for {table} did not start (see {table}.log)")
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        pid = server_pid(table)
        if pid is not None:
            return pid
        time.sleep(0.002)
    raise FailedPrecondition(f"the DNS server for {table} did not start (see {table}.log)")


def _load_for_edit(table: str) -> dict[str, Any]:
    try:
        return _read_table(table)
    except (OSError, ValueError) as e:
        raise FailedPrecondition(f"cannot read the DNS table {table}: {e}") from None


def _write_table(table: str, data: dict[str, Any]) -> int:
    from .._util import write_json

    serial = int(data.get("serial", 0)) + 1
    data["serial"] = serial
    write_json(table, data, durable=False)
    return serial


def _wait_status(table: str, pid: int, serial: int, listen: str | None) -> None:
    """Wait until server `pid` has loaded table `serial`; raise if it cannot bind `listen`."""
    deadline = time.monotonic() + READY_TIMEOUT
    pause = 0.0005
    while True:
        try:
            with open(table + ".status", "rb") as f:
                status = json.loads(f.read())
        except (OSError, ValueError):
            status = {}
        if status.get("pid") == pid and status.get("serial", 0) >= serial:
            if listen is None or listen in status.get("listening", ()):
                return
            failed = status.get("failed", {})
            if listen in failed:
                raise FailedPrecondition(f"DNS server cannot listen on {listen}:53: {failed[listen]}")
            return                          # someone dropped that network meanwhile
        if not _proc_is_server(pid, table):
            if listen is None:
                return                      # it exited: nothing left to serve
            raise FailedPrecondition(f"the DNS server for {table} exited (see {table}.log)")
        if time.monotonic() > deadline:
            raise FailedPrecondition(f"the DNS server for {table} did not reload (see {table}.log)")
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def set_network(table_path: Path, network_id: str, listen: str, records: dict[str, list[str]]) -> None:
    """Serve `records` on `listen` (the network's gateway) and return once the server listens
    there. Raises FailedPrecondition if the server cannot bind the address."""
    from .._util import locked

    for ip in (listen, *(ip for ips in records.values() for ip in ips)):
        try:
            _canon_ip(ip)
        except (OSError, TypeError):
            raise InvalidArgument(f"DNS table for network {network_id}: invalid address {ip!r}") from None
    listen = _canon_ip(listen)
    table = _sidecar(table_path, "")
    with locked(table + ".lock"):
        data = _load_for_edit(table)
        data["networks"][network_id] = {"listen": listen,
                                        "records": {str(k): list(v) for k, v in records.items()}}
        serial = _write_table(table, data)
        pid = server_pid(table)
        if pid is None:
            pid = _spawn(table)
        else:
            os.kill(pid, signal.SIGHUP)
    _wait_status(table, pid, serial, listen)


def drop_network(table_path: Path, network_id: str) -> None:
    """Stop serving a network; the server exits when no network is left."""
    from .._util import locked

    table = _sidecar(table_path, "")
    with locked(table + ".lock"):
        data = _load_for_edit(table)
        if data["networks"].pop(network_id, None) is None:
            return
        serial = _write_table(table, data)
        pid = server_pid(table)
        if pid is None:
            return
        os.kill(pid, signal.SIGHUP)
    _wait_status(table, pid, serial, None)
    if not data["networks"]:
        _wait_gone(pid, READY_TIMEOUT)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (gone, or a zombie its parent has yet to reap)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] == b"Z":
                    return True
        except (OSError, IndexError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


def stop(table_path: Path) -> None:
    """Stop the server named by the pidfile (SIGTERM, then SIGKILL after 3 s)."""
    table = _sidecar(table_path, "")
    pid = server_pid(table)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, 3.0):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 3.0)
        for suffix in (".status", ".pid"):
            try:
                os.unlink(table + suffix)
            except FileNotFoundError:
                pass


# ---- the server ------------------------------------------------------------------


if __name__ == "__main__":  # the server process (kept under this module name: see _proc_is_server)
    from .dnsserver import _main

    sys.exit(_main(sys.argv))
