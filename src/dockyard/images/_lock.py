"""The store lock (``Paths.lock``), re-entrant within one thread.

`flock` locks belong to an open file description, so a second `_util.locked()` on the
same file in the same process would deadlock. Image and layer store methods call each
other while holding the lock; this wrapper takes the flock once per thread and counts
nested entries. Other threads and processes still exclude each other.

Callers outside the images package must not hold ``_util.locked(paths.lock)`` while
calling into the image or layer store (use `store_lock` instead, which nests).
"""

from __future__ import annotations

from _thread import _local  # threading.local, without importing threading

from .._lean import contextmanager
from .._util import locked
from ..paths import Paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

_held = _local()


@contextmanager
def store_lock(paths: Paths) -> Iterator[None]:
    held: dict[str, int] = _held.__dict__.setdefault("held", {})
    key = str(paths.lock)
    if held.get(key, 0) > 0:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    with locked(paths.lock):
        held[key] = 1
        try:
            yield
        finally:
            held[key] = 0
