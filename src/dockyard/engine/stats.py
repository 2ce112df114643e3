"""Container resource statistics in Docker's `ContainerStatsResponse` shape (cgroup v1 and
v2): one sample per call; the caller pairs two samples for the `pre*` fields."""

from __future__ import annotations

import os
import time
from typing import Any

from . import query
from .records import Container


def _system_cpu_ns() -> int:
    """/proc/stat's first line as nanoseconds (Docker's system_cpu_usage)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:8]
        hz = os.sysconf("SC_CLK_TCK")
        return int(sum(int(x) for x in fields) * 1_000_000_000 // hz)
    except (OSError, ValueError):
        return 0


def _net(c: Container) -> dict[str, Any]:
    """Per-interface counters from inside the container's network namespace (its init's
    /proc/PID/net/dev), Docker's `networks` map."""
    pid = int(c.state.get("Pid") or 0)
    out: dict[str, Any] = {}
    if not pid:
        return out
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def sample(c: Container) -> dict[str, Any]:
    """One sample: Docker's stats JSON without the `pre*` fields."""
    now = time.time()
    read = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
    base: dict[str, Any] = {"read": read, "name": "/" + c.name, "id": c.id, "num_procs": 0,
                            "storage_stats": {}, "pids_stats": {}, "blkio_stats": {
                                "io_service_bytes_recursive": None, "io_serviced_recursive": None,
                                "io_queue_recursive": None, "io_service_time_recursive": None,
                                "io_wait_time_recursive": None, "io_merged_recursive": None,
                                "io_time_recursive": None, "sectors_recursive": None},
                            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                                        "usage_in_usermode": 0},
                                          "throttling_data": {"periods": 0, "throttled_periods": 0,
                                                              "throttled_time": 0}},
                            "memory_stats": {}}
    if not c.running:
        return base
    from ..runtime.cgroups import open_manager

    try:
        mgr = open_manager(f"/dockyard/{c.id}")
        s = mgr.stats()
    except Exception:
        return base
    ncpu = len(s.per_cpu_usage_ns) or os.cpu_count() or 1
    usage: dict[str, Any] = {"total_usage": s.cpu_usage_ns, "usage_in_kernelmode": s.cpu_system_ns or 0,
                             "usage_in_usermode": s.cpu_user_ns or 0}
    if mgr.version == 1 and s.per_cpu_usage_ns:
        usage["percpu_usage"] = list(s.per_cpu_usage_ns)
    base["cpu_stats"] = {"cpu_usage": usage, "system_cpu_usage": _system_cpu_ns(), "online_cpus": ncpu,
                         "throttling_data": {"periods": s.cpu_periods, "throttled_periods": s.cpu_throttled_periods,
                                             "throttled_time": s.cpu_throttled_ns}}
    limit = s.memory_limit or query._host_memory()
    mem: dict[str, Any] = {"usage": s.memory_usage, "stats": dict(s.memory_stat), "limit": limit}
    if mgr.version == 1 and s.memory_max_usage is not None:
        mem["max_usage"] = s.memory_max_usage
    base["memory_stats"] = mem
    base["pids_stats"] = {"current": s.pids_current, **({"limit": s.pids_limit} if s.pids_limit else {})}
    nets = _net(c)
    if nets:
        base["networks"] = nets
    return base


def empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": 0, "online_cpus": 0,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
