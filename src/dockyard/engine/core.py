"""The Engine object: one per CLI invocation or API server, holding the stores lazily."""

from __future__ import annotations

import sys

from .._lean import cached_property
from ..paths import Paths
from .records import Container, ContainerStore

TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..images.layers import LayerStore
    from ..images.store import ImageStore
    from ..runtime.api import Runtime


class Engine:
    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or Paths.from_env()
        self._external: dict[str, "Runtime"] = {}

    @cached_property
    def containers(self) -> ContainerStore:
        return ContainerStore(self.paths)

    @cached_property
    def layers(self) -> "LayerStore":
        from ..images.layers import LayerStore

        return LayerStore(self.paths)

    @cached_property
    def images(self) -> "ImageStore":
        from ..images.store import ImageStore

        return ImageStore(self.paths, self.layers)

    @cached_property
    def runtime(self) -> "Runtime":
        from ..runtime.api import Runtime

        return Runtime(self.paths.runtime_state)

    def runtime_named(self, name: str | None) -> "Runtime":
        """Dockyard's own runtime (default), or runc/crun by name (`--runtime`)."""
        if not name or name in ("dockyard", "io.containerd.runc.v2"):
            return self.runtime
        if name not in self._external:
            from ..errors import InvalidArgument
            from ..runtime.external import ExternalRuntime

            if name not in ("runc", "crun"):
                raise InvalidArgument(f"unknown or invalid runtime name: {name}")
            self._external[name] = ExternalRuntime(name, self.paths.runroot / f"runtime-{name}")
        return self._external[name]

    def runtime_for(self, c: "Container") -> "Runtime":
        return self.runtime_named(c.host_config.get("Runtime"))

    def cli_argv(self, *args: str) -> list[str]:
        """argv to run this engine's CLI as a fresh process (the shim's exit command)."""
        return [sys.executable, "-m", "dockyard", "--root", str(self.paths.root),
                "--runroot", str(self.paths.runroot), *args]
