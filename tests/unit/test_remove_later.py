"""_util.remove_later: small trees go at once, big ones to a detached rm -rf."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dockyard import _util


def _tree(root: Path, files: int) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    for i in range(files):
        (root / "a" / "b" / f"f{i}").write_text("x")
    os.symlink("/nonexistent", root / "a" / "dangling")
    return root


def test_small_tree_is_gone_when_the_call_returns(tmp_path: Path) -> None:
    victim = _tree(tmp_path / "small", 10)
    trash = tmp_path / "trash"
    _util.remove_later([victim, tmp_path / "missing"], trash)
    assert not victim.exists() and list(trash.iterdir()) == []


def test_big_tree_is_moved_away_then_deleted_by_rm(tmp_path: Path) -> None:
    victim = _tree(tmp_path / "big", 600)
    trash = tmp_path / "trash"
    _util.remove_later([victim], trash)
    assert not victim.exists()  # renamed into the trash at once
    deadline = time.monotonic() + 60
    while list(trash.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(trash.iterdir()) == []
