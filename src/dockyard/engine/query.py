"""Read-side views: Docker's container inspect JSON, ps rows and filters, top, stats."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from .. import _util
from ..errors import Conflict, InvalidArgument
from . import lifecycle
from .core import Engine
from .records import Container


def inspect(engine: Engine, c: Container) -> dict[str, Any]:
    c = lifecycle.refresh(engine, c)
    d = dict(c.doc)
    st = dict(c.state)
    st.setdefault("Status", "created")
    d["State"] = {k: st.get(k) for k in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead",
                                          "Pid", "ExitCode", "Error", "StartedAt", "FinishedAt")}
    hc = dict(c.host_config)
    try:
        graph = engine.layers.graph_driver(c.id)
    except Exception:
        graph = {"Name": "overlay2", "Data": None}
    cfg = dict(c.config)
    out: dict[str, Any] = {
        "Id": c.id, "Created": d["Created"], "Path": d["Path"], "Args": d["Args"], "State": d["State"],
        "Image": d["Image"], "ResolvConfPath": d.get("ResolvConfPath", ""), "HostnamePath": d.get("HostnamePath", ""),
        "HostsPath": d.get("HostsPath", ""), "LogPath": d.get("LogPath", ""), "Name": d["Name"],
        "RestartCount": d.get("RestartCount", 0), "Driver": "overlay2", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": d.get("ExecIDs"),
        "HostConfig": hc, "GraphDriver": graph, "Mounts": _mounts(c),
        "Config": cfg,
        "NetworkSettings": _network_settings(c),
    }
    return out


def _mounts(c: Container) -> list[dict[str, Any]]:
    """Docker's inspect Mounts (engine/mounts.py)."""
    if not c.doc.get("MountPoints"):
        return []
    from .mounts import inspect_mounts

    return inspect_mounts(c)


def _network_settings(c: Container) -> dict[str, Any]:
    from .netattach import empty_settings

    ns = dict(c.doc.get("NetworkSettings") or empty_settings())
    if not c.running:
        ns["Ports"] = {}
    return ns


def ports_text(c: Container) -> str:
    """ps's PORTS column: 0.0.0.0:8088->1234/tcp, 80/tcp (exposed, not published)."""
    if not c.running:
        return ""
    parts = []
    ports = (c.doc.get("NetworkSettings") or {}).get("Ports") or {}
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        binds = ports[key]
        if not binds:
            parts.append(key)
        for b in binds or []:
            parts.append(f"{b['HostIp']}:{b['HostPort']}->{key}")
    return ", ".join(parts)


def status_text(c: Container, now: float | None = None) -> str:
    """Docker's human Status column: 'Up 5 minutes', 'Exited (0) 3 seconds ago', 'Created'."""
    now = now or time.time()
    st = c.state
    if st.get("Running"):
        up = _util.human_duration(now - _util.parse_rfc3339(st["StartedAt"]))
        return f"Up {up} (Paused)" if st.get("Paused") else f"Up {up}"
    if st.get("Status") == "exited" or st.get("FinishedAt", _util.ZERO_TIME) != _util.ZERO_TIME:
        ago = _util.human_duration(now - _util.parse_rfc3339(st["FinishedAt"]))
        return f"Exited ({st.get('ExitCode', 0)}) {ago} ago"
    return "Created"


def state_word(c: Container) -> str:
    st = c.state
    if st.get("Running"):
        return "paused" if st.get("Paused") else "running"
    return "exited" if st.get("Status") == "exited" else str(st.get("Status") or "created")


