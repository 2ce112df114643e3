"""A container's volumes and mounts, from HostConfig to the OCI spec and back to inspect.

At create, `creating` resolves, in Docker's order, HostConfig.VolumesFrom, Binds (``-v``),
Mounts (``--mount``) and the image's (and ``-v /path``'s) Config.Volumes into Docker's
MountPoints (config.v2.json), creating the named and anonymous volumes they need; a failed
create removes the volumes it made. HostConfig.Tmpfs (``--tmpfs``) stays in HostConfig, as
in Docker. At start, `on_start` mounts local-driver volumes that have a device (refcounted),
creates missing ``-v`` host directories and copies the image's content up into new empty
volumes; `oci_mounts` gives specgen the bind/tmpfs mounts and the root propagation they need.
At exit `on_stop` releases the device mounts; at removal `on_remove` deletes the
container's anonymous volumes when asked (``rm -v``, ``--rm``), never named ones.
A volume's users are the containers whose MountPoints name it (`users_of`).
"""

from __future__ import annotations

import os
import posixpath

from .._lean import contextmanager, suppress
from .. import _util
from ..errors import Conflict, DockyardError, FailedPrecondition, InvalidArgument, NotFound
from .core import Engine
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

if TYPE_CHECKING:
    from ..volumes.local import LocalMounts
    from .mountspec import MountSpec
    from ..volumes.store import Volume, VolumeStore

_TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]
DEFAULT_PROPAGATION = "rprivate"  # mountspec's, repeated: that module is loaded only when needed


def wanted(config: dict[str, Any], host_config: dict[str, Any]) -> bool:
    """Whether a container has anything for this module to do (keeps `run` light otherwise)."""
    return bool(config.get("Volumes") or any(host_config.get(k) for k in ("Binds", "Mounts", "VolumesFrom", "Tmpfs")))


def volume_store(engine: Engine) -> "VolumeStore":
    from ..volumes.store import VolumeStore

    return VolumeStore(engine.paths)


def local_mounts(engine: Engine) -> "LocalMounts":
    from ..volumes.local import LocalMounts

    return LocalMounts(engine.paths.runroot)


# ---- create --------------------------------------------------------------------------

@contextmanager
def creating(engine: Engine, c: Container) -> Iterator[None]:
    """Resolve `c`'s mount points into c.doc["MountPoints"] and hold the volume store's lock
    until the block (saving the record) is done, so no `volume rm` can slip in between.
    If the block fails, the volumes made here are removed again."""
    if not wanted(c.config, c.host_config):
        c.doc["MountPoints"] = {}
        yield
        return
    store = volume_store(engine)
    created: list[str] = []
    with store.lock():
        try:
            c.doc["MountPoints"] = _resolve(engine, store, c, created)
            yield
        except BaseException:
            for name in created:
                with suppress(DockyardError, OSError):
                    store.remove(name)
            raise


def _volume_mountpoint(store: "VolumeStore", spec: "MountSpec", created: list[str], mode: str) -> dict[str, Any]:
    v, new = store.create(spec.source or None, spec.driver or "local", spec.driver_opts or None,
                          spec.labels or None, anonymous=not spec.source)
    if new:
        created.append(v.name)
    return {"Source": str(v.mountpoint), "Destination": spec.target, "RW": not spec.read_only, "Name": v.name,
            "Driver": v.driver, "Type": "volume", "Relabel": mode, "Propagation": "", "ID": _util.new_id(),
            "Spec": spec.to_api(), "SkipMountpointCreation": False}


def _mountpoint(store: "VolumeStore", spec: "MountSpec", created: list[str], from_binds: bool) -> dict[str, Any]:
    if spec.type == "volume":
        # Docker: local-driver volumes get the "z" relabel mode when none is given
        return _volume_mountpoint(store, spec, created, spec.mode or "z")
    mp: dict[str, Any] = {"Source": spec.source, "Destination": spec.target, "RW": not spec.read_only, "Name": "",
                          "Driver": "", "Type": spec.type, "Relabel": spec.mode, "Propagation": "", "ID": "",
                          "Spec": spec.to_api(), "SkipMountpointCreation": False}
    if spec.type == "bind":
        mp["Propagation"] = spec.propagation or DEFAULT_PROPAGATION
        if from_binds:
            mp["CreateSource"] = True  # -v: a missing host directory is made at start, as Docker does
    return mp


def _volumes_from(engine: Engine, item: str) -> tuple[Container, bool]:
    from .mountspec import valid_mode

    if not item:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ref, _, mode = item.partition(":")
    if mode and (not valid_mode(mode) or any(w not in ("ro", "rw", "z", "Z") for w in mode.split(","))):
        raise InvalidArgument(f"invalid mode for volumes-from: {mode}")
    return engine.containers.resolve(ref), "ro" not in mode.split(",")


