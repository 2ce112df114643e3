"""Persisted container records, in Docker's on-disk shape.

containers/<id>/config.v2.json holds the container (ID, Name, Config, State, Image, ...) and
containers/<id>/hostconfig.json its HostConfig, as Docker keeps them. Every write is atomic;
changes happen under the container's lock (`ContainerStore.lock(id)`).
"""

from __future__ import annotations

import os
from .._lean import contextmanager
from .._path import Path

from .. import _util
from ..errors import Conflict, NotFound
from ..paths import Paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator


class Container:
    """One container: Docker's config.v2.json document plus its HostConfig (read from
    hostconfig.json only when asked for: listings mostly need the state alone)."""

    __slots__ = ("doc", "_host_config", "_hc_path", "removed")

    def __init__(self, doc: dict[str, Any], host_config: dict[str, Any] | None = None,
                 hc_path: str = "") -> None:
        self.doc = doc
        self._host_config = host_config
        self._hc_path = hc_path
        #: set when exit handling removed the container (--rm); the record shows its last state
        self.removed = False

    @property
    def host_config(self) -> dict[str, Any]:
        if self._host_config is None:
            try:
                self._host_config = _util.read_json(self._hc_path) if self._hc_path else {}
            except FileNotFoundError:
                self._host_config = {}  # removed meanwhile: the record shows what it was
        return self._host_config  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Container({self.doc.get('ID', '')[:12]}, {self.doc.get('Name', '')})"

    @property
    def id(self) -> str:
        return str(self.doc["ID"])

    @property
    def name(self) -> str:
        return str(self.doc["Name"]).lstrip("/")

    @property
    def config(self) -> dict[str, Any]:
        return self.doc["Config"]  # type: ignore[no-any-return]

    @property
    def state(self) -> dict[str, Any]:
        return self.doc["State"]  # type: ignore[no-any-return]

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def status(self) -> str:
        return str(self.state.get("Status", "created"))


def new_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": _util.ZERO_TIME, "FinishedAt": _util.ZERO_TIME}


class ContainerStore:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.dir = paths.containers
        self.dir_str = str(self.dir)

    def path(self, cid: str) -> Path:
        return self.dir / cid

    @contextmanager
    def lock(self, cid: str) -> Iterator[None]:
        """The container's lock. For a container that does not exist (any more) no lock
        file is created: there is nothing to protect, and the file would never be removed."""
        if not self.path(cid).exists():
            yield
            return
        with _util.locked(self.lock_path(cid)):
            yield

    def lock_path(self, cid: str) -> Path:
        return self.paths.runroot / "locks" / f"{cid}.lock"

    def forget_lock(self, cid: str) -> None:
        """Remove a removed container's lock file (called after the lock is released)."""
        if not self.path(cid).exists():
            try:
                os.unlink(self.lock_path(cid))
            except FileNotFoundError:
                pass

    def save(self, c: Container, host_config: bool = False) -> None:
        """Write the record; HostConfig only when asked (it changes at create, not per start)."""
        d = self.path(c.id)
        # A --rm container's record is gone at its exit anyway: no fsync for it (atomic still).
        durable = not c.host_config.get("AutoRemove")
        if host_config:
            _util.write_json(d / "hostconfig.json", c.host_config, 0o600, durable)
        _util.write_json(d / "config.v2.json", c.doc, 0o600, durable)

    def load(self, cid: str) -> Container:
        d = os.path.join(self.dir_str, cid)
        try:
            doc = _util.read_json(d + "/config.v2.json")
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}") from None
        return Container(doc, None, d + "/hostconfig.json")

    def ids(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.dir) if e.is_dir() and len(e.name) == 64]
        except FileNotFoundError:
            return []

    def all(self) -> list[Container]:
        out = []
        for cid in self.ids():
            try:
                out.append(self.load(cid))
            except (NotFound, ValueError):
                continue  # being created or removed right now
        return out

    def resolve(self, ref: str) -> Container:
        """By full ID, by name, then by unique ID prefix (Docker's order)."""
        if not ref:
            raise NotFound("No such container: ")
        ids = self.ids()
        if ref in ids:
            return self.load(ref)
        name = ref.lstrip("/")
        names = self.names()
        if name in names:
            return self.load(names[name])
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) == 1:
            return self.load(matches[0])
        if len(matches) > 1:
            raise Conflict(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def names(self) -> dict[str, str]:
        try:
            return _util.read_json(self.dir / "names.json")  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}

    def reserve_name(self, name: str, cid: str, durable: bool = True) -> None:
        """Claim `name` for `cid`; the caller holds the store lock. `durable=False` (--rm
        containers, which do not outlive their run) skips the fsync."""
        names = self.names()
        holder = names.get(name)
        if holder and holder != cid and (self.dir / holder).exists():
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{holder}". You have to remove (or rename) that container to be able to reuse that name.')
        names[name] = cid
        _util.write_json(self.dir / "names.json", names, durable=durable)

    def release_name(self, name: str, cid: str) -> None:
        """No fsync: a release lost in a crash leaves an entry whose holder has no directory,
        which reserve_name treats as free."""
        names = self.names()
        if names.get(name) == cid:
            del names[name]
            _util.write_json(self.dir / "names.json", names, durable=False)

    def delete(self, cid: str) -> None:
        _util.rmtree(self.path(cid))
