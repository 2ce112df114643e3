"""The small interface between the Dockerfile frontend and the engine that runs steps.

The frontend (`dockyard.build`) decides what each step does; a `Backend` (the engine's
`engine.builder.EngineBackend`) resolves base images, runs commands in containers with
`dockyard run`'s isolation, writes files into a fresh read-write layer, commits layers
and stores image configs. Every layer-producing call returns the new layer's diff_id, or
None when the step changed nothing (an empty diff adds no layer).
"""

from __future__ import annotations

import enum
from .._record import dataclass
from .._path import Path
from typing import Any, Callable, ContextManager, Protocol


@dataclass(frozen=True)
class BaseImage:
    """A resolved image: its ID, its config document and its top layer's chain ID."""

    id: str
    config: dict[str, Any]
    top_chain_id: str | None

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids") or []]


class EntryKind(enum.Enum):
    FILE = "file"        # copy `source` (a host file) to `dest`
    DIR = "dir"          # make directory `dest` (mode from `mode`, kept if it exists)
    SYMLINK = "symlink"  # symlink `dest` -> `source`
    TAR = "tar"          # extract the archive at `source` into directory `dest`


@dataclass(frozen=True)
class CopyEntry:
    kind: EntryKind
    dest: str                 # absolute path in the image
    source: str = ""          # host path, or the link target for SYMLINK
    mode: int | None = None   # permission bits; None: the source's (FILE) or 0o755 (DIR)
    mtime: float | None = None
    #: FILE: when `dest` is an existing directory in the image, copy into it
    into_existing_dir: bool = False
    #: (uid, gid) to keep when no --chown is given (COPY --from keeps owners), else 0:0
    owner: tuple[int, int] | None = None


@dataclass(frozen=True)
class CopyRequest:
    entries: tuple[CopyEntry, ...]
    chown: str = ""           # "user[:group]" (names resolved in the image), "" = 0:0
    chmod: int | None = None  # overrides every entry's mode


@dataclass(frozen=True)
class MountRequest:
    """A RUN --mount resolved for the backend: `type` bind (`source` a host path), cache
    (`source` a host path to seed a new cache from, or ""), tmpfs or secret (`source` the
    secret's host file)."""

    type: str
    target: str               # absolute, in the container
    source: str = ""
    read_only: bool = True
    id: str = ""              # cache id
    sharing: str = "shared"
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    size: int = 0


@dataclass(frozen=True)
class RunRequest:
    argv: tuple[str, ...]
    env: tuple[str, ...]      # KEY=VALUE: the config's Env plus the build args in scope
    workdir: str
    user: str
    network: str              # "default" | "host" | "none"
    step: str                 # "Step 3/5 : RUN …" for error messages
    mounts: tuple[MountRequest, ...] = ()


@dataclass(frozen=True)
class LayerResult:
    diff_id: str | None       # None: nothing changed, no layer
    exit_code: int = 0


OutputSink = Callable[[bytes], None]


class Backend(Protocol):
    def base(self, ref: str) -> BaseImage:
        """Resolve a FROM image by reference or ID (NotFound if absent)."""

    def run(self, parent: BaseImage, req: RunRequest, output: OutputSink, mtime_clamp: int | None,
            on_start: Callable[[str], None]) -> LayerResult:
        """Run `req.argv` in a container of `parent` (`on_start(container_id)` once it is
        created), streaming its output; commit its changes when it exits 0. A non-zero
        exit returns that code and no layer; the container is removed either way."""

    def copy(self, parent: BaseImage | None, req: CopyRequest, mtime_clamp: int | None) -> LayerResult:
        """Write `req.entries` into a fresh read-write layer on `parent` and commit it."""

    def rootfs(self, image: BaseImage) -> ContextManager[Path]:
        """A read-only view of an image's file system (COPY --from)."""

    def create_image(self, config: dict[str, Any], parent_id: str | None) -> str:
        """Store an image config (its layers are registered); return the image ID."""

    def image_exists(self, image_id: str) -> bool: ...

    def local_image(self, ref: str) -> BaseImage | None:
        """A `--cache-from` image by reference or ID, if it is here (never pulled)."""

    def get_image(self, image_id: str) -> BaseImage: ...

    def tag(self, image_id: str, ref: str) -> None: ...
