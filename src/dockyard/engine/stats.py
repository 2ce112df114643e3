"""Container resource statistics in Docker's `ContainerStatsResponse` shape (cgroup v1 and
v2): one sample per call; the caller pairs two samples for the `pre*` fields."""

from __future__ import annotations

import os
import time

from . import query
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
    base["blkio_stats"].update(_blkio(mgr.version, mgr.paths))
    nets = _net(c)
    if nets:
        base["networks"] = nets
    return base


def _blkio(version: int, paths: dict[str, Any]) -> dict[str, Any]:
    """Docker's blkio_stats: v1 from the io_service_bytes/io_serviced files (ops as the
    kernel names them: Read, Write, Sync, Async, Discard, Total), v2 from io.stat (read and
    write entries, as moby converts them). The docker CLI sums the entries whose op starts
    with r or w into its BLOCK I/O column."""
    out: dict[str, Any] = {}
    if version == 1:
        d = paths.get("blkio")
        if d is None:
            return out
        # the first family whose files exist, in runc's order: CFQ's, BFQ's, the throttle's
        for key, names in (("io_service_bytes_recursive", ("blkio.io_service_bytes_recursive",
                                                             "blkio.bfq.io_service_bytes_recursive",
                                                             "blkio.throttle.io_service_bytes_recursive")),
                           ("io_serviced_recursive", ("blkio.io_serviced_recursive",
                                                      "blkio.bfq.io_serviced_recursive",
                                                      "blkio.throttle.io_serviced_recursive"))):
            for name in names:
                try:
                    with open(os.path.join(d, name)) as f:
                        lines = f.read().splitlines()
                except OSError:
                    continue
                entries = []
                for line in lines:
                    parts = line.split()
                    if len(parts) == 3 and ":" in parts[0]:
                        major, _, minor = parts[0].partition(":")
                        entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                                        "value": int(parts[2])})
                out[key] = entries
                break
        return out
    d = paths.get("")
    if d is None:
        return out
    try:
        with open(os.path.join(d, "io.stat")) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    sbytes: list[dict[str, Any]] = []
    sios: list[dict[str, Any]] = []
    for line in lines:
        dev, *fields = line.split()
        major, _, minor = dev.partition(":")
        kv = dict(f.split("=", 1) for f in fields if "=" in f)
        for op, b, n in (("read", "rbytes", "rios"), ("write", "wbytes", "wios")):
            sbytes.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv.get(b, 0))})
            sios.append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv.get(n, 0))})
    out["io_service_bytes_recursive"], out["io_serviced_recursive"] = sbytes, sios
    return out


def empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": 0, "online_cpus": 0,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
