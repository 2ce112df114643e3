"""_util.remove_later: trees leave their place at once and are deleted by a detached rm -rf."""

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


def test_trees_move_away_at_once_and_are_deleted_in_the_background(tmp_path: Path) -> None:
    small, big = _tree(tmp_path / "small", 3), _tree(tmp_path / "big", 300)
    trash = tmp_path / "trash"
    _util.remove_later([small, big, tmp_path / "missing"], trash)
    assert not small.exists() and not big.exists()
    deadline = time.monotonic() + 60  # a bound for the poll, not a speed limit
    while list(trash.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(trash.iterdir()) == []
    _util.spawn_detached(["true"])  # reaps the finished rm
    assert len(_util._detached) <= 1


def test_rmtree_removes_a_tree_and_never_follows_a_symlink(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    (keep / "sub").mkdir(parents=True)
    (keep / "sub" / "f").write_text("x")
    tree = _tree(tmp_path / "tree", 3)
    os.symlink(keep, tree / "a" / "to-keep")
    link = tmp_path / "link"
    os.symlink(keep, link)
    _util.rmtree(link)  # a symlink given as the tree: left alone, as shutil.rmtree does
    _util.rmtree(tree)
    assert not tree.exists() and link.is_symlink() and (keep / "sub" / "f").read_text() == "x"
