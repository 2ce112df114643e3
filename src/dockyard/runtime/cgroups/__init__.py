"""cgroups for containers: parse OCI limits, detect v1/v2, create/limit/freeze/kill/remove.

    info = detect()
    mgr = open_manager("/dockyard/<id>", info)
    mgr.create(); mgr.apply(Resources.from_oci(spec["linux"].get("resources")))
    mgr.add_pid(pid) ... mgr.kill_all(signal.SIGKILL); mgr.destroy()

Only the cgroupfs driver exists (no systemd driver). See v1.py / v2.py for what each
limit maps to; v2 ignores device rules (they need eBPF).
"""

from __future__ import annotations

from dockyard.errors import Unsupported

from .base import CgroupInfo, CgroupManager, Stats
from .detect import cgroup_of_pid, detect, parse_proc_cgroup
from .resources import DeviceRule, Resources, shares_to_weight
from .v1 import V1Manager
from .v2 import V2Manager

__all__ = [
    "CgroupInfo",
    "CgroupManager",
    "DeviceRule",
    "Resources",
    "Stats",
    "V1Manager",
    "V2Manager",
    "cgroup_of_pid",
    "detect",
    "open_manager",
    "parse_proc_cgroup",
    "shares_to_weight",
]


def open_manager(cgroups_path: str, info: CgroupInfo | None = None) -> CgroupManager:
    """The manager for OCI `cgroupsPath` on this host (or on the hierarchy `info` names).

    Nothing is created until `create()`; InvalidArgument for a malformed path."""
    if info is None:
        info = detect()
    if info.driver != "cgroupfs":
        raise Unsupported(f"cgroup driver {info.driver!r}: only 'cgroupfs' is supported")
    if info.version == 1:
        return V1Manager(cgroups_path, info)
    if info.version == 2:
        return V2Manager(cgroups_path, info)
    raise Unsupported(f"cgroup version {info.version}: only versions 1 and 2 exist")
