"""cgroup v2 driver: one directory in the unified hierarchy.

Controllers must be enabled top-down through each ancestor's cgroup.subtree_control;
create() enables the ones Dockyard manages wherever the ancestor offers them. A limit
for a controller the leaf does not get (see its cgroup.controllers) raises Unsupported
naming the controller; no limit asked means no error.

Device rules: cgroup v2 has no devices.* files; access control needs an eBPF program
of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. That is not implemented
here, so `Resources.devices` is ignored on v2 (the container's mount namespace and
/dev setup remain the only device restriction).
"""

from __future__ import annotations

import os
import _signal as signal  # the C core: `signal` builds IntEnums (importing enum) at import
from ..._path import Path

from dockyard.errors import FailedPrecondition, InvalidArgument, Unsupported

from .base import (
    CgroupInfo,
    ManagerBase,
    Stats,
    parse_flat_keyed,
    read_flat_keyed,
    read_optional_int,
    read_text,
    read_v2_controllers,
    relative_cgroup_path,
    wait_until,
    write_value,
)
from .resources import Resources, blkio_weight_to_io_weight, shares_to_weight

#: controllers Dockyard enables for containers when the hierarchy offers them
MANAGED_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")


class V2Manager(ManagerBase):
    version = 2
    #: how long freeze() waits for cgroup.events to report "frozen 1"
    freeze_timeout = 10.0

    def __init__(self, cgroups_path: str, info: CgroupInfo) -> None:
        self._rel = relative_cgroup_path(cgroups_path)
        self._root = Path(info.mountpoint)
        self._path = self._root / self._rel

    def __repr__(self) -> str:
        return f"V2Manager({self._path})"

    @property
    def paths(self) -> dict[str, Path]:
        return {"": self._path}

    # ---- lifecycle ----------------------------------------------------------------

    def create(self) -> None:
        current = self._root
        for part in self._rel.parts:
            _enable_controllers(current)
            current = current / part
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass

    def add_pid(self, pid: int) -> None:
        write_value(self._path / "cgroup.procs", pid)

    # ---- limits -------------------------------------------------------------------

    def apply(self, res: Resources) -> None:
        """Write the limits `res` asks for; every controller is checked before any write.
        `disable_oom_killer` has no v2 equivalent and is ignored (Docker warns likewise)."""
        wants = {
            "cpu": res.cpu_shares is not None or res.cpu_quota is not None
            or res.cpu_period is not None,
            "cpuset": res.cpuset_cpus is not None or res.cpuset_mems is not None,
            "memory": res.memory_limit is not None or res.memory_swap is not None
            or res.memory_reservation is not None,
            "pids": res.pids_limit is not None,
            "io": res.blkio_weight is not None,
        }
        wanted = [name for name, on in wants.items() if on]
        if wanted:
            available = read_v2_controllers(self._path)
            missing = [name for name in wanted if name not in available]
            if missing:
                raise Unsupported(
                    f"cgroup {self._path}: the {', '.join(missing)} controller"
                    f"{'s are' if len(missing) > 1 else ' is'} not available "
                    f"(cgroup.controllers: {' '.join(available) or 'none'}; on a hybrid host "
                    "controllers bound to cgroup v1 cannot be used in v2); cannot apply "
                    f"{', '.join(missing)} limits"
                )
        d = self._path
        if wants["cpu"]:
            if res.cpu_shares is not None:
                write_value(d / "cpu.weight", shares_to_weight(res.cpu_shares))
            if res.cpu_quota is not None or res.cpu_period is not None:
                quota = "max" if res.cpu_quota in (None, -1) else str(res.cpu_quota)
                value = quota if res.cpu_period is None else f"{quota} {res.cpu_period}"
                write_value(d / "cpu.max", value)
        if res.cpuset_cpus is not None:
            write_value(d / "cpuset.cpus", res.cpuset_cpus)
        if res.cpuset_mems is not None:
            write_value(d / "cpuset.mems", res.cpuset_mems)
        if wants["memory"]:
            _apply_memory(d, res)
        if res.pids_limit is not None:
            write_value(d / "pids.max", "max" if res.pids_limit < 0 else res.pids_limit)
        if res.blkio_weight is not None:
            # BFQ takes the v1 range directly; iocost's io.weight is 1..10000.
            # Neither file (no BFQ, no iocost): the weight is dropped, as Docker does.
            if (d / "io.bfq.weight").exists():
                write_value(d / "io.bfq.weight", f"default {res.blkio_weight}")
            elif (d / "io.weight").exists():
                write_value(d / "io.weight", f"default {blkio_weight_to_io_weight(res.blkio_weight)}")
        # res.devices: needs eBPF on v2 (see the module docstring) - deliberately skipped.

    # ---- freezer ------------------------------------------------------------------

    def _can_freeze(self) -> bool:
        return (self._path / "cgroup.freeze").exists()

    def _require_freezer(self, purpose: str) -> Path:
        freeze_file = self._path / "cgroup.freeze"
        if not freeze_file.exists() and self._path.is_dir():
            raise Unsupported(
                f"cgroup {self._path}: cannot {purpose}: this kernel has no cgroup v2 "
                "freezer (cgroup.freeze needs Linux 5.2)"
            )
        return freeze_file

    def _frozen_event(self) -> int:
        return read_flat_keyed(self._path / "cgroup.events").get("frozen", 0)

    def freeze(self) -> None:
        freeze_file = self._require_freezer("freeze")
        write_value(freeze_file, "1")
        if wait_until(lambda: self._frozen_event() == 1, self.freeze_timeout):
            return
        write_value(freeze_file, "0")
        raise FailedPrecondition(
            f"cgroup {self._path}: could not freeze within {self.freeze_timeout:g}s "
            "(cgroup.events never reported 'frozen 1')"
        )

    def thaw(self) -> None:
        write_value(self._require_freezer("thaw"), "0")
        # stays frozen while an ancestor is frozen: do not wait for ever
        wait_until(lambda: self._frozen_event() == 0, 1.0)

    def is_frozen(self) -> bool:
        self._require_freezer("read the freezer state")
        events = parse_flat_keyed(read_text(self._path / "cgroup.events"))
        return events.get("frozen", 0) == 1

    def kill_all(self, sig: int) -> None:
        # cgroup.kill (Linux 5.14) SIGKILLs the whole subtree atomically, frozen or not
        kill_file = self._path / "cgroup.kill"
        if sig == signal.SIGKILL and kill_file.exists():
            write_value(kill_file, "1")
            # leave no frozen cgroup behind (like the v1 path). Check cgroup.freeze, not
            # cgroup.events: dying tasks report "frozen 0" until the cgroup is empty.
            freeze_file = self._path / "cgroup.freeze"
            if freeze_file.exists() and read_text(freeze_file) == "1":
                self.thaw()
            return
        super().kill_all(sig)

    # ---- accounting ---------------------------------------------------------------

    def oom_kill_count(self) -> int:
        return read_flat_keyed(self._path / "memory.events").get("oom_kill", 0)

    def stats(self) -> Stats:
        d = self._path
        cpu = read_flat_keyed(d / "cpu.stat")
        if not cpu and not d.is_dir():
            read_text(d / "cpu.stat")  # the cgroup is gone: raise FileNotFoundError
        mem_stat = read_flat_keyed(d / "memory.stat")
        pids_current = read_optional_int(d / "pids.current")
        pids_limit = read_optional_int(d / "pids.max")
        if pids_current is None:
            pids_current = len(self.pids())
        return Stats(
            cpu_usage_ns=cpu.get("usage_usec", 0) * 1000,
            cpu_user_ns=cpu["user_usec"] * 1000 if "user_usec" in cpu else None,
            cpu_system_ns=cpu["system_usec"] * 1000 if "system_usec" in cpu else None,
            memory_usage=read_optional_int(d / "memory.current") or 0,
            memory_limit=read_optional_int(d / "memory.max"),
            memory_cache=mem_stat.get("file"),
            pids_current=pids_current,
            pids_limit=pids_limit,
            oom_kill_count=self.oom_kill_count(),
            per_cpu_usage_ns=(),  # v2 has no per-CPU usage file
            memory_max_usage=read_optional_int(d / "memory.peak"),
            cpu_periods=cpu.get("nr_periods", 0),
            cpu_throttled_periods=cpu.get("nr_throttled", 0),
            cpu_throttled_ns=cpu.get("throttled_usec", 0) * 1000,
            memory_stat=mem_stat,
        )


