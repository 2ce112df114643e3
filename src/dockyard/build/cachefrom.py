"""`--cache-from`: steps answered by images from elsewhere, as Docker's classic builder does.

A cache-from image (typically pulled: it has no parent chain and no entry in the local step
cache) serves a step when its history up to that step is exactly the parent image's history
(every field, times included), its layers start with the parent's layers, and its next history
entry was made by the same instruction (`created_by`: the expanded command, and for COPY/ADD
the digest of the sources). The step's image is then restored from it: the parent's history
plus that entry, the parent's layers plus the source's layer for the entry (if it made one),
and the step's own container config. When the entry is the source's last, the step's image is
the source image itself. After a match the build keeps to that one source (Docker's rule).
"""

from __future__ import annotations

from .._record import dataclass
from .backend import BaseImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Match:
    source: BaseImage
    item: dict[str, Any]       # the source's history entry for this step
    layer: str | None          # its diff ID, None for an empty-layer entry
    last: bool                 # the entry is the source's last: the step's image is the source


def find(sources: list[BaseImage], parent: dict[str, Any] | None, created_by: str) -> Match | None:
    """The first source that can answer the step made by `created_by` on `parent` (an image
    config document, None for scratch)."""
    history = list((parent or {}).get("history") or [])
    diff_ids = list(((parent or {}).get("rootfs") or {}).get("diff_ids") or [])
    n = len(history)
    for src in sources:
        src_history = list(src.config.get("history") or [])
        src_diffs = src.diff_ids
        if len(src_history) <= n or src_history[:n] != history or src_diffs[:len(diff_ids)] != diff_ids:
            continue
        item = src_history[n]
        if item.get("created_by") != created_by:
            continue
        layer = None
        if not item.get("empty_layer"):
            index = sum(1 for h in src_history[:n] if not h.get("empty_layer"))
            if index != len(diff_ids) or index >= len(src_diffs):
                continue  # a history that does not line up with its layers
            layer = src_diffs[index]
        return Match(src, dict(item), layer, n == len(src_history) - 1)
    return None
