"""Read-side views: Docker's container inspect JSON, ps rows and filters, top, stats."""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time

from .. import _util
from ..errors import Conflict, InvalidArgument
from . import lifecycle
from .core import Engine
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .recordwatch import Watcher


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
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": _exec_ids(engine, c),
        "HostConfig": hc, "GraphDriver": graph, "Mounts": _mounts(c),
        "Config": cfg,
        "NetworkSettings": _network_settings(c),
    }
    return out


def _exec_ids(engine: Engine, c: Container) -> list[str] | None:
    """Docker's ExecIDs: the exec instances of a running container not finished yet; null
    when there are none (Docker's empty list encodes as null)."""
    if not c.running:
        return None
    from .execs import ids_of

    return ids_of(engine, c.id) or None


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


#: RFC 3339 text -> POSIX time, memoized: a listing parses the same few timestamps each time
epoch = functools.lru_cache(maxsize=4096)(_util.parse_rfc3339)


def status_text(c: Container, now: float | None = None) -> str:
    """Docker's human Status column: 'Up 5 minutes', 'Exited (0) 3 seconds ago', 'Created'."""
    now = now or time.time()
    st = c.state
    if st.get("Running"):
        up = _util.human_duration(now - epoch(st["StartedAt"]))
        return f"Up {up} (Paused)" if st.get("Paused") else f"Up {up}"
    if st.get("Status") == "exited" or st.get("FinishedAt", _util.ZERO_TIME) != _util.ZERO_TIME:
        ago = _util.human_duration(now - epoch(st["FinishedAt"]))
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


# ---- listings: container records parsed once per process -----------------------------------
#
# A long-lived reader (`dockyard serve`) lists every record on each `GET /containers/json`,
# and most records do not change between two listings, so `records` keeps them parsed and
# reads a record again only when it may have changed. Writers replace records atomically (a
# new inode each time, see `_util.write_json`), from any process (CLI, the shim's exit
# command, another server), and hostconfig.json is always rewritten before config.v2.json
# (`ContainerStore.save`), so a changed HostConfig shows as a changed record too. Two ways
# to know what changed:
#
# * stat (any process): each record is kept with the (inode, mtime, size) it had when read
#   and read again when a `stat` differs. File times are coarse (a clock tick), so a record
#   whose mtime is younger than `_RACY_NS` when read is not trusted later ("racy git"): a
#   rewrite within the same tick, even on a reused inode, cannot then pass for it.
# * inotify (`watch_records()`, which the API server calls): the containers dir and each
#   container's dir are watched, so a listing costs one read of the event queue instead of a
#   stat per container (`recordwatch`). A dir is watched before its record is read; an
#   overflowing queue, or anything unexpected, means a full rescan. Without inotify this
#   falls back to stat.

_RACY_NS = 200_000_000


class _Entry:
    __slots__ = ("key", "container", "memo")

    def __init__(self, key: tuple[int, int, int] | None, container: Container) -> None:
        self.key = key
        self.container = container
        #: values derived from this version of the record (the API's encoded summary)
        self.memo: dict[str, Any] = {}


_records: dict[str, dict[str, _Entry]] = {}  # containers dir -> container ID -> entry
_watching = False
_watchers: dict[str, "Watcher | None"] = {}  # containers dir -> its watcher (None: unavailable)
_lock = threading.Lock()


def watch_records(on: bool = True) -> None:
    """Let `records` follow changes by inotify (for a long-lived process)."""
    global _watching
    _watching = on


