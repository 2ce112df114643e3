"""Container control after start: stop, restart, kill, pause/unpause, rename, update, prune.

Split from lifecycle.py (create, start, exit handling, remove), which these build on.
"""

from __future__ import annotations

import signal

from .. import _util
from ..errors import Conflict, DockyardError, InvalidArgument, NotFound
from . import events
from . import names as namegen
from .core import Engine
from .lifecycle import _wait_dead, handle_exit, refresh, remove, start
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# ---- stop / kill / restart / pause -----------------------------------------------

def _signal_number(sig: str | int | None, default: int = signal.SIGTERM) -> int:
    if sig is None or sig == "":
        return default
    if isinstance(sig, int):
        return sig
    s = str(sig).upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(signal.Signals[s])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {sig}") from None


def parse_signal(sig: str | int | None, default: int = signal.SIGTERM) -> int:
    return _signal_number(sig, default)


def stop(engine: Engine, c: Container, timeout: int | None = None, sig: str | None = None) -> Container:
    c = refresh(engine, c)
    if not c.running:
        return c
    signum = _signal_number(sig or c.config.get("StopSignal"), signal.SIGTERM)
    if timeout is None:
        timeout = c.config.get("StopTimeout")
        timeout = 10 if timeout is None else int(timeout)
    pid = int(c.state["Pid"])
    try:
        if c.state.get("Paused"):
            engine.runtime_for(c).resume(c.id)
        engine.runtime_for(c).kill(c.id, signum)
    except (Conflict, NotFound):
        pass
    if not _wait_dead(pid, timeout if timeout >= 0 else None):
        try:
            engine.runtime_for(c).kill(c.id, signal.SIGKILL, all_processes=True)
        except (Conflict, NotFound):
            pass
        _wait_dead(pid, None)
    got = handle_exit(engine, c.id)
    events.container(engine, "stop", got if got is not None else c)
    return got if got is not None else c


def restart(engine: Engine, c: Container, timeout: int | None = None, sig: str | None = None) -> Container:
    """Stop (if running) and start again; Docker's `restart` event at the end."""
    c = stop(engine, c, timeout, sig)
    c = start(engine, engine.containers.load(c.id))
    events.container(engine, "restart", c)
    return c


def kill(engine: Engine, c: Container, sig: str | None = None) -> None:
    c = refresh(engine, c)
    if not c.running:
        raise Conflict(f"Cannot kill container: {c.id}: Container {c.id} is not running")
    signum = _signal_number(sig, signal.SIGKILL)
    try:
        engine.runtime_for(c).kill(c.id, signum)
    except Conflict:
        raise Conflict(f"Cannot kill container: {c.id}: Container {c.id} is not running") from None
    events.container(engine, "kill", c, signal=signum)
    if signum == signal.SIGKILL:
        _wait_dead(int(c.state["Pid"]), 5)
        handle_exit(engine, c.id)


def pause(engine: Engine, c: Container) -> None:
    with engine.containers.lock(c.id):
        c = engine.containers.load(c.id)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is already paused")
        engine.runtime_for(c).pause(c.id)
        c.state.update(Paused=True, Status="paused")
        engine.containers.save(c)
    events.container(engine, "pause", c)


def unpause(engine: Engine, c: Container) -> None:
    with engine.containers.lock(c.id):
        c = engine.containers.load(c.id)
        if not c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is not paused")
        engine.runtime_for(c).resume(c.id)
        c.state.update(Paused=False, Status="running")
        engine.containers.save(c)
    events.container(engine, "unpause", c)


def rename(engine: Engine, c: Container, new: str) -> None:
    new = namegen.validate(new)
    with _util.locked(engine.paths.lock):
        with engine.containers.lock(c.id):
            c = engine.containers.load(c.id)
            if c.name == new:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            engine.containers.reserve_name(new, c.id)
            old = c.name
            engine.containers.release_name(c.name, c.id)
            c.doc["Name"] = "/" + new
            engine.containers.save(c)
    events.container(engine, "rename", c, oldName="/" + old)


# ---- prune -------------------------------------------------------------------------------

def prune(engine: Engine, until: float | None = None, labels: tuple[str, ...] = (),
          labels_not: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """Remove stopped containers (created before `until`, matching every `labels` and none
    of `labels_not`); returns (removed IDs, bytes reclaimed from their rw layers)."""
    from .query import label_match

    removed: list[str] = []
    reclaimed = 0
    for c in engine.containers.all():
        c = refresh(engine, c)
        if c.running:
            continue
        if until is not None and _util.parse_rfc3339(c.doc["Created"]) >= until:
            continue
        lab = c.config.get("Labels") or {}
        if labels and not all(label_match(lab, spec) for spec in labels):
            continue
        if labels_not and any(label_match(lab, spec) for spec in labels_not):
            continue
        try:
            size = engine.layers.rw_size(c.id)
        except (DockyardError, OSError):
            size = 0
        try:
            remove(engine, c)
        except (DockyardError, OSError):
            continue
        removed.append(c.id)
        reclaimed += size
    return removed, reclaimed


# ---- update (docker update) ------------------------------------------------------------------

#: HostConfig fields `docker update` may change (zero/empty values mean "leave alone", as the
#: docker CLI sends the whole Resources struct)
UPDATABLE = ("CpuShares", "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuPeriod", "CpuQuota",
             "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "RestartPolicy")


def update(engine: Engine, c: Container, changes: dict[str, Any]) -> list[str]:
    """Change a container's resource limits: saved in its HostConfig, and written to its
    cgroup at once when it runs. Returns Docker's warnings (none)."""
    from ..runtime.cgroups import open_manager
    from ..runtime.cgroups.resources import Resources
    from .specgen import _resources

    asked = {k: v for k, v in changes.items() if k in UPDATABLE and v not in (None, 0, "", {})}
    if isinstance(asked.get("RestartPolicy"), dict) and not asked["RestartPolicy"].get("Name"):
        asked.pop("RestartPolicy")
    if asked.get("NanoCpus") and (asked.get("CpuPeriod") or asked.get("CpuQuota")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
    with engine.containers.lock(c.id):
        c = engine.containers.load(c.id)
        hc = dict(c.host_config)
        hc.update(asked)
        if asked.get("Memory") and not asked.get("MemorySwap") and c.host_config.get("MemorySwap", 0) > 0 \
                and c.host_config["MemorySwap"] < asked["Memory"]:
            hc["MemorySwap"] = asked["Memory"] * 2
        if c.running and asked.keys() - {"RestartPolicy"}:
            oci = {k: v for k, v in _resources(hc, bool(hc.get("Privileged"))).items() if k != "devices"}
            open_manager(f"/dockyard/{c.id}").apply(Resources.from_oci(oci))
        c.host_config.clear()
        c.host_config.update(hc)
        engine.containers.save(c, host_config=True)
    events.container(engine, "update", c)
    return []
