"""Container config (Docker's Config + HostConfig) -> OCI runtime spec (runc's specconv role)."""

from __future__ import annotations

import os

from ..errors import InvalidArgument
from ..kernel import caps as capmod
from ..oci import defaults
from ..runtime.rootfs import secure_join
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    try:
        with open(secure_join(rootfs, f"/etc/{name}"), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: str, user: str) -> tuple[int, int, list[int], str]:
    """'name', 'uid', 'name:group', 'uid:gid' -> (uid, gid, additional gids, home)."""
    user = user or "0"
    uname, _, gname = user.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid = gid = None
    home = "/"
    for row in passwd:
        if len(row) >= 7 and (row[0] == uname or (uname.isdigit() and row[2] == uname)):
            uid, gid, home = int(row[2]), int(row[3]), row[5] or "/"
            break
    if uid is None:
        if uname.isdigit():
            uid, gid = int(uname), 0
        else:
            raise InvalidArgument(f"unable to find user {uname}: no matching entries in passwd file")
    if gname:
        for row in groups:
            if len(row) >= 3 and (row[0] == gname or (gname.isdigit() and row[2] == gname)):
                gid = int(row[2])
                break
        else:
            if gname.isdigit():
                gid = int(gname)
            else:
                raise InvalidArgument(f"unable to find group {gname}: no matching entries in group file")
    extra: list[int] = []
    if not gname:
        for row in groups:
            if len(row) >= 4 and uname in row[3].split(",") and int(row[2]) != gid:
                extra.append(int(row[2]))
    assert gid is not None
    return uid, gid, extra, home


def _caps(hc: dict[str, Any]) -> list[str]:
    host = capmod.host_caps()
    if hc.get("Privileged"):
        return host
    add = [capmod.normalize(c) for c in hc.get("CapAdd") or []]
    drop = [capmod.normalize(c) for c in hc.get("CapDrop") or []]
    for c in add + drop:
        if c != "ALL" and c not in capmod.CAP_NUMBERS:
            raise InvalidArgument(f"unknown capability: \"{c}\"")
    base = list(capmod.DEFAULT_CAPS)
    if "ALL" in add:
        base = list(capmod.CAPS)
    else:
        base += [c for c in add if c not in base]
    if "ALL" in drop:
        base = [c for c in add if c != "ALL"] if "ALL" not in add else []
    else:
        base = [c for c in base if c not in drop]
    return [c for c in capmod.CAPS if c in base and c in host]


def _resources(hc: dict[str, Any], privileged: bool) -> dict[str, Any]:
    r: dict[str, Any] = {}
    if not privileged:
        r["devices"] = list(defaults.DEFAULT_DEVICE_RULES)
    else:
        r["devices"] = [{"allow": True, "access": "rwm"}]
    for d in hc.get("Devices") or []:
        st = os.stat(d["PathOnHost"])
        kind = "b" if (st.st_mode & 0o170000) == 0o060000 else "c"
        r["devices"].append({"allow": True, "type": kind, "major": os.major(st.st_rdev),
                             "minor": os.minor(st.st_rdev), "access": d.get("CgroupPermissions") or "rwm"})
    mem: dict[str, Any] = {}
    if hc.get("Memory"):
        mem["limit"] = hc["Memory"]
    if hc.get("MemorySwap"):
        mem["swap"] = hc["MemorySwap"]
    elif hc.get("Memory"):
        mem["swap"] = hc["Memory"] * 2  # Docker: swap defaults to the same amount again
    if hc.get("MemoryReservation"):
        mem["reservation"] = hc["MemoryReservation"]
    if hc.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    if mem:
        r["memory"] = mem
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = hc["NanoCpus"] * 100000 // 1_000_000_000
    if hc.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if hc.get("CpuQuota"):
        cpu["quota"] = hc["CpuQuota"]
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        r["cpu"] = cpu
    if hc.get("PidsLimit"):
        r["pids"] = {"limit": hc["PidsLimit"]}
    if hc.get("BlkioWeight"):
        r["blockIO"] = {"weight": hc["BlkioWeight"]}
    return r


def _namespaces(hc: dict[str, Any], lookup_pid: Any, netns: str | None = None) -> list[dict[str, Any]]:
    ns: list[dict[str, Any]] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    mode = hc.get("NetworkMode") or "default"
    if mode == "host":
        pass
    elif netns:
        ns.append({"type": "network", "path": netns})  # made and wired by the engine (bridge)
    elif mode.startswith("container:"):
        ns.append({"type": "network", "path": f"/proc/{lookup_pid(mode.split(':', 1)[1])}/ns/net"})
    else:
        ns.append({"type": "network"})
    from ..runtime.cgroups import detect

    if detect().version == 2:
        ns.append({"type": "cgroup"})
    for key, kind in (("PidMode", "pid"), ("IpcMode", "ipc")):
        mode = hc.get(key) or ""
        if mode == "host":
            ns = [n for n in ns if n["type"] != kind]
        elif mode.startswith("container:"):
            target = lookup_pid(mode.split(":", 1)[1])
            ns = [n if n["type"] != kind else {"type": kind, "path": f"/proc/{target}/ns/{kind}"} for n in ns]
    if (hc.get("UTSMode") or "") == "host":
        ns = [n for n in ns if n["type"] != "uts"]
    return ns