def label_match(labels: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    if k not in labels:
        return False
    return not sep or labels[k] == v


def _filters(items: list[str]) -> dict[str, list[str]]:
    return _util.filter_map(items, ("name", "status", "label", "ancestor", "exited", "id", "before", "since"))


def list_containers(engine: Engine, all_: bool = False, filters: list[str] | None = None,
                    last: int = -1) -> list[Container]:
    flt = _filters(filters or [])
    cs = [c for c in (lifecycle.refresh_or_none(engine, c) for c in engine.containers.all()) if c is not None]
    cs.sort(key=lambda c: c.doc["Created"], reverse=True)
    if "status" in flt:
        for s in flt["status"]:
            if s not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise InvalidArgument(f"invalid filter 'status={s}'")
    if last > 0:
        cs = cs[:last]
        all_ = True
    out = []
    for c in cs:
        state = state_word(c)
        if not all_ and not c.running and "status" not in flt and "exited" not in flt:
            continue
        if "status" in flt and state not in flt["status"]:
            continue
        if "name" in flt and not any(__import__("re").search(n, c.name) for n in flt["name"]):
            continue
        if "id" in flt and not any(c.id.startswith(i) for i in flt["id"]):
            continue
        if "label" in flt and not all(label_match(c.config.get("Labels") or {}, l) for l in flt["label"]):
            continue
        if "exited" in flt and (state != "exited" or str(c.state.get("ExitCode")) not in flt["exited"]):
            continue
        if "ancestor" in flt and not any(_is_ancestor(engine, c, a) for a in flt["ancestor"]):
            continue
        out.append(c)
    return out


def _is_ancestor(engine: Engine, c: Container, ref: str) -> bool:
    try:
        img = engine.images.resolve(ref)
    except Exception:
        return False
    return bool(c.doc["Image"] == img.id)


def command_text(c: Container) -> str:
    parts = [c.doc.get("Path") or ""] + list(c.doc.get("Args") or [])
    return " ".join(p for p in parts)


def ps_row(engine: Engine, c: Container, size: bool = False) -> dict[str, Any]:
    labels = c.config.get("Labels") or {}
    row: dict[str, Any] = {
        "ID": c.id, "Image": c.config.get("Image") or c.doc["Image"], "Command": command_text(c),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(_util.parse_rfc3339(c.doc["Created"]))),
        "RunningFor": _util.human_duration(time.time() - _util.parse_rfc3339(c.doc["Created"])) + " ago",
        "Ports": ports_text(c), "State": state_word(c), "Status": status_text(c), "Names": c.name,
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()), "Mounts": "",
        "Networks": ",".join((c.doc.get("NetworkSettings") or {}).get("Networks") or {}),
        "LocalVolumes": "0",
    }
    row["Label"] = lambda name: labels.get(name, "")
    if c.doc.get("MountPoints"):  # volumes: Docker's MOUNTS and LOCAL VOLUMES columns
        from .mounts import ps_columns

        row["Mounts"], row["LocalVolumes"] = ps_columns(c)
    if size:
        try:
            rw = engine.layers.rw_size(c.id)
        except Exception:
            rw = 0
        try:
            virt = engine.images.resolve(c.doc["Image"]).size + rw
        except Exception:
            virt = rw
        row["Size"] = f"{_util.human_size(rw)} (virtual {_util.human_size(virt)})"
    else:
        row["Size"] = ""
    return row


def top(engine: Engine, c: Container, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    """Docker's top: run host `ps` and keep the rows whose PID is in the container's cgroup."""
    c = lifecycle.refresh(engine, c)
    if not c.running:
        raise Conflict(f"Container {c.id} is not running")
    from ..runtime.cgroups import open_manager

    pids = set(open_manager(f"/dockyard/{c.id}").pids())
    args = ps_args or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise Conflict("ps is not installed on the host (Debian package procps)") from None
    except subprocess.CalledProcessError as e:
        raise InvalidArgument(f"Error running top: ps {' '.join(args)}: {e.stderr.strip()}") from None
    lines = out.splitlines()
    if not lines:
        return [], []
    header = lines[0].split()
    try:
        pid_col = header.index("PID")
    except ValueError:
        raise InvalidArgument("Couldn't find PID field in ps output") from None
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            rows.append(fields)
    return header, rows


def stats(engine: Engine, c: Container, interval: float = 0.25) -> dict[str, Any]:
    """One sample with CPU % measured over `interval` (as `docker stats --no-stream`)."""
    from ..runtime.cgroups import open_manager

    c = lifecycle.refresh(engine, c)
    name = c.name
    if not c.running:
        return {"ID": c.id, "Name": name, "CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%",
                "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0", "Container": c.id[:12]}
    mgr = open_manager(f"/dockyard/{c.id}")
    s1, t1 = mgr.stats(), time.monotonic()
    time.sleep(interval)
    s2, t2 = mgr.stats(), time.monotonic()
    ncpu = os.cpu_count() or 1
    cpu = (s2.cpu_usage_ns - s1.cpu_usage_ns) / ((t2 - t1) * 1e9) * 100.0
    mem_limit = s2.memory_limit or _host_memory()
    cache = s2.memory_stat.get("total_inactive_file", s2.memory_stat.get("inactive_file", 0))
    usage = max(0, s2.memory_usage - cache)
    mem_pct = usage / mem_limit * 100.0 if mem_limit else 0.0
    _ = ncpu
    return {"ID": c.id, "Container": c.id[:12], "Name": name, "CPUPerc": f"{cpu:.2f}%",
            "MemUsage": f"{_util.bytes_size(usage)} / {_util.bytes_size(mem_limit)}", "MemPerc": f"{mem_pct:.2f}%",
            "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": str(s2.pids_current)}


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
