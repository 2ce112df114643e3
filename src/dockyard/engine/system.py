"""System-wide views shared by the CLI and the Engine API: info, version, disk usage.

The values are Docker's `SystemInfo` / `SystemVersion` documents, so `dockyard info
--format` and `GET /info` print the same thing.
"""

from __future__ import annotations

import os
import platform
import time

from .. import API_VERSION, __version__
from .core import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MIN_API_VERSION = "1.24"


def arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def version() -> dict[str, Any]:
    """Docker's SystemVersion."""
    details = {"ApiVersion": API_VERSION, "Arch": arch(), "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": "n/a", "KernelVersion": platform.release(),
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
               "PythonVersion": platform.python_version()}
    return {"Platform": {"Name": "Dockyard Engine"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": "n/a", "Os": "linux", "Arch": arch(),
            "KernelVersion": platform.release(), "BuildTime": ""}


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _host_id(engine: Engine) -> str:
    """A stable engine ID, made once per data root (Docker's engine-id file)."""
    path = engine.paths.root / "engine-id"
    got = _read(str(path))
    if got:
        return got
    import uuid

    from .. import _util

    new = str(uuid.uuid4())
    try:
        engine.paths.root.mkdir(parents=True, exist_ok=True)
        _util.atomic_write(path, new)
    except OSError:
        pass
    return new


def info(engine: Engine) -> dict[str, Any]:
    """Docker's SystemInfo for this engine and host."""
    from ..runtime.cgroups import detect
    from . import query

    cs = query.list_containers(engine, all_=True)
    running = sum(1 for c in cs if c.running and not c.state.get("Paused"))
    paused = sum(1 for c in cs if c.state.get("Paused"))
    cg = detect()
    root = str(engine.paths.root)
    v1 = cg.version == 1
    mem_dir = "/sys/fs/cgroup/memory" if v1 else "/sys/fs/cgroup"
    warnings: list[str] = []
    ipv4_fwd = _read("/proc/sys/net/ipv4/ip_forward") == "1"
    if not ipv4_fwd:
        warnings.append("WARNING: IPv4 forwarding is disabled")
    return {
        "ID": _host_id(engine), "Containers": len(cs), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(cs) - running - paused,
        "Images": len(engine.images.list_images()),
        "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", backing_fs(root)], ["Supports d_type", "true"],
                                               ["Using metacopy", "false"], ["Native Overlay Diff", "true"],
                                               ["userxattr", "false"]],
        "DockerRootDir": root, "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                                           "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": os.path.isdir(mem_dir), "SwapLimit": os.path.exists(
            f"{mem_dir}/memory.memsw.limit_in_bytes" if v1 else "/sys/fs/cgroup/cgroup.controllers"),
        "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
        "PidsLimit": True, "OomKillDisable": v1, "IPv4Forwarding": ipv4_fwd,
        "BridgeNfIptables": _read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        "BridgeNfIp6tables": _read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        "Debug": bool(os.environ.get("DOCKYARD_DEBUG")), "NFd": _nfd(), "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z",
        "LoggingDriver": "json-file", "CgroupDriver": cg.driver, "CgroupVersion": str(cg.version),
        "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": os_name(),
        "OSVersion": _os_field("VERSION_ID"), "OSType": "linux", "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 1, "MemTotal": query._host_memory(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None, "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True,
                                                          "Official": True}},
                           "Mirrors": None},
        "GenericResources": None, "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""), "NoProxy": os.environ.get("NO_PROXY", ""),
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {"dockyard": {"path": "dockyard-runtime"}, "runc": {"path": "runc"}, "crun": {"path": "crun"}},
        "DefaultRuntime": "dockyard",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": _security_options(), "ProductLicense": "Apache-2.0",
        "DefaultAddressPools": [{"Base": "10.200.0.0/14", "Size": 16}, {"Base": "10.204.0.0/14", "Size": 24}],
        "Warnings": warnings, "CDISpecDirs": [],
    }


def _nfd() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _security_options() -> list[str]:
    return []


def backing_fs(path: str) -> str:
    try:
        best = ("", "")
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if path.startswith(parts[1]) and len(parts[1]) >= len(best[0]):
                    best = (parts[1], parts[2])
        return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(best[1], best[1]) or "unknown"
    except OSError:
        return "unknown"


def _os_field(key: str) -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def os_name() -> str:
    return _os_field("PRETTY_NAME") or "Linux"


def disk_usage(engine: Engine) -> dict[str, Any]:
    """Docker's /system/df pieces: LayersSize, Images (ImageSummary with Containers counts),
    container rw sizes by ID, Volumes with UsageData."""
    from ..errors import DockyardError

    images = engine.images.list_images()
    containers = engine.containers.all()
    users: dict[str, int] = {}
    for c in containers:
        users[str(c.doc.get("Image"))] = users.get(str(c.doc.get("Image")), 0) + 1
    layers = sum(layer.size for layer in engine.layers.list_layers())
    img_rows = []
    for img in images:
        img_rows.append({"Id": img.id, "ParentId": img.parent or "", "RepoTags": list(img.repo_tags),
                         "RepoDigests": list(img.repo_digests), "Created": _epoch(img.created),
                         "Size": img.size, "SharedSize": -1, "VirtualSize": img.size,
                         "Labels": (img.config.get("config") or {}).get("Labels") or {},
                         "Containers": users.get(img.id, 0)})
    rw: dict[str, int] = {}
    for c in containers:
        try:
            rw[c.id] = engine.layers.rw_size(c.id)
        except (DockyardError, OSError):
            rw[c.id] = 0
    vols = []
    try:
        from . import volumes

        used: dict[str, int] = {}
        for c in containers:
            for mp in (c.doc.get("MountPoints") or {}).values():
                if mp.get("Name") and mp.get("Type") == "volume":
                    used[mp["Name"]] = used.get(mp["Name"], 0) + 1
        for v in volumes.list_volumes(engine):
            vols.append({"Name": v.name, "Driver": v.driver, "Mountpoint": str(v.mountpoint),
                         "CreatedAt": v.created_at, "Labels": v.labels, "Scope": "local", "Options": v.options,
                         "UsageData": {"Size": volumes.disk_usage(str(v.mountpoint)),
                                       "RefCount": used.get(v.name, 0)}})
    except (ImportError, DockyardError, OSError, AttributeError):
        pass
    return {"LayersSize": layers, "Images": img_rows, "ContainerSizes": rw, "Volumes": vols}


def _epoch(rfc3339: str) -> int:
    from .. import _util

    try:
        return int(_util.parse_rfc3339(rfc3339))
    except (ValueError, TypeError):
        return 0


def check_login(server: str, user: str, password: str) -> None:
    """`POST /auth`: check credentials against a registry without storing them (the client
    keeps them, as with Docker). Unauthorized when refused."""
    from ..registry.auth import StaticCredentials
    from ..registry.client import RegistryClient
    from .distmeta import check_reachable, registry_config

    host = server or "docker.io"
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = "docker.io"
    check_reachable(host)
    RegistryClient(host, "", registry_config(), StaticCredentials(user, password), actions="pull").check_login()