# ---- helpers ------------------------------------------------------------------------


def _enable_controllers(directory: Path) -> None:
    """Enable the managed controllers `directory` offers for its children.

    Failures are tolerated (e.g. EBUSY from the no-internal-processes rule): the
    controller is then missing from the leaf and apply() reports it if it is needed."""
    available = set(read_v2_controllers(directory))
    try:
        enabled = set(read_text(directory / "cgroup.subtree_control").split())
    except FileNotFoundError:
        return
    for name in MANAGED_CONTROLLERS:
        if name in available and name not in enabled:
            try:
                write_value(directory / "cgroup.subtree_control", f"+{name}")
            except OSError:
                pass


def _apply_memory(d: Path, res: Resources) -> None:
    if res.memory_limit is not None:
        write_value(d / "memory.max", "max" if res.memory_limit == -1 else res.memory_limit)
    if res.memory_swap is not None and (d / "memory.swap.max").exists():
        # OCI swap is memory+swap; v2 limits swap alone. No file = no swap accounting:
        # dropped, as Docker does.
        if res.memory_swap == -1:
            swap = "max"
        else:
            if res.memory_limit is None or res.memory_limit <= 0:
                raise InvalidArgument(
                    f"cgroup {d}: memory swap limit {res.memory_swap} needs a memory limit"
                )
            swap = str(res.memory_swap - res.memory_limit)
        write_value(d / "memory.swap.max", swap)
    if res.memory_reservation is not None:
        value = "max" if res.memory_reservation == -1 else res.memory_reservation
        write_value(d / "memory.low", value)
