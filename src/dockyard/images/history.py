"""`docker history`: one row per image config history entry, newest first, and the
disk-usage sums behind `system df` and `image prune`."""

from __future__ import annotations

from .._record import dataclass
from .._util import parse_rfc3339
from .store import Image, ImageStore

MISSING = "<missing>"


@dataclass(frozen=True)
class HistoryRow:
    id: str  # the image ID, or "<missing>"
    created: float  # seconds since the epoch (0 if unknown)
    created_by: str
    size: int
    comment: str
    tags: tuple[str, ...]


def _created(value: object) -> float:
    try:
        return parse_rfc3339(str(value)) if value else 0.0
    except ValueError:
        return 0.0


def image_history(store: ImageStore, image: Image) -> list[HistoryRow]:
    """Docker's ImageHistory: sizes from the layer each non-empty entry added; IDs filled in
    from the newest entry down along the image's parent chain (a pulled or loaded image has
    no parent recorded, so only its newest entry has an ID)."""
    sizes: list[int] = []
    if image.top_chain_id and store.layers.exists(image.top_chain_id):
        sizes = [layer.size for layer in store.layers.chain(image.top_chain_id)]
    rows: list[HistoryRow] = []
    layer_index = 0
    for entry in image.config.get("history") or []:
        if not isinstance(entry, dict):
            continue
        size = 0
        if not entry.get("empty_layer"):
            if layer_index < len(sizes):
                size = sizes[layer_index]
            layer_index += 1
        rows.append(HistoryRow(MISSING, _created(entry.get("created")), str(entry.get("created_by") or ""),
                               size, str(entry.get("comment") or ""), ()))
    rows.reverse()
    current: Image | None = image
    for i, row in enumerate(rows):
        if current is None:
            break
        rows[i] = HistoryRow(current.id, row.created, row.created_by, row.size, row.comment,
                             current.repo_tags)
        parent = current.parent
        current = None
        if parent and store.exists(parent):
            current = store.get(parent)
    return rows
