"""The Engine object: one per CLI invocation or API server, holding the stores lazily."""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

from ..paths import Paths
from .records import ContainerStore

if TYPE_CHECKING:
    from ..images.layers import LayerStore
    from ..images.store import ImageStore
    from ..runtime.api import Runtime


class Engine:
    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or Paths.from_env()

    @functools.cached_property
    def containers(self) -> ContainerStore:
        return ContainerStore(self.paths)

    @functools.cached_property
    def layers(self) -> "LayerStore":
        from ..images.layers import LayerStore

        return LayerStore(self.paths)

    @functools.cached_property
    def images(self) -> "ImageStore":
        from ..images.store import ImageStore

        return ImageStore(self.paths, self.layers)

    @functools.cached_property
    def runtime(self) -> "Runtime":
        from ..runtime.api import Runtime

        return Runtime(self.paths.runtime_state)

    def cli_argv(self, *args: str) -> list[str]:
        """argv to run this engine's CLI as a fresh process (the shim's exit command)."""
        return [sys.executable, "-m", "dockyard", "--root", str(self.paths.root),
                "--runroot", str(self.paths.runroot), *args]
