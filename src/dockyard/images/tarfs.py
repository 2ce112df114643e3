"""Layer tars and file-system trees: apply a layer to an overlay2 ``diff`` dir, diff an
overlay upper dir into changes and a layer tar, and tar/untar whole trees (export, cp).

The code lives in `tarfs_apply` (reading tars; its input stream, decompression and hashing in
`tarfs_stream`) and `tarfs_diff` (writing them); this
module is the public face.

Rules for applying a layer (`apply_layer`):

* Input: plain tar, gzip, bzip2 or xz (by magic bytes); zstd if the ``zstandard`` module
  is importable, else `Unsupported`. The diff_id is the sha256 of every decompressed byte,
  end-of-archive blocks and padding included (the rest of the stream is drained).
* Whiteouts become overlayfs form: ``dir/.wh.NAME`` -> a 0/0 character device
  ``dir/NAME``; ``dir/.wh..wh..opq`` -> xattr ``trusted.overlay.opaque=y`` on ``dir``;
  other ``.wh..wh.*`` (aufs bookkeeping) are skipped, except that files under a top-level
  ``.wh..wh.plnk/`` are kept as hardlink sources and the directory removed at the end.
  trusted.overlay.* xattrs inside the archive are ignored: only whiteout files say what
  to hide.
* Kept: regular files, dirs, symlinks, hardlinks (to earlier entries), char/block devices,
  fifos; numeric owners (names ignored), modes with setuid/setgid/sticky, ns mtimes (dirs
  last), SCHILY.xattr.* (and LIBARCHIVE.xattr.*) xattrs; an xattr the fs refuses with
  ENOTSUP is skipped. Missing parent dirs are created 0755 root-owned. A later entry
  replaces an earlier one at the same path; a dir over a dir merges.
* Safety: a leading '/' is stripped from names. An entry whose normalised name leaves the
  root (``../x``, ``a/../../x``) is refused. Parent directories are resolved inside the
  layer dir, which is treated as the root (a chroot): each component is opened with
  O_NOFOLLOW and a symlink met on the way is read and followed by us, inside dest, never
  by the kernel. For a layer a parent symlink whose target is absolute or climbs above
  the root (``evil -> /etc``, ``evil -> ../../..``) is refused outright. A hardlink's
  target is a name in the archive (leading '/' stripped, resolved the same way) that must
  already exist and not be a directory (so a link to ``/etc/passwd`` or ``../x`` is
  refused). Refusals raise `InvalidArgument` naming the entry and the reason; on any
  failure `dest` is left empty.

`extract_tree_tar` (``cp`` into a container) follows the same entry rules without
whiteout conversion; symlinks already in the destination are followed with chroot
semantics (absolute targets start at the destination, ``..`` stops at it).
"""

from __future__ import annotations

from .tarfs_apply import (
    OVERLAY_OPAQUE_XATTR,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    ApplyResult,
    apply_layer,
    extract_tree_tar,
)
from .tarfs_diff import Change, ChangeKind, overlay_changes, write_diff_tar, write_tree_tar

__all__ = [
    "OVERLAY_OPAQUE_XATTR",
    "WHITEOUT_META_PREFIX",
    "WHITEOUT_OPAQUE",
    "WHITEOUT_PREFIX",
    "ApplyResult",
    "Change",
    "ChangeKind",
    "apply_layer",
    "extract_tree_tar",
    "overlay_changes",
    "write_diff_tar",
    "write_tree_tar",
]
