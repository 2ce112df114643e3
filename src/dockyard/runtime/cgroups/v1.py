"""cgroup v1 driver: one directory per controller hierarchy.

The OCI cgroupsPath "/dockyard/<id>" becomes <mount>/dockyard/<id> under each mounted
controller (co-mounted controllers such as "cpu,cpuacct" share one directory).
"""

from __future__ import annotations

import errno
import os
import time
from ..._path import Path

from dockyard.errors import FailedPrecondition, Unsupported

from .base import (
    CgroupInfo,
    ManagerBase,
    Stats,
    limit_or_none,
    parse_flat_keyed,
    read_flat_keyed,
    read_int,
    read_optional_int,
    read_text,
    relative_cgroup_path,
    wait_until,
    write_value,
)
from .resources import Resources


class V1Manager(ManagerBase):
    version = 1
    #: how long freeze() waits for FREEZING to become FROZEN before giving up
    freeze_timeout = 10.0

    def __init__(self, cgroups_path: str, info: CgroupInfo) -> None:
        self._rel = relative_cgroup_path(cgroups_path)
        self._mounts = info.controller_mounts()
        self._paths = {name: mount / self._rel for name, mount in self._mounts.items()}

    def __repr__(self) -> str:
        return f"V1Manager(/{self._rel})"

    @property
    def paths(self) -> dict[str, Path]:
        return dict(self._paths)

    def _dir(self, controller: str, purpose: str) -> Path:
        try:
            return self._paths[controller]
        except KeyError:
            raise Unsupported(
                f"cgroup /{self._rel}: the {controller} controller is not mounted on this "
                f"host (cgroup v1); cannot {purpose}"
            ) from None

    # ---- lifecycle ----------------------------------------------------------------

    def create(self) -> None:
        for name, mount in self._mounts.items():
            current = mount
            for part in self._rel.parts:
                parent, current = current, current / part
                try:
                    os.mkdir(current, 0o755)
                except FileExistsError:
                    pass
                if name == "cpuset":
                    _inherit_cpuset(parent, current)

    def add_pid(self, pid: int) -> None:
        for directory in self._unique_dirs():
            write_value(directory / "cgroup.procs", pid)

    # ---- limits -------------------------------------------------------------------

    def apply(self, res: Resources) -> None:
        """Write every limit `res` asks for; controllers are checked before any write."""
        wants = {
            "cpu": res.cpu_shares is not None or res.cpu_quota is not None
            or res.cpu_period is not None,
            "cpuset": res.cpuset_cpus is not None or res.cpuset_mems is not None,
            "memory": res.memory_limit is not None or res.memory_swap is not None
            or res.memory_reservation is not None or res.disable_oom_killer,
            "pids": res.pids_limit is not None,
            "blkio": res.blkio_weight is not None,
            "devices": bool(res.devices),
        }
        dirs = {name: self._dir(name, f"apply {name} limits") for name, on in wants.items() if on}

        if "cpu" in dirs:
            _apply_cpu(dirs["cpu"], res)
        if "cpuset" in dirs:
            if res.cpuset_cpus is not None:
                write_value(dirs["cpuset"] / "cpuset.cpus", res.cpuset_cpus)
            if res.cpuset_mems is not None:
                write_value(dirs["cpuset"] / "cpuset.mems", res.cpuset_mems)
        if "memory" in dirs:
            _apply_memory(dirs["memory"], res)
        if "pids" in dirs:
            assert res.pids_limit is not None
            write_value(dirs["pids"] / "pids.max", "max" if res.pids_limit < 0 else res.pids_limit)
        if "blkio" in dirs:
            # CFQ's blkio.weight is gone from modern kernels; BFQ exposes blkio.bfq.weight.
            # Without either (e.g. no BFQ scheduler) the weight is dropped, as Docker does.
            for name in ("blkio.weight", "blkio.bfq.weight"):
                if (dirs["blkio"] / name).exists():
                    write_value(dirs["blkio"] / name, res.blkio_weight)  # type: ignore[arg-type]
                    break
        if "devices" in dirs:
            write_value(dirs["devices"] / "devices.deny", "a")
            for rule in res.devices:
                target = "devices.allow" if rule.allow else "devices.deny"
                write_value(dirs["devices"] / target, rule.to_v1())

    # ---- freezer ------------------------------------------------------------------

    def _can_freeze(self) -> bool:
        return "freezer" in self._paths

    def _freezer_state(self) -> str:
        return read_text(self._dir("freezer", "read the freezer state") / "freezer.state")

    def freeze(self) -> None:
        state_file = self._dir("freezer", "freeze") / "freezer.state"
        write_value(state_file, "FROZEN")
        deadline = time.monotonic() + self.freeze_timeout
        last_write = time.monotonic()
        while True:
            if wait_until(lambda: read_text(state_file) == "FROZEN", 0.1):
                return
            now = time.monotonic()
            if now >= deadline:
                break
            if now - last_write >= 0.5:  # poke tasks that were busy (e.g. in a vfork)
                write_value(state_file, "FROZEN")
                last_write = now
        write_value(state_file, "THAWED")
        raise FailedPrecondition(
            f"cgroup {state_file.parent}: could not freeze within {self.freeze_timeout:g}s "
            "(freezer.state stayed FREEZING; a task may be stuck in uninterruptible sleep)"
        )

    def thaw(self) -> None:
        state_file = self._dir("freezer", "thaw") / "freezer.state"
        write_value(state_file, "THAWED")
        # stays FROZEN if a parent cgroup is frozen: do not wait for ever
        wait_until(lambda: read_text(state_file) == "THAWED", 1.0)

    def is_frozen(self) -> bool:
        return self._freezer_state() == "FROZEN"

    # ---- accounting ---------------------------------------------------------------

    def oom_kill_count(self) -> int:
        directory = self._paths.get("memory")
        if directory is None:
            return 0
        return read_flat_keyed(directory / "memory.oom_control").get("oom_kill", 0)

    def stats(self) -> Stats:
        usage = user = system = None
        per_cpu: tuple[int, ...] = ()
        acct = self._paths.get("cpuacct")
        if acct is not None:
            usage = read_int(acct / "cpuacct.usage")
            user = read_optional_int(acct / "cpuacct.usage_user")
            system = read_optional_int(acct / "cpuacct.usage_sys")
            if user is None or system is None:
                ticks = read_flat_keyed(acct / "cpuacct.stat")
                hz = os.sysconf("SC_CLK_TCK")
                if "user" in ticks:
                    user = ticks["user"] * 1_000_000_000 // hz
                if "system" in ticks:
                    system = ticks["system"] * 1_000_000_000 // hz
            try:
                per_cpu = tuple(int(x) for x in read_text(acct / "cpuacct.usage_percpu").split())
            except FileNotFoundError:
                per_cpu = ()
        cpu_stat = {}
        if "cpu" in self._paths:
            cpu_stat = read_flat_keyed(self._paths["cpu"] / "cpu.stat")

        mem_usage, mem_limit, mem_max, mem_stat = 0, None, None, {}
        cache = None
        mem = self._paths.get("memory")
        if mem is not None:
            mem_usage = read_int(mem / "memory.usage_in_bytes")
            mem_limit = limit_or_none(read_int(mem / "memory.limit_in_bytes"))
            mem_max = read_optional_int(mem / "memory.max_usage_in_bytes")
            mem_stat = parse_flat_keyed(read_text(mem / "memory.stat"))
            cache = mem_stat.get("total_cache", mem_stat.get("cache"))

        pids_dir = self._paths.get("pids")
        if pids_dir is not None:
            pids_current = read_int(pids_dir / "pids.current")
            pids_limit = read_optional_int(pids_dir / "pids.max")
        else:
            pids_current, pids_limit = len(self.pids()), None

        return Stats(
            cpu_usage_ns=usage or 0,
            cpu_user_ns=user,
            cpu_system_ns=system,
            memory_usage=mem_usage,
            memory_limit=mem_limit,
            memory_cache=cache,
            pids_current=pids_current,
            pids_limit=pids_limit,
            oom_kill_count=self.oom_kill_count(),
            per_cpu_usage_ns=per_cpu,
            memory_max_usage=mem_max,
            cpu_periods=cpu_stat.get("nr_periods", 0),
            cpu_throttled_periods=cpu_stat.get("nr_throttled", 0),
            cpu_throttled_ns=cpu_stat.get("throttled_time", 0),
            memory_stat=mem_stat,
        )


