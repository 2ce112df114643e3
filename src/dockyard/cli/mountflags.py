"""`-v`, `--mount`, `--tmpfs`, `--volumes-from` -> Config.Volumes and HostConfig.Binds /
Mounts / Tmpfs / VolumesFrom, as the docker CLI builds them.

`-v SRC:DST[:MODE]` becomes a Binds string (a ``./relative`` host path made absolute);
`-v /path` (no source) an anonymous volume in Config.Volumes; `--mount` CSV a Mount object.
Each is also checked with the engine's own parser, so a bad flag fails before anything is
created, with the daemon's wording.
"""

from __future__ import annotations

import csv
import os

from .. import _util
from ..engine.mountspec import from_api, parse_bind, tmpfs_target
from ..errors import InvalidArgument, Unsupported
from .flags import Namespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _bool(key: str, val: str) -> bool:
    v = val.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {val}")


def _abs_if_dot(path: str) -> str:
    return os.path.abspath(path) if path == "." or path.startswith("./") else path


def parse_volume(value: str) -> tuple[str | None, str | None]:
    """One `-v`: (Binds entry, None) or (None, anonymous volume path)."""
    spec = parse_bind(value)
    if not spec.source:
        return None, spec.target
    if spec.type == "bind" or value.startswith("."):
        host, _, rest = value.partition(":")
        value = _abs_if_dot(host) + ":" + rest
        parse_bind(value)
    return value, None


def parse_mount(value: str) -> dict[str, Any]:
    """One `--mount` (docker/cli's CSV syntax) -> Docker's Mount object."""
    try:
        return _parse_mount(value)
    except InvalidArgument as e:
        raise InvalidArgument(f'invalid argument "{value}" for "--mount" flag: {e}') from None


def _parse_mount(value: str) -> dict[str, Any]:
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise InvalidArgument("invalid CSV") from None
    m: dict[str, Any] = {}
    vo: dict[str, Any] = {}
    bo: dict[str, Any] = {}
    to: dict[str, Any] = {}
    for field in fields:
        key, sep, val = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key in ("readonly", "ro"):
                m["ReadOnly"] = True
            elif key == "volume-nocopy":
                vo["NoCopy"] = True
            else:
                raise InvalidArgument(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            m["Type"] = val
        elif key in ("source", "src"):
            m["Source"] = _abs_if_dot(val)
        elif key in ("target", "dst", "destination"):
            m["Target"] = val
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _bool(key, val)
        elif key == "consistency":
            if val not in ("default", "consistent", "cached", "delegated"):
                raise InvalidArgument(f"invalid value for {key}: {val}")
            m["Consistency"] = val
        elif key == "bind-propagation":
            bo["Propagation"] = val
        elif key == "bind-nonrecursive":
            if _bool(key, val):
                raise Unsupported("bind-nonrecursive is not supported: bind mounts are always recursive")
            bo.setdefault("Propagation", "")
        elif key == "volume-driver":
            vo.setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-nocopy":
            vo["NoCopy"] = _bool(key, val)
        elif key == "volume-label":
            k, _, v = val.partition("=")
            vo.setdefault("Labels", {})[k] = v
        elif key == "volume-opt":
            k, _, v = val.partition("=")
            vo.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            try:
                to["SizeBytes"] = _util.parse_bytes(val)
            except InvalidArgument:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            try:
                to["Mode"] = int(val, 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{field}'")
    kind = m.get("Type", "")
    if not kind:
        raise InvalidArgument("type is required")
    if not m.get("Target"):
        raise InvalidArgument("target is required")
    for opts, prefix, want in ((vo, "volume", "volume"), (bo, "bind", "bind"), (to, "tmpfs", "tmpfs")):
        if opts and kind != want:
            raise InvalidArgument(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
    if bo:
        m["BindOptions"] = {k: v for k, v in bo.items() if v}
        if not m["BindOptions"]:
            del m["BindOptions"]
    if vo:
        if "DriverConfig" in vo:
            vo["DriverConfig"].setdefault("Name", "local")
        m["VolumeOptions"] = vo
    if to:
        m["TmpfsOptions"] = to
    return m


def parse_tmpfs(value: str) -> tuple[str, str]:
    path, _, opts = value.partition(":")
    tmpfs_target(path)
    return path, opts


def apply_mount_flags(ns: Namespace, config: dict[str, Any], hc: dict[str, Any]) -> None:
    """Fill Config/HostConfig from the parsed run/create flags (and check them)."""
    if ns.volume_driver and ns.volume_driver != "local":
        raise Unsupported(f"volume driver {ns.volume_driver!r} is not supported: only the local driver exists")
    hc["VolumeDriver"] = ns.volume_driver or ""
    binds: list[str] = []
    anonymous: dict[str, Any] = {}
    for value in ns.volume:
        bind, anon = parse_volume(value)
        if bind is not None:
            binds.append(bind)
        elif anon is not None:
            anonymous[anon] = {}
    if binds:
        hc["Binds"] = binds
    if anonymous:
        config["Volumes"] = {**(config.get("Volumes") or {}), **anonymous}
    if ns.mount:
        mounts = [parse_mount(v) for v in ns.mount]
        for m in mounts:
            from_api(m)  # the daemon's checks (e.g. a bind source that does not exist)
        hc["Mounts"] = mounts
    if ns.tmpfs:
        hc["Tmpfs"] = dict(parse_tmpfs(v) for v in ns.tmpfs)
    if ns.volumes_from:
        hc["VolumesFrom"] = list(ns.volumes_from)
