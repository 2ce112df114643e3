"""Mount specifications as Docker's engine reads them: the ``-v`` strings of HostConfig.Binds
and the Mount objects of HostConfig.Mounts, parsed into one frozen `MountSpec` and checked
with Docker's messages. Pure: nothing here touches the volume store (except the one check
that a ``--mount type=bind`` source exists).
"""

from __future__ import annotations

import os
import posixpath

from .._record import dataclass, field
from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
DEFAULT_PROPAGATION = "rprivate"


@dataclass(frozen=True)
class MountSpec:
    type: str  # "volume" | "bind" | "tmpfs"
    target: str
    source: str = ""  # volume name ("" = anonymous) or host path
    read_only: bool = False
    mode: str = ""  # the -v mode field as given ("ro,z"); Docker's MountPoint.Relabel
    propagation: str = ""  # binds only
    nocopy: bool = False
    create_source: bool = False  # -v binds: a missing host directory is created
    labels: dict[str, str] = field(default_factory=dict)
    driver: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)
    tmpfs_size: int = 0
    tmpfs_mode: int = 0

    def to_api(self) -> dict[str, Any]:
        """Docker's Mount object (HostConfig.Mounts item, MountPoint.Spec)."""
        m: dict[str, Any] = {"Type": self.type}
        if self.source:
            m["Source"] = self.source
        m["Target"] = self.target
        if self.read_only:
            m["ReadOnly"] = True
        if self.type == "bind" and self.propagation:
            m["BindOptions"] = {"Propagation": self.propagation}
        if self.type == "volume" and (self.nocopy or self.labels or self.driver or self.driver_opts):
            vo: dict[str, Any] = {}
            if self.nocopy:
                vo["NoCopy"] = True
            if self.labels:
                vo["Labels"] = dict(self.labels)
            if self.driver or self.driver_opts:
                vo["DriverConfig"] = {"Name": self.driver or "local", "Options": dict(self.driver_opts)}
            m["VolumeOptions"] = vo
        if self.type == "tmpfs" and (self.tmpfs_size or self.tmpfs_mode):
            to: dict[str, Any] = {}
            if self.tmpfs_size:
                to["SizeBytes"] = self.tmpfs_size
            if self.tmpfs_mode:
                to["Mode"] = self.tmpfs_mode
            m["TmpfsOptions"] = to
        return m


def _invalid_spec(raw: str) -> InvalidArgument:
    return InvalidArgument(f"invalid volume specification: '{raw}'")


def _check_target(kind: str, target: str) -> str:
    if not target:
        raise InvalidArgument(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise InvalidArgument(f'invalid mount config for type "{kind}": invalid mount path: '
                              f"'{target}' mount path must be absolute")
    clean = posixpath.normpath(target)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return clean


def valid_mode(mode: str) -> bool:
    """Docker's linuxValidMountMode: comma-separated, at most one of each kind."""
    if not mode:
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0}
    for word in mode.split(","):
        if word in _RW_MODES:
            counts["rw"] += 1
        elif word in _LABEL_MODES:
            counts["label"] += 1
        elif word in PROPAGATIONS:
            counts["prop"] += 1
        elif word in _COPY_MODES:
            counts["copy"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def parse_bind(raw: str) -> MountSpec:
    """One HostConfig.Binds entry (``-v SRC:DST[:MODE]``; ``-v DST`` is an anonymous volume)."""
    parts = raw.split(":")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]) and not parts[1].startswith("/"):
            raise _invalid_spec(raw)  # DST:MODE: an anonymous volume cannot have a mode
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _invalid_spec(raw)
    if not source and len(parts) > 1:
        raise _invalid_spec(raw)
    if not valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    words = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    target = _check_target(kind, target)
    prop = next((w for w in words if w in PROPAGATIONS), "")
    nocopy = "nocopy" in words
    if kind == "bind" and nocopy:
        raise InvalidArgument(f'invalid mount config for type "bind": field VolumeOptions must not be specified')
    if kind == "volume" and prop:
        raise InvalidArgument(f'invalid mount config for type "volume": field BindOptions must not be specified')
    if kind == "bind":
        source = posixpath.normpath(source)
    return MountSpec(type=kind, target=target, source=source, read_only="ro" in words, mode=mode,
                     propagation=prop if kind == "bind" else "", nocopy=nocopy,
                     create_source=kind == "bind")


def from_api(m: dict[str, Any]) -> MountSpec:
    """One HostConfig.Mounts item (Docker's validateMountConfig)."""
    kind = str(m.get("Type") or "")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f'invalid mount config for type "{kind}": mount type unknown')
    target = _check_target(kind, str(m.get("Target") or ""))
    source = str(m.get("Source") or "")
    bo, vo, to = m.get("BindOptions"), m.get("VolumeOptions"), m.get("TmpfsOptions")

    def forbid(name: str, value: object) -> None:
        if value:
            raise InvalidArgument(f'invalid mount config for type "{kind}": field {name} must not be specified')

    if kind == "bind":
        forbid("VolumeOptions", vo)
        forbid("TmpfsOptions", to)
        if not source:
            raise InvalidArgument('invalid mount config for type "bind": field Source must not be empty')
        if not source.startswith("/"):
            raise InvalidArgument(f'invalid mount config for type "bind": invalid mount path: '
                                  f"'{source}' mount path must be absolute")
        if not os.path.exists(source):
            raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not exist: {source}')
        prop = str((bo or {}).get("Propagation") or "")
        if prop and prop not in PROPAGATIONS:
            raise InvalidArgument(f'invalid mount config for type "bind": invalid propagation mode: {prop}')
        return MountSpec(type="bind", target=target, source=posixpath.normpath(source),
                         read_only=bool(m.get("ReadOnly")), propagation=prop)
    if kind == "volume":
        forbid("BindOptions", bo)
        forbid("TmpfsOptions", to)
        vo = vo or {}
        dc = vo.get("DriverConfig") or {}
        return MountSpec(type="volume", target=target, source=source, read_only=bool(m.get("ReadOnly")),
                         nocopy=bool(vo.get("NoCopy")), labels=dict(vo.get("Labels") or {}),
                         driver=str(dc.get("Name") or ""), driver_opts=dict(dc.get("Options") or {}))
    forbid("BindOptions", bo)
    forbid("VolumeOptions", vo)
    forbid("Source", source)
    to = to or {}
    size = int(to.get("SizeBytes") or 0)
    if size < 0:
        raise InvalidArgument(f'invalid mount config for type "tmpfs": invalid tmpfs size: {size}')
    return MountSpec(type="tmpfs", target=target, read_only=bool(m.get("ReadOnly")), tmpfs_size=size,
                     tmpfs_mode=int(to.get("Mode") or 0))


def tmpfs_target(path: str) -> str:
    """A HostConfig.Tmpfs key, checked."""
    return _check_target("tmpfs", path)
