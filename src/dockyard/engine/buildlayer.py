"""A build step's upper dir becomes a layer without a second copy of its files.

`commit` writes the layer tar of an upper dir and registers it (the tar applied into a new
diff dir). A build step's upper dir is thrown away right after, and it is already what an
overlay2 diff dir holds (whiteouts as 0/0 character devices, opaque dirs as
``trusted.overlay.opaque``), so here the tar is only hashed (`write_diff_tar` to a null
sink gives the same diff_id) and the dir itself is moved into the store:

* the root gets the mode and owner `apply_layer` gives a diff dir (0755, 0:0);
* overlay's own bookkeeping xattrs (``trusted.overlay.origin``, ``impure``, …) are
  removed, ``opaque`` kept; sockets (never in a tar) are removed;
* with SOURCE_DATE_EPOCH, mtimes above it are clamped as the tar clamped them, so a later
  `save`, which rebuilds the tar from this dir, hashes to the same diff_id.

The result is the layer `register` would have stored from the tar.
"""

from __future__ import annotations

import contextlib
import os
import stat
from .._path import Path

from .._util import new_id
from ..images.layers import LayerStore, PreparedLayer
from ..images.store import EMPTY_DIFF_IDS
from ..images.tarfs import OVERLAY_OPAQUE_XATTR, write_diff_tar

_OVERLAY_PREFIX = "trusted.overlay."


class _NullSink:
    def write(self, data: bytes) -> int:
        return len(data)


def _normalize(root: str, mtime_clamp: int | None) -> int:
    """Tidy a moved upper dir (see the module doc); return its regular files' bytes."""
    size = 0

    def fix(path: str, st: os.stat_result) -> None:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            if name.startswith(_OVERLAY_PREFIX) and name != OVERLAY_OPAQUE_XATTR:
                with contextlib.suppress(OSError):
                    os.removexattr(path, name, follow_symlinks=False)
        if mtime_clamp is not None and st.st_mtime_ns > mtime_clamp * 1_000_000_000:
            ns = mtime_clamp * 1_000_000_000
            os.utime(path, ns=(min(st.st_atime_ns, ns), ns), follow_symlinks=False)

    def walk(d: str) -> None:
        nonlocal size
        dirs = []
        with os.scandir(d) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISSOCK(st.st_mode):
                    os.unlink(e.path)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    dirs.append((e.path, st))
                    continue
                if stat.S_ISREG(st.st_mode):
                    size += st.st_size
                fix(e.path, st)
        for path, st in dirs:
            walk(path)
            fix(path, st)  # after its contents: their changes do not touch its mtime, but be sure

    walk(root)
    os.chown(root, 0, 0)
    os.chmod(root, 0o755)
    fix(root, os.lstat(root))
    return size


def adopt_upper(layers: LayerStore, upper: Path, parent_top: str | None, mtime_clamp: int | None) -> str | None:
    """Store `upper` (an unmounted, about to be discarded upper dir on the layer store's
    file system) as the layer on `parent_top`; None when it changes nothing. `upper` is
    left as an empty directory."""
    diff_id = write_diff_tar(upper, [], _NullSink(), mtime_clamp=mtime_clamp)  # type: ignore[arg-type]
    if diff_id in EMPTY_DIFF_IDS:
        return None
    cache_id = new_id()
    tmp = layers.home / f".tmp-{cache_id}"
    os.mkdir(tmp, 0o710)
    try:
        os.rename(upper, tmp / "diff")
        os.mkdir(upper, 0o755)
        size = _normalize(str(tmp / "diff"), mtime_clamp)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return layers.commit_prepared(PreparedLayer(tmp, cache_id, diff_id, size), parent_top).diff_id
