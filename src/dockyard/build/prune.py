"""`builder prune`: remove the build cache under ``<data root>/build/``, as Docker's
``docker builder prune`` does for BuildKit's.

* Cache mounts (``RUN --mount=type=cache``, ``build/mounts/<id>``) are removed unless a
  build is using one right now (the builder holds a shared flock on ``.<id>.lock`` while a
  step has it mounted; prune needs it exclusively), with private instances left over.
* Cached steps (``build/cache/steps``): without ``all``, the dangling ones, whose image
  is gone; with ``all``, every one, with the per-parent history that explains misses,
  the FROM records, the fast path's records (`memo`) and the remembered context
  digests. The intermediate images stay (they are parents of built images; ``image
  prune`` and ``rmi`` deal with images).

Returns the IDs removed (cache mount ids, step keys) and the bytes freed, which `builder
prune` and ``POST /build/prune`` report.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import urllib.parse
from .._path import Path

from .._record import dataclass, field
from .._util import locked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0


def _du(path: str) -> int:
    total = 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    total += st.st_blocks * 512 if st.st_blocks else st.st_size
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames + filenames:
                with contextlib.suppress(OSError):
                    s = os.lstat(os.path.join(dirpath, name))
                    total += s.st_blocks * 512
    return total


def _prune_mounts(base: Path, report: PruneReport) -> None:
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for name in names:
        path = base / name
        if name.startswith(".tmp-") or name.startswith(".private-"):
            size = _du(str(path))  # left over by a build that was killed
            shutil.rmtree(path, ignore_errors=True)
            report.reclaimed += size
            continue
        if name.startswith(".") or not path.is_dir():
            continue
        fd = os.open(base / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # mounted by a running build
            size = _du(str(path))
            shutil.rmtree(path)
            report.deleted.append(urllib.parse.unquote(name))
            report.reclaimed += size  # the lock file stays: a build may be waiting on it
        finally:
            os.close(fd)


def _prune_steps(cache_root: Path, all_: bool, image_exists: Callable[[str], bool],
                 report: PruneReport) -> None:
    steps = cache_root / "steps"
    try:
        entries = sorted(os.listdir(steps))
    except FileNotFoundError:
        return
    with locked(cache_root / ".lock"):
        for name in entries:
            if not name.endswith(".json"):
                continue
            path = steps / name
            if not all_:
                try:
                    with open(path) as f:
                        image = str(json.load(f).get("image") or "")
                except (OSError, ValueError, AttributeError):
                    image = ""
                if image and image_exists(image):
                    continue
            with contextlib.suppress(OSError):
                report.reclaimed += os.lstat(path).st_size
                os.unlink(path)
                report.deleted.append(name[:-len(".json")])
        if all_:
            for extra in (cache_root / "children", cache_root / "bases.json", cache_root / "memo",
                          cache_root / "filehashes.json"):
                report.reclaimed += _du(str(extra))
                if extra.is_dir():
                    shutil.rmtree(extra, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        extra.unlink()


def prune_build_cache(build_root: Path, all_: bool, image_exists: Callable[[str], bool]) -> PruneReport:
    """Prune ``<data root>/build`` (see the module doc)."""
    report = PruneReport()
    _prune_mounts(build_root / "mounts", report)
    if (build_root / "cache").is_dir():
        _prune_steps(build_root / "cache", all_, image_exists, report)
    return report
