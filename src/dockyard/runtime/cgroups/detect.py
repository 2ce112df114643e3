"""Host detection: cgroup v1 or v2, which controllers, and /proc/PID/cgroup parsing.

Detection reads /proc/self/mountinfo: the host is v2 only when /sys/fs/cgroup itself
is a cgroup2 mount. A hybrid host (v1 controllers plus a cgroup2 at
/sys/fs/cgroup/unified, usually without controllers) is treated as v1.
"""

from __future__ import annotations

from ..._path import Path

from ..._record import dataclass
from dockyard.errors import Unsupported

from .base import CGROUP_ROOT, V1_CONTROLLERS, CgroupInfo, read_v2_controllers


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    fstype: str
    root: str
    super_options: tuple[str, ...]


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field_):
        octal = field_[i + 1 : i + 4]
        if field_[i] == "\\" and len(octal) == 3 and octal.isdigit():
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse /proc/PID/mountinfo (only the fields cgroup detection needs)."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 4:
            continue
        entries.append(
            MountEntry(
                mountpoint=_unescape(fields[4]),
                fstype=fields[sep + 1],
                root=_unescape(fields[3]),
                super_options=tuple(fields[sep + 3].split(",")),
            )
        )
    return entries


def info_from_mountinfo(text: str, root: Path = CGROUP_ROOT) -> CgroupInfo:
    """Decide v1/v2 from a mountinfo text: v2 only when `root` itself is cgroup2."""
    entries = parse_mountinfo(text)
    root_s = str(root)
    for e in entries:
        if e.mountpoint == root_s and e.fstype == "cgroup2":
            return CgroupInfo(version=2, mountpoint=root, controllers=read_v2_controllers(root))
    mounts: dict[str, Path] = {}
    for e in entries:
        if e.fstype != "cgroup":
            continue
        for opt in e.super_options:
            if opt in V1_CONTROLLERS and opt not in mounts:
                mounts[opt] = Path(e.mountpoint)
    if not mounts:
        raise Unsupported(
            f"cgroups: no cgroup v1 controller and no cgroup2 hierarchy mounted at {root}"
        )
    names = tuple(sorted(mounts))
    return CgroupInfo(
        version=1, mountpoint=root, controllers=names,
        mounts=tuple((n, mounts[n]) for n in names),
    )


def detect(mountinfo: str | Path = "/proc/self/mountinfo", root: Path = CGROUP_ROOT) -> CgroupInfo:
    """Inspect the host's cgroup setup (a hybrid host with an empty unified dir is v1).

    DOCKYARD_CGROUP2_ROOT=<a cgroup2 mount> forces the v2 driver on that hierarchy: on a
    hybrid host (v1 controllers + /sys/fs/cgroup/unified) it runs containers the way a pure
    v2 host does, which is how the v2 code path is tested on such machines."""
    import os

    forced = os.environ.get("DOCKYARD_CGROUP2_ROOT")
    if forced:
        base = Path(forced)
        try:
            controllers = tuple((base / "cgroup.controllers").read_text().split())
        except OSError as e:
            from dockyard.errors import InvalidArgument

            raise InvalidArgument(f"DOCKYARD_CGROUP2_ROOT={forced}: not a cgroup2 hierarchy ({e.strerror})") from None
        return CgroupInfo(version=2, mountpoint=base, controllers=controllers)
    key = (str(mountinfo), str(root))
    hit = _detected.get(key)
    if hit is None or str(mountinfo) != "/proc/self/mountinfo":
        hit = _detected[key] = info_from_mountinfo(Path(mountinfo).read_text(), Path(root))
    return hit


#: a process sees the same cgroup layout all its life: detect() parses mountinfo once
_detected: dict[tuple[str, str], CgroupInfo] = {}


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 line ("0::/x") is keyed ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
        for name in controllers.split(","):
            if name:
                out[name] = path
    return out


def cgroup_of_pid(pid: int | str) -> dict[str, str]:
    """The cgroups of a process, from /proc/PID/cgroup ("self" works too)."""
    return parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
