"""The mutable state of one build stage: its current image and config, its ARGs."""

from __future__ import annotations


from .backend import BaseImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class StageState:
    """The mutable state of one stage while it builds."""

    def __init__(self, image: BaseImage | None, doc: dict[str, Any]) -> None:
        self.image = image
        self.doc = doc
        self.args: dict[str, str | None] = {}
        self.cmd_set = False
        self.rebuilt = False
        self.base_changed = ""

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.doc.get("config") or {})

    def env_list(self) -> list[str]:
        return list(self.config.get("Env") or [])

    def env_keys(self) -> set[str]:
        return {e.split("=", 1)[0] for e in self.env_list()}

    def scoped_args(self) -> dict[str, str]:
        """Build args in scope with a value, unless ENV overrides them."""
        keys = self.env_keys()
        return {k: v for k, v in self.args.items() if v is not None and k not in keys}

    def expand_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.args.items() if v is not None}
        for e in self.env_list():
            k, _, v = e.partition("=")
            env[k] = v
        return env
