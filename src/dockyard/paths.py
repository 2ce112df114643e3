"""Where Dockyard keeps things: the data root (Docker's layout) and the run root.

Tier 0. The data root defaults to /var/lib/dockyard (``--root`` / DOCKYARD_ROOT);
runtime state that dies with a reboot lives under /run/dockyard (DOCKYARD_RUNROOT).
"""

from __future__ import annotations

import os
from ._path import Path

from ._record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_RUNROOT = "/run/dockyard"


@dataclass(frozen=True)
class Paths:
    root: Path
    runroot: Path

    @classmethod
    def from_env(cls, root: str | None = None, runroot: str | None = None) -> "Paths":
        r = Path(root or os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT)
        rr = Path(runroot or os.environ.get("DOCKYARD_RUNROOT") or _default_runroot(r))
        return cls(r.absolute(), rr.absolute())

    # images / layers (Docker's layout)
    @property
    def image_root(self) -> Path:
        return self.root / "image" / "overlay2"

    @property
    def imagedb(self) -> Path:
        return self.image_root / "imagedb"

    @property
    def layerdb(self) -> Path:
        return self.image_root / "layerdb"

    @property
    def repositories(self) -> Path:
        return self.image_root / "repositories.json"

    @property
    def overlay(self) -> Path:
        return self.root / "overlay2"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def lock(self) -> Path:
        """The store-wide lock file (names, image refs, layer refcounts)."""
        return self.root / ".lock"

    # runtime state
    def container_run(self, cid: str) -> Path:
        return self.runroot / "c" / cid

    @property
    def runtime_state(self) -> Path:
        """Where the OCI runtime keeps its per-container state (like runc's --root)."""
        return self.runroot / "runtime"


def _default_runroot(root: Path) -> str:
    if str(root) == DEFAULT_ROOT:
        return DEFAULT_RUNROOT
    # A relocated data root gets its own run root so two stores never mix.
    return f"{DEFAULT_RUNROOT}-{sha256_hex(str(root.absolute()))[:12]}"


def sha256(data: bytes = b"") -> Any:
    """A SHA-256 hash object from CPython's own implementation: hashlib loads OpenSSL (~3 ms
    on every CLI call), which pays off only for large inputs such as layer blobs."""
    try:
        from _sha256 import sha256 as new  # type: ignore[import-not-found]  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256 as new  # type: ignore[import-not-found,no-redef]  # CPython 3.12+
        except ImportError:
            from hashlib import sha256 as new  # type: ignore[assignment]
    return new(data)


def sha256_hex(text: str) -> str:
    """sha256 of a short string (see `sha256`)."""
    return str(sha256(text.encode()).hexdigest())
