"""Word splitting and expansion for change instructions (`import -c`, `commit -c`): the
Dockerfile rules of `shellwords`, plus the environment as a mapping."""

from __future__ import annotations

from .shellwords import process_word as expand
from .shellwords import split_words

__all__ = ["env_map", "expand", "split_words"]


def env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out