def build_spec(c: Container, rootfs: str, lookup_pid: Any, netns: str | None = None) -> dict[str, Any]:
    cfg, hc = c.config, c.host_config
    privileged = bool(hc.get("Privileged"))
    uid, gid, extra_gids, home = resolve_user(rootfs, cfg.get("User") or "")
    env = list(cfg.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in keys:
        env.insert(1, f"HOSTNAME={cfg.get('Hostname') or c.id[:12]}")
    if cfg.get("Tty") and "TERM" not in keys:
        env.append("TERM=xterm")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not args:
        raise InvalidArgument("no command specified")
    init_mount = None
    if hc.get("Init"):
        # Docker's --init: a static tini bind-mounted at /sbin/docker-init runs as PID 1
        init_path = _find_init()
        init_mount = {"destination": "/sbin/docker-init", "type": "bind", "source": init_path,
                      "options": ["bind", "ro"]}
        args = ["/sbin/docker-init", "--"] + args
    capl = _caps(hc)
    nnp = any(o in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")
              for o in hc.get("SecurityOpt") or [])
    rlimits = [{"type": "RLIMIT_" + u["Name"].upper(), "soft": int(u["Soft"]), "hard": int(u["Hard"])}
               for u in hc.get("Ulimits") or []]
    if not any(r["type"] == "RLIMIT_NOFILE" for r in rlimits):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        rlimits.append({"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard})
    process: dict[str, Any] = {
        "terminal": bool(cfg.get("Tty")),
        "user": {"uid": uid, "gid": gid, "additionalGids": extra_gids},
        "args": args, "env": env, "cwd": cfg.get("WorkingDir") or "/",
        "capabilities": {"bounding": capl, "effective": capl, "permitted": capl},
        "rlimits": rlimits, "noNewPrivileges": nnp,
    }
    mounts = defaults.default_mounts(int(hc.get("ShmSize") or 64 * 1024 * 1024))
    if init_mount is not None:
        mounts.append(init_mount)
    rootfs_propagation = "rprivate"
    if c.doc.get("MountPoints") or hc.get("Tmpfs"):  # volumes, binds, tmpfs (engine/mounts.py)
        from .mounts import oci_mounts

        user_mounts, rootfs_propagation = oci_mounts(c)
        taken = {m["destination"] for m in user_mounts}
        mounts = [m for m in mounts if m["destination"] not in taken] + user_mounts
    if privileged:
        for m in mounts:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o if o != "ro" else "rw" for o in m["options"]]
    devices = list(defaults.DEFAULT_DEVICES)
    if privileged:
        devices = _host_devices()
    for d in hc.get("Devices") or []:
        st = os.stat(d["PathOnHost"])
        kind = "b" if (st.st_mode & 0o170000) == 0o060000 else "c"
        devices.append({"path": d.get("PathInContainer") or d["PathOnHost"], "type": kind,
                        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": st.st_mode & 0o777, "uid": 0, "gid": 0})
    linux: dict[str, Any] = {
        "namespaces": _namespaces(hc, lookup_pid, netns),
        "cgroupsPath": f"/dockyard/{c.id}",
        "resources": _resources(hc, privileged),
        "devices": devices,
        "sysctl": dict(hc.get("Sysctls") or {}),
        "maskedPaths": [] if privileged else list(defaults.MASKED_PATHS),
        "readonlyPaths": [] if privileged else list(defaults.READONLY_PATHS),
        "rootfsPropagation": rootfs_propagation,
    }
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "hostname": cfg.get("Hostname") or c.id[:12],
        "mounts": mounts,
        "linux": linux,
        "annotations": {},
    }
    return spec


def _find_init() -> str:
    import shutil

    for name in ("docker-init", "tini-static"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if found:
            return found
    raise InvalidArgument("--init needs a static init binary: install Debian's tini package (tini-static)")


#: sysctls that live in a namespace of the container's own (Docker's allow list)
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def validate_sysctls(hc: dict[str, Any]) -> None:
    """Refuse sysctls that would change the host (not namespaced, or in a shared namespace)."""
    net = hc.get("NetworkMode") or "default"
    ipc = hc.get("IpcMode") or "private"
    for key in hc.get("Sysctls") or {}:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc == "host":
                raise InvalidArgument(f"sysctl {key!r} is not allowed in host IPC mode")
        elif key.startswith("net."):
            if net == "host" or net.startswith("container:"):
                raise InvalidArgument(f"sysctl {key!r} is not allowed in host network mode" if net == "host"
                                      else f"sysctl {key!r} is not allowed: the network namespace is shared")
        else:
            raise InvalidArgument(f"sysctl {key!r} is not allowed: it is not namespaced and would change the host")


def _host_devices() -> list[dict[str, Any]]:
    """--privileged: every device node of the host's /dev (top level and a few subdirs)."""
    out = []
    for root, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if d not in ("pts", "shm", "mqueue", "fd")]
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            fmt = st.st_mode & 0o170000
            if fmt not in (0o020000, 0o060000) or p in ("/dev/console", "/dev/ptmx"):
                continue
            out.append({"path": p, "type": "c" if fmt == 0o020000 else "b", "major": os.major(st.st_rdev),
                        "minor": os.minor(st.st_rdev), "fileMode": st.st_mode & 0o777,
                        "uid": st.st_uid, "gid": st.st_gid})
    return out