def _resolve(engine: Engine, store: "VolumeStore", c: Container, created: list[str]) -> dict[str, Any]:
    from .mountspec import MountSpec, from_api, parse_bind, tmpfs_target

    hc, cfg = c.host_config, c.config
    mps: dict[str, dict[str, Any]] = {}
    for item in hc.get("VolumesFrom") or []:
        other, rw = _volumes_from(engine, item)
        for dest, mp in (other.doc.get("MountPoints") or {}).items():
            new = dict(mp, RW=bool(mp.get("RW")) and rw, Relabel="")
            if new.get("Type") == "volume":
                new["ID"] = _util.new_id()
                new["CopyData"] = False  # Docker: shared volumes are never copied into again
            mps[dest] = new
    user: set[str] = set()

    def claim(target: str) -> None:
        if target in user:
            raise InvalidArgument(f"Duplicate mount point: {target}")
        user.add(target)

    for raw in hc.get("Binds") or []:
        spec = parse_bind(raw)
        claim(spec.target)
        mps[spec.target] = _mountpoint(store, spec, created, from_binds=True)
    for m in hc.get("Mounts") or []:
        spec = from_api(m)
        claim(spec.target)
        mps[spec.target] = _mountpoint(store, spec, created, from_binds=False)
    tmpfs = {tmpfs_target(p) for p in hc.get("Tmpfs") or {}}
    for t in tmpfs:
        claim(t)
        mps.pop(t, None)  # a --tmpfs replaces what --volumes-from brought there
    for path in cfg.get("Volumes") or {}:
        dest = posixpath.normpath("/" + path.lstrip("/"))
        if dest == "/" or dest in mps or dest in tmpfs:
            continue
        mps[dest] = _volume_mountpoint(store, MountSpec(type="volume", target=dest), created, "")
    return mps


# ---- start / stop --------------------------------------------------------------------

def _volume_mps(c: Container) -> list[dict[str, Any]]:
    return [mp for mp in (c.doc.get("MountPoints") or {}).values() if mp.get("Type") == "volume"]


def on_start(engine: Engine, c: Container, rootfs: str) -> None:
    """Before the spec is built: device volumes mounted, -v host dirs made, copy-up done."""
    mps = c.doc.get("MountPoints") or {}
    if not mps:
        return
    store = volume_store(engine)
    lm = local_mounts(engine)
    acquired: list["Volume"] = []
    try:
        for dest, mp in sorted(mps.items()):
            if mp.get("Type") == "bind" and not os.path.lexists(mp["Source"]):
                if not mp.get("CreateSource"):
                    raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not '
                                          f'exist: {mp["Source"]}')
                os.makedirs(mp["Source"], 0o755, exist_ok=True)
            if mp.get("Type") != "volume":
                continue
            try:
                v = store.get(mp["Name"])
            except NotFound:
                raise NotFound(f"error while mounting volume for {dest}: volume {mp['Name']} no longer exists") from None
            lm.acquire(v, c.id)
            acquired.append(v)
            nocopy = mp.get("CopyData") is False or bool(((mp.get("Spec") or {}).get("VolumeOptions") or {}).get("NoCopy"))
            if not nocopy and (v.needs_mount or not v.populated):
                _copy_up(store, v.name, rootfs, dest)
    except BaseException:
        for v in acquired:
            with suppress(DockyardError, OSError):
                lm.release(v, c.id)
        raise


def _copy_up(store: "VolumeStore", name: str, rootfs: str, dest: str) -> None:
    from ..runtime.rootfs import secure_join
    from ..volumes.copyup import copy_tree

    with store.lock():
        v = store.get(name)
        if os.listdir(v.mountpoint):
            return
        try:
            copied = copy_tree(secure_join(rootfs, dest), str(v.mountpoint))
        except OSError as e:
            raise FailedPrecondition(f"copying the image's {dest} into volume {name}: {e}") from None
        if copied and not v.populated:
            store.mark_populated(name)


def on_stop(engine: Engine, c: Container) -> None:
    """The container stopped (or failed to start): release its device-volume mounts."""
    vols = _volume_mps(c)
    if not vols:
        return
    store, lm = volume_store(engine), local_mounts(engine)
    for mp in vols:
        with suppress(DockyardError, OSError):
            lm.release(store.get(mp["Name"]), c.id)