# ---- helpers ------------------------------------------------------------------------


def _inherit_cpuset(parent: Path, child: Path) -> None:
    """New v1 cpusets start with empty cpus/mems (no task could join): copy the parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_text(child / name):
            write_value(child / name, read_text(parent / name))


def _apply_cpu(directory: Path, res: Resources) -> None:
    if res.cpu_shares is not None:
        write_value(directory / "cpu.shares", res.cpu_shares)
    period_file = directory / "cpu.cfs_period_us"
    quota_file = directory / "cpu.cfs_quota_us"
    if res.cpu_period is not None and res.cpu_quota is not None:
        # the kernel checks quota against period: if period-first is refused, swap
        try:
            write_value(period_file, res.cpu_period)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            write_value(quota_file, res.cpu_quota)
            write_value(period_file, res.cpu_period)
            return
        write_value(quota_file, res.cpu_quota)
    elif res.cpu_period is not None:
        write_value(period_file, res.cpu_period)
    elif res.cpu_quota is not None:
        write_value(quota_file, res.cpu_quota)


def _apply_memory(directory: Path, res: Resources) -> None:
    limit_file = directory / "memory.limit_in_bytes"
    memsw_file = directory / "memory.memsw.limit_in_bytes"
    limit, swap = res.memory_limit, res.memory_swap
    # Without swap accounting (no memory.memsw.*) a swap limit is dropped, as Docker does.
    if swap is not None and memsw_file.exists():
        # The kernel keeps memory.limit <= memory.memsw.limit at every step, so when
        # memsw grows it must be raised first, and when it shrinks lowered last.
        current = read_int(memsw_file)
        growing = swap == -1 or swap >= current
        if growing:
            write_value(memsw_file, swap)
            if limit is not None:
                write_value(limit_file, limit)
        else:
            if limit is not None:
                write_value(limit_file, limit)
            write_value(memsw_file, swap)
    elif limit is not None:
        write_value(limit_file, limit)
    if res.memory_reservation is not None:
        write_value(directory / "memory.soft_limit_in_bytes", res.memory_reservation)
    if res.disable_oom_killer:
        write_value(directory / "memory.oom_control", 1)
