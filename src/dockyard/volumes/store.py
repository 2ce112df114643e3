"""The local volume store: <root>/volumes/<name>/_data plus a metadata document per volume.

Layout (Docker's, with the metadata beside the data instead of in a bolt database):

    volumes/<name>/_data          the volume's contents (or where its device is mounted)
    volumes/<name>/volume.json    Name, Driver, CreatedAt, Labels, Options, Populated
    volumes/.lock                 held while volumes are created, removed or filled

Anonymous volumes carry Docker's label ``com.docker.volume.anonymous`` (as Docker 23+ does),
which is what `volume prune` without ``--all`` looks for. Which containers use a volume is
not recorded here: the engine knows that from the containers' mount points.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from .._path import Path

from .._record import dataclass
from .. import _util
from ..errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ..paths import Paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DRIVER = "local"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: the local driver's options (Docker's: type, o, device; size needs quota support)
_OPTIONS = ("type", "o", "device")


@dataclass(frozen=True)
class Volume:
    name: str
    root: Path
    created_at: str
    driver: str = DRIVER
    #: None when created without any (by a container's mount), {} by `volume create`
    label_map: dict[str, str] | None = None
    option_map: dict[str, str] | None = None
    populated: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.label_map or {})

    @property
    def options(self) -> dict[str, str]:
        return dict(self.option_map or {})

    @property
    def mountpoint(self) -> Path:
        return self.root / "_data"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def needs_mount(self) -> bool:
        """Its data lives on a device or tmpfs that is mounted at _data while in use."""
        return bool(self.options.get("type") or self.options.get("device"))

    def inspect(self) -> dict[str, Any]:
        """Docker's volume inspect document."""
        return {"CreatedAt": _docker_time(self.created_at), "Driver": self.driver,
                "Labels": self.label_map, "Mountpoint": str(self.mountpoint),
                "Name": self.name, "Options": self.option_map, "Scope": "local"}


def _docker_time(rfc3339: str) -> str:
    """Docker shows a volume's CreatedAt to the second with the zone: 2024-01-02T03:04:05Z."""
    return rfc3339.split(".", 1)[0] + "Z" if "." in rfc3339 else rfc3339


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume '
                              'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                              'a host directory, use absolute path')
    return name


def validate_options(name: str, options: dict[str, str]) -> None:
    for key in options:
        if key not in _OPTIONS:
            raise InvalidArgument(f"create {name}: invalid option key: {key!r}")
    if options.get("type") and options["type"] != "tmpfs" and not options.get("device"):
        raise InvalidArgument(f"create {name}: missing required option: \"device\"")
    if options.get("device") and not options.get("type"):
        raise InvalidArgument(f"create {name}: missing required option: \"type\"")
    if options.get("type") == "none" and "bind" not in (options.get("o") or "").split(","):
        raise InvalidArgument(f"create {name}: type \"none\" needs o=bind (a bind mount of device)")


class VolumeStore:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.dir = paths.volumes

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with _util.locked(self.dir / ".lock"):
            yield

    def _meta(self, name: str) -> Path:
        return self.dir / name / "volume.json"

    def get(self, name: str) -> Volume:
        if not name or "/" in name or name.startswith("."):
            raise NotFound(f"get {name}: no such volume")
        try:
            doc = _util.read_json(self._meta(name))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise NotFound(f"get {name}: no such volume") from None
        return Volume(name=name, root=self.dir / name, created_at=doc.get("CreatedAt") or _util.ZERO_TIME,
                      driver=doc.get("Driver") or DRIVER, label_map=doc.get("Labels"),
                      option_map=doc.get("Options"), populated=bool(doc.get("Populated")))

    def exists(self, name: str) -> bool:
        return self._meta(name).exists()

    def list(self) -> list[Volume]:
        out = []
        try:
            names = sorted(e.name for e in os.scandir(self.dir) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        for name in names:
            with contextlib.suppress(NotFound):
                out.append(self.get(name))
        return out

    def create(self, name: str | None = None, driver: str = DRIVER, options: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, anonymous: bool = False) -> tuple[Volume, bool]:
        """Create a volume (the caller holds `lock()`); an existing one of that name is
        returned as it is, as Docker does. Returns (volume, created)."""
        if driver not in ("", DRIVER):
            raise NotFound(f"create {name or ''}: error looking up volume plugin {driver}: plugin "
                           f"\"{driver}\" not found")
        if name is None:
            name = _util.new_id()  # `volume create` without a name: random, yet not anonymous
        validate_name(name)
        if self.exists(name):
            v = self.get(name)
            if options and options != v.options:
                raise AlreadyExists(f"create {name}: volume already exists with different options")
            return v, False
        validate_options(name, options or {})
        if anonymous:
            labels = dict(labels or {}, **{ANONYMOUS_LABEL: ""})
        root = self.dir / name
        (root / "_data").mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o701)
        doc = {"Name": name, "Driver": DRIVER, "CreatedAt": _util.now_rfc3339(), "Labels": labels,
               "Options": options, "Populated": False}
        try:
            _util.write_json(self._meta(name), doc, 0o600)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return self.get(name), True

    def mark_populated(self, name: str) -> None:
        doc = _util.read_json(self._meta(name))
        doc["Populated"] = True
        _util.write_json(self._meta(name), doc, 0o600)

    def remove(self, name: str) -> None:
        """Delete the volume and its data (the caller checked it is unused, holding `lock()`)."""
        v = self.get(name)
        from .local import is_mounted

        if is_mounted(v.mountpoint):
            raise Conflict(f"remove {name}: volume is in use: its device is still mounted at {v.mountpoint}")
        # metadata first: a half-deleted volume is never listed again
        os.unlink(self._meta(name))
        shutil.rmtree(v.root, ignore_errors=True)