def on_remove(engine: Engine, c: Container, anonymous: bool) -> None:
    """After `c`'s record is gone: with `anonymous`, delete its anonymous volumes that no
    other container uses. Named volumes always stay."""
    vols = _volume_mps(c)
    if not vols:
        return
    on_stop(engine, c)
    if not anonymous:
        return
    store = volume_store(engine)
    with store.lock():
        for mp in vols:
            try:
                v = store.get(mp["Name"])
            except NotFound:
                continue
            if v.anonymous and not [u for u in users_of(engine, v.name) if u != c.id]:
                with suppress(DockyardError, OSError):
                    store.remove(v.name)
                    forget(engine, v.name)


def forget(engine: Engine, name: str) -> None:
    """A removed volume's run-root files (its device-mount lock) go too."""
    with suppress(FileNotFoundError):
        os.unlink(engine.paths.runroot / "volumes" / f"{name}.lock")


# ---- the OCI spec --------------------------------------------------------------------

def _tmpfs_options(extra: list[str]) -> list[str]:
    return _TMPFS_DEFAULTS + [o for o in extra if o]


def oci_mounts(c: Container) -> tuple[list[dict[str, Any]], str]:
    """(the container's OCI mounts sorted parents first, the rootfsPropagation they need)."""
    out: list[dict[str, Any]] = []
    props: set[str] = set()
    for dest, mp in (c.doc.get("MountPoints") or {}).items():
        kind = mp.get("Type")
        if kind in ("volume", "bind"):
            prop = mp.get("Propagation") or DEFAULT_PROPAGATION
            props.add(prop)
            opts = ["rbind"] + ([] if mp.get("RW") else ["ro"]) + [prop]
            out.append({"destination": dest, "type": "bind", "source": mp["Source"], "options": opts})
        elif kind == "tmpfs":
            to = (mp.get("Spec") or {}).get("TmpfsOptions") or {}
            extra = []
            if to.get("SizeBytes"):
                extra.append(f"size={int(to['SizeBytes'])}")
            if to.get("Mode"):
                extra.append(f"mode={int(to['Mode']):o}")
            if not mp.get("RW"):
                extra.append("ro")
            out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": _tmpfs_options(extra)})
    for path, opts in (c.host_config.get("Tmpfs") or {}).items():
        out.append({"destination": posixpath.normpath(path), "type": "tmpfs", "source": "tmpfs",
                    "options": _tmpfs_options(str(opts or "").split(","))})
    out.sort(key=lambda m: (m["destination"].count("/"), m["destination"]))
    # a mount that receives propagation needs the container's root to be a slave of the
    # host's (rprivate would cut it off). Not rshared: the runtime's pivot_root needs a
    # root that is not shared, so mounts made inside do not propagate back to the host.
    propagation = "rslave" if props & {"shared", "rshared", "slave", "rslave"} else "rprivate"
    return out, propagation


# ---- read side -----------------------------------------------------------------------

def inspect_mounts(c: Container) -> list[dict[str, Any]]:
    """Docker's inspect `Mounts`."""
    out = []
    for dest, mp in sorted((c.doc.get("MountPoints") or {}).items()):
        d: dict[str, Any] = {"Type": mp.get("Type") or "volume"}
        if d["Type"] == "volume":
            d["Name"] = mp.get("Name") or ""
        d["Source"] = mp.get("Source") or ""
        d["Destination"] = dest
        if d["Type"] == "volume":
            d["Driver"] = mp.get("Driver") or "local"
        d.update(Mode=mp.get("Relabel") or "", RW=bool(mp.get("RW")), Propagation=mp.get("Propagation") or "")
        out.append(d)
    return out


def destinations(c: Container) -> list[str]:
    """Every path something is mounted on (volumes, binds, tmpfs): commit/export skip below."""
    paths = set((c.doc.get("MountPoints") or {}).keys())
    paths.update(posixpath.normpath(p) for p in (c.host_config.get("Tmpfs") or {}))
    return sorted(paths)


def users_of(engine: Engine, name: str) -> list[str]:
    """IDs of the containers (running or not) whose mount points use volume `name`."""
    return [c.id for c in engine.containers.all()
            if any(mp.get("Name") == name for mp in _volume_mps(c))]


def check_unused(engine: Engine, name: str) -> None:
    users = users_of(engine, name)
    if users:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")


def ps_columns(c: Container) -> tuple[str, str]:
    """`ps`'s MOUNTS (volume names, bind sources) and LOCAL VOLUMES (how many local volumes)."""
    mps = [mp for _, mp in sorted((c.doc.get("MountPoints") or {}).items())]
    names = [mp.get("Name") or mp.get("Source") or "" for mp in mps if mp.get("Type") in ("volume", "bind")]
    local = sum(1 for mp in mps if mp.get("Type") == "volume" and (mp.get("Driver") or "local") == "local")
    return ",".join(n for n in names if n), str(local)
