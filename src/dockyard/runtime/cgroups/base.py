"""Shared cgroup pieces: host info, the manager protocol, stats, file helpers.

Both drivers write cgroupfs directly (driver "cgroupfs"); there is no systemd driver.
"""

from __future__ import annotations

import errno
import os
import _signal as signal  # the C core: `signal` builds IntEnums (importing enum) at import
import time
from ..._path import Path, PurePosixPath

from ..._record import dataclass, field
from ...errors import InvalidArgument, Unsupported
from .resources import Resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Mapping, Protocol
else:
    Protocol = object  # CgroupManager is a structural interface for type checkers only

CGROUP_ROOT = Path("/sys/fs/cgroup")

#: cgroup v1 controllers a container is placed in when the host mounts them
#: (named hierarchies such as name=systemd are left alone)
V1_CONTROLLERS = (
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc",
)

#: page-counter "unlimited" values are LLONG_MAX rounded to the page size; treat
#: anything this large as no limit
UNLIMITED_THRESHOLD = 1 << 62


@dataclass(frozen=True, kw_only=True)
class CgroupInfo:
    """What the host offers. `mounts` (v1 only) maps controller -> hierarchy mount;
    when empty, `mountpoint / controller` is assumed."""

    version: int
    driver: str = "cgroupfs"
    mountpoint: Path = CGROUP_ROOT
    controllers: tuple[str, ...] = ()
    mounts: tuple[tuple[str, Path], ...] = ()

    def controller_mounts(self) -> dict[str, Path]:
        if self.mounts:
            return {name: Path(p) for name, p in self.mounts}
        return {name: Path(self.mountpoint) / name for name in self.controllers}


@dataclass(frozen=True)
class Stats:
    """One sample of a cgroup's counters. Limits are None when unlimited/unknown."""

    cpu_usage_ns: int
    cpu_user_ns: int | None
    cpu_system_ns: int | None
    memory_usage: int
    memory_limit: int | None
    memory_cache: int | None
    pids_current: int
    pids_limit: int | None
    oom_kill_count: int
    per_cpu_usage_ns: tuple[int, ...] = ()
    memory_max_usage: int | None = None
    cpu_periods: int = 0
    cpu_throttled_periods: int = 0
    cpu_throttled_ns: int = 0
    #: raw memory.stat (v1 and v2 keys differ: v1 has total_cache/rss, v2 file/anon)
    memory_stat: Mapping[str, int] = field(default_factory=dict, hash=False)


