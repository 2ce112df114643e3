"""Docker's default OCI spec pieces (moby oci/defaults.go, written from the documented
behaviour): mounts, masked and read-only paths, devices and the device cgroup allow list."""

from __future__ import annotations

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def default_mounts(shm_size: int = 64 * 1024 * 1024) -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def _dev(path: str, major: int, minor: int, mode: int = 0o666, kind: str = "c") -> dict:
    return {"path": path, "type": kind, "major": major, "minor": minor, "fileMode": mode, "uid": 0, "gid": 0}


#: device nodes created in every container's /dev
DEFAULT_DEVICES = (
    _dev("/dev/null", 1, 3), _dev("/dev/zero", 1, 5), _dev("/dev/full", 1, 7),
    _dev("/dev/random", 1, 8), _dev("/dev/urandom", 1, 9), _dev("/dev/tty", 5, 0),
)


def _rule(allow: bool, kind: str | None, major: int | None, minor: int | None, access: str) -> dict:
    r: dict = {"allow": allow, "access": access}
    if kind:
        r["type"] = kind
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    return r


#: the device cgroup allow list Docker applies by default (deny all, then allow these)
DEFAULT_DEVICE_RULES = (
    _rule(False, None, None, None, "rwm"),
    _rule(True, "c", None, None, "m"), _rule(True, "b", None, None, "m"),
    _rule(True, "c", 1, 3, "rwm"), _rule(True, "c", 1, 5, "rwm"), _rule(True, "c", 1, 7, "rwm"),
    _rule(True, "c", 1, 8, "rwm"), _rule(True, "c", 1, 9, "rwm"), _rule(True, "c", 5, 0, "rwm"),
    _rule(True, "c", 5, 1, "rwm"), _rule(True, "c", 5, 2, "rwm"), _rule(True, "c", 136, None, "rwm"),
    _rule(True, "c", 10, 200, "rwm"),
)