def _load(base: str, cid: str, old: _Entry | None, trusted_before: int) -> _Entry | None:
    """`cid`'s record: `old` if its stat still matches, else read afresh (None if absent)."""
    path = f"{base}/{cid}/config.v2.json"
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # being created or removed right now
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    if old is not None and old.key == key:
        return old
    try:
        doc = _util.read_json(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    # stat before read: should the file change in between, the key is older than the content
    # and the next look reads it again
    return _Entry(key if st.st_mtime_ns < trusted_before else None,
                  Container(doc, None, f"{base}/{cid}/hostconfig.json"))


def records(engine: Engine) -> list[Container]:
    """Every container record, as `engine.containers.all()`, but parsed once per process and
    version of the file. The records are shared between callers: read them, never change
    them (load a container afresh to change it)."""
    base = engine.containers.dir_str
    with _lock:
        w = _watcher(base) if _watching else None
        changed = w.drain() if w is not None else None
        entries = _records.get(base)
        trusted_before = time.time_ns() - _RACY_NS
        if entries is not None and changed is not None:
            assert w is not None
            for cid in changed:  # the others cannot have changed: no stat for them
                got = _load(base, cid, None, trusted_before) if len(cid) == 64 and w.watch(cid) else None
                if got is None:
                    entries.pop(cid, None)
                else:
                    entries[cid] = got
            if not w.broken:
                return [ent.container for ent in entries.values()]
        old = entries or {}
        new: dict[str, _Entry] = {}
        try:
            it = os.scandir(base)
        except FileNotFoundError:
            _records.pop(base, None)
            _watchers.pop(base, None)
            return []
        with it:
            for e in it:
                cid = e.name
                if len(cid) != 64 or (w is not None and not w.watch(cid)):
                    continue
                got = _load(base, cid, old.get(cid), trusted_before)
                if got is not None:
                    new[cid] = got
        _records[base] = new
        if w is not None and w.broken:
            w.close()
            if w.exhausted:  # out of watches: stat from now on
                _watchers[base] = None
            else:  # the dir itself went: a new watcher next time
                _watchers.pop(base, None)
        return [ent.container for ent in new.values()]


def memo(engine: Engine, c: Container) -> dict[str, Any] | None:
    """A dict that lives as long as `c`'s version of its record in `records`' cache, for
    values derived from it; None for a container that did not come from there."""
    return memos(engine)(c)


def memos(engine: Engine) -> Callable[[Container], dict[str, Any] | None]:
    """`memo` for many containers of one engine."""
    entries = _records.get(engine.containers.dir_str) or {}

    def get(c: Container) -> dict[str, Any] | None:
        ent = entries.get(c.doc["ID"])
        return ent.memo if ent is not None and ent.container is c else None
    return get


def _watcher(base: str) -> "Watcher | None":
    if base not in _watchers:
        from .recordwatch import Watcher

        try:
            _watchers[base] = Watcher(base)
        except OSError:
            _watchers[base] = None  # no inotify (or no instance left): stat it is
    return _watchers[base]


def list_containers(engine: Engine, all_: bool = False, filters: list[str] | None = None,
                    last: int = -1) -> list[Container]:
    """`ps`: the containers passing the filters, newest first. Read-only records (`records`)."""
    flt = _filters(filters or [])
    if "status" in flt:
        for s in flt["status"]:
            if s not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise InvalidArgument(f"invalid filter 'status={s}'")
    cs = []
    for c in records(engine):
        if c.doc["State"].get("Running"):  # does it still? (the shim may have been killed)
            got = lifecycle.refresh_or_none(engine, c)
            if got is None:
                continue
            c = got
        cs.append(c)
    cs.sort(key=lambda c: c.doc["Created"], reverse=True)
    if last > 0:
        cs = cs[:last]
        all_ = True
    running_only = not all_ and "status" not in flt and "exited" not in flt
    if not flt:
        return [c for c in cs if c.doc["State"].get("Running")] if running_only else cs
    out = []
    for c in cs:
        if running_only and not c.doc["State"].get("Running"):
            continue
        state = state_word(c)
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
    from .stats import _blkio, _net

    nets = _net(c).values()
    rx, tx = sum(n["rx_bytes"] for n in nets), sum(n["tx_bytes"] for n in nets)
    bio = _blkio(mgr.version, mgr.paths).get("io_service_bytes_recursive") or []
    rd = sum(e["value"] for e in bio if e["op"][:1] in "rR")
    wr = sum(e["value"] for e in bio if e["op"][:1] in "wW")

    def io(a: int, b: int) -> str:  # Docker: units.HumanSizeWithPrecision(x, 3)
        return f"{_util.human_size(a, 3)} / {_util.human_size(b, 3)}"

    return {"ID": c.id, "Container": c.id[:12], "Name": name, "CPUPerc": f"{cpu:.2f}%",
            "MemUsage": f"{_util.bytes_size(usage)} / {_util.bytes_size(mem_limit)}", "MemPerc": f"{mem_pct:.2f}%",
            "NetIO": io(rx, tx), "BlockIO": io(rd, wr), "PIDs": str(s2.pids_current)}


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
