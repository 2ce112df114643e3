"""Docker JSON shapes built from engine records (translation only): ContainerSummary,
stats in Docker's `ContainerStatsResponse` form, event filters, stream framing."""

from __future__ import annotations

import struct
import time
from typing import Any

from .. import _util
from ..engine import query
from ..engine.records import Container


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, uint32 BE length] + data."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def container_summary(engine: Any, c: Container, size: bool = False) -> dict[str, Any]:
    ns = c.doc.get("NetworkSettings") or {}
    ports: list[dict[str, Any]] = []
    if c.running:
        for key, binds in (ns.get("Ports") or {}).items():
            port, _, proto = key.partition("/")
            if not binds:
                ports.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            for b in binds or []:
                ports.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                              "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    hc = c.host_config
    out: dict[str, Any] = {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.config.get("Image") or c.doc["Image"],
        "ImageID": c.doc["Image"], "Command": query.command_text(c),
        "Created": int(_util.parse_rfc3339(c.doc["Created"])), "Ports": ports,
        "Labels": c.config.get("Labels") or {}, "State": query.state_word(c), "Status": query.status_text(c),
        "HostConfig": {"NetworkMode": hc.get("NetworkMode") or "bridge"},
        "NetworkSettings": {"Networks": ns.get("Networks") or {}},
        "Mounts": query._mounts(c),
    }
    if size:
        try:
            rw = engine.layers.rw_size(c.id)
        except Exception:
            rw = 0
        try:
            base = engine.images.resolve(c.doc["Image"]).size
        except Exception:
            base = 0
        out["SizeRw"], out["SizeRootFs"] = rw, rw + base
    return out


# ---- events -------------------------------------------------------------------------------

def event_matches(ev: dict[str, Any], flt: dict[str, list[str]]) -> bool:
    """Docker's events filters: type, event, container, image, label, network, volume, scope."""
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    typ = ev.get("Type", "")
    action = ev.get("Action", "")
    aid = actor.get("ID", "")
    for key, vals in flt.items():
        if not vals:
            continue
        if key == "type" and typ not in vals:
            return False
        if key in ("event", "status") and not any(action == v or action.split(":", 1)[0] == v for v in vals):
            return False
        if key == "container" and not (typ == "container" and any(
                aid.startswith(v) or attrs.get("name") == v.lstrip("/") for v in vals)):
            return False
        if key == "image" and not any(attrs.get("image") == v or (typ == "image" and (aid == v or attrs.get("name") == v))
                                      for v in vals):
            return False
        if key == "label" and not all(_label_ok(attrs, v) for v in vals):
            return False
        if key in ("network", "volume") and not (typ == key and any(aid.startswith(v) or attrs.get("name") == v
                                                                    for v in vals)):
            return False
        if key == "scope" and "local" not in vals:
            return False
    return True


def _label_ok(attrs: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    return k in attrs and (not sep or attrs[k] == v)


# ---- stats ----------------------------------------------------------------------------------

def _system_cpu_ns() -> int:
    """/proc/stat's first line as nanoseconds (Docker's system_cpu_usage)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:8]
        import os

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


def cgroup_sample(c: Container) -> dict[str, Any]:
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
    import os

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