class CgroupManager(Protocol):
    """One container's cgroup(s). OSErrors from the kernel surface with the file path."""

    version: int

    @property
    def paths(self) -> dict[str, Path]:
        """controller -> directory (v1); {"": directory} on v2."""
        ...

    def create(self) -> None:
        """mkdir in every hierarchy, parents too; idempotent."""
        ...

    def apply(self, res: Resources) -> None:
        """Write the limits `res` asks for (Unsupported if a needed controller is absent)."""
        ...

    def add_pid(self, pid: int) -> None:
        """Move a process in (cgroup.procs of every hierarchy)."""
        ...

    def pids(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups, sorted."""
        ...

    def freeze(self) -> None:
        """Freeze and wait until frozen (FailedPrecondition on timeout)."""
        ...

    def thaw(self) -> None: ...
    def is_frozen(self) -> bool: ...
    def stats(self) -> Stats: ...
    def oom_kill_count(self) -> int: ...

    def kill_all(self, sig: int) -> None:
        """Signal every process; SIGKILL also reaches frozen tasks."""
        ...

    def destroy(self) -> None:
        """rmdir the leaf (and sub-cgroups) everywhere, retrying EBUSY briefly; kills
        nothing; idempotent; parents such as /dockyard stay."""
        ...


def relative_cgroup_path(cgroups_path: str) -> PurePosixPath:
    """Validate an OCI cgroupsPath and return it relative to a hierarchy root.

    Absolute and relative paths are both taken from the hierarchy root (Dockyard
    runs containers from the engine, not from inside another container's cgroup)."""
    if not isinstance(cgroups_path, str) or not cgroups_path.strip("/ "):
        raise InvalidArgument(f"invalid cgroupsPath {cgroups_path!r}: must name a cgroup")
    if ":" in cgroups_path:
        raise Unsupported(
            f"cgroupsPath {cgroups_path!r}: systemd 'slice:prefix:name' paths are not "
            "supported (only the cgroupfs driver is)"
        )
    rel = PurePosixPath(cgroups_path.strip("/"))
    if any(p in (".", "..") for p in cgroups_path.split("/")) or "\0" in cgroups_path:
        raise InvalidArgument(
            f"invalid cgroupsPath {cgroups_path!r}: must not contain '.' or '..' components"
        )
    return rel


# ---- file helpers ---------------------------------------------------------------


def read_text(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:  # cgroup files are ASCII
        return f.read().strip()


def read_int(path: Path) -> int:
    return int(read_text(path))


def read_optional_int(path: Path) -> int | None:
    """An integer file, or None if it is missing; "max" also reads as None."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        return None
    if text == "max":
        return None
    return int(text)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events...) -> dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def read_flat_keyed(path: Path) -> dict[str, int]:
    try:
        return parse_flat_keyed(read_text(path))
    except FileNotFoundError:
        return {}


def write_value(path: Path, value: str | int) -> None:
    """One write(2) of `value` to a cgroup file; errors name the file and the value."""
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} (opening to write {str(value)!r})", str(path)) from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} (writing {str(value)!r})", str(path)) from None
    finally:
        os.close(fd)


def read_v2_controllers(directory: Path) -> tuple[str, ...]:
    try:
        return tuple(read_text(directory / "cgroup.controllers").split())
    except FileNotFoundError:
        return ()


def limit_or_none(value: int | None) -> int | None:
    if value is None or value >= UNLIMITED_THRESHOLD:
        return None
    return value


# ---- behaviour shared by both drivers ---------------------------------------------


class ManagerBase:
    """Process listing, signalling and removal; drivers supply `paths` and freezing."""

    version: int = 0
    #: how long destroy() retries rmdir while the last tasks exit
    destroy_timeout: float = 2.0

    @property
    def paths(self) -> dict[str, Path]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _unique_dirs(self) -> list[Path]:
        # co-mounted v1 controllers (cpu,cpuacct) share one directory
        seen: dict[Path, None] = {}
        for p in self.paths.values():
            seen.setdefault(p, None)
        return list(seen)

    def pids(self) -> list[int]:
        """Every process in the cgroup, including its sub-cgroups, in any controller."""
        found: set[int] = set()
        for top in self._unique_dirs():
            for directory in _walk(top):
                try:
                    text = read_text(directory / "cgroup.procs")
                except FileNotFoundError:
                    continue
                found.update(int(x) for x in text.split())
        return sorted(found)

    def _signal(self, pids: Iterable[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self, sig: int) -> None:
        """Signal every process. For SIGKILL the set is frozen first (no fork escapes),
        and a frozen cgroup is thawed afterwards so the queued SIGKILL is delivered.
        Other signals leave the freezer state alone (they are delivered on thaw)."""
        if sig != signal.SIGKILL:
            self._signal(self.pids(), sig)
            return
        was_frozen = self._can_freeze() and self.is_frozen()
        froze = False
        if self._can_freeze() and not was_frozen:
            try:
                self.freeze()
                froze = True
            except Exception:  # noqa: BLE001 - best effort: kill unfrozen instead
                froze = False
        try:
            signalled: set[int] = set()
            for _ in range(10):  # unfrozen: catch children forked while we signal
                todo = [p for p in self.pids() if p not in signalled]
                if not todo:
                    break
                self._signal(todo, sig)
                signalled.update(todo)
                if froze or was_frozen:
                    break
        finally:
            if froze or was_frozen:
                self.thaw()

    def destroy(self) -> None:
        """rmdir the leaf (and any sub-cgroups) in every hierarchy; kills nothing."""
        for top in self._unique_dirs():
            try:  # the usual case: a leaf without sub-cgroups; walk only when it is not
                os.rmdir(top)
                continue
            except FileNotFoundError:
                continue
            except OSError:
                pass
            for directory in reversed(list(_walk(top))):
                self._rmdir(directory)

    def _rmdir(self, directory: Path) -> None:
        deadline = time.monotonic() + self.destroy_timeout
        delay = 0.01
        while True:
            try:
                os.rmdir(directory)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # drivers implement these
    def _can_freeze(self) -> bool:  # pragma: no cover - overridden
        return False

    def freeze(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def thaw(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def is_frozen(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


def _walk(top: Path) -> list[Path]:
    """`top` and its descendant cgroup directories, parents first (empty if missing)."""
    if not top.is_dir():
        return []
    out = [top]
    for dirpath, dirnames, _ in os.walk(top):
        out.extend(Path(dirpath) / d for d in sorted(dirnames))
    return out


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll `predicate` with backoff until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 2, 0.1)
