"""The engine backend's file writer: COPY entries land inside the rootfs, whatever
symlinks the image holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.backend import CopyEntry, CopyRequest, EntryKind
from dockyard.engine.buildcopy import write_entries

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def _src(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_symlinks_in_the_image_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "abs").symlink_to(str(outside))         # absolute: means <root>/<outside>
    (root / "up").symlink_to("../../..")             # climbs: stops at the root
    (root / "dirlink").symlink_to("/realdir")
    (root / "realdir").mkdir()
    src = _src(tmp_path, "f", "data")
    req = CopyRequest((
        CopyEntry(EntryKind.FILE, "/abs/f", src, mode=0o640),
        CopyEntry(EntryKind.FILE, "/up/g", src),
        CopyEntry(EntryKind.FILE, "/dirlink", src, into_existing_dir=True),
        CopyEntry(EntryKind.DIR, "/new/deep", mode=0o700),
    ))
    write_entries(root, req, (0, 0))
    assert not list(outside.iterdir())
    assert (root / str(outside).lstrip("/") / "f").read_text() == "data"
    assert (root / "g").read_text() == "data"
    assert (root / "realdir" / "f").read_text() == "data"
    assert ((root / "new" / "deep").stat().st_mode & 0o777) == 0o700
    assert ((root / str(outside).lstrip("/") / "f").stat().st_mode & 0o777) == 0o640


def test_chmod_chown_and_mtime(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    src = _src(tmp_path, "f", "x")
    req = CopyRequest((CopyEntry(EntryKind.FILE, "/a/b", src, mode=0o644, mtime=1000.0),
                       CopyEntry(EntryKind.SYMLINK, "/a/l", "b")), chown="1:2", chmod=0o600)
    write_entries(root, req, (1, 2))
    st = os.stat(root / "a" / "b")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777, int(st.st_mtime)) == (1, 2, 0o600, 1000)
    assert os.readlink(root / "a" / "l") == "b" and os.lstat(root / "a" / "l").st_uid == 1
