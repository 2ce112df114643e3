"""The context's stat fingerprint (`build.memo`) and the remembered content digests of
context files (`build.context.remembered_hashes`): both must see every change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dockyard.build import memo
from dockyard.build.context import SourceRoot, plan_copy, remembered_hashes


def _settle() -> None:
    time.sleep(0.15)  # older than the racy window (100 ms)


def test_fingerprint_sees_every_change(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "f").write_text("one")
    assert memo.fingerprint(str(ctx)) == ""  # just written: too recent to be trusted
    _settle()
    first = memo.fingerprint(str(ctx))
    assert first and memo.fingerprint(str(ctx)) == first
    st = os.stat(ctx / "d" / "f")
    (ctx / "d" / "f").write_text("two")  # same size, mtime put back: ctime still moves
    os.utime(ctx / "d" / "f", ns=(st.st_atime_ns, st.st_mtime_ns))
    _settle()
    second = memo.fingerprint(str(ctx))
    assert second and second != first
    os.chmod(ctx / "d", 0o700)
    _settle()
    third = memo.fingerprint(str(ctx))
    assert third not in ("", second)
    (ctx / "d" / "new").mkdir()
    _settle()
    assert memo.fingerprint(str(ctx)) not in ("", third)


def test_remembered_hashes_hold_while_stat_data_does(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    f = ctx / "a.txt"
    f.write_text("aaaa")
    table = tmp_path / "hashes.json"
    src = SourceRoot(ctx)
    with remembered_hashes(table, ctx):
        fresh = plan_copy(src, ["a.txt"], "/a", "/").digest  # too recent: hashed, not remembered
    assert not table.exists()
    _settle()
    with remembered_hashes(table, ctx):
        assert plan_copy(src, ["a.txt"], "/a", "/").digest == fresh
    known = json.loads(table.read_text())
    assert list(known) == [str(f)] and known[str(f)][4] == "61be55a8e2f6b4e172338bddf184d6dbee29c98853e0a0485ecee7f27b9af0b4"
    # the remembered digest is what a later plan uses, as long as the stat data match
    known[str(f)][4] = "0" * 64
    table.write_text(json.dumps(known))
    with remembered_hashes(table, ctx):
        assert plan_copy(src, ["a.txt"], "/a", "/").digest != fresh
    st = os.stat(f)
    f.write_text("bbbb")  # same size, mtime put back: the ctime tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    _settle()
    with remembered_hashes(table, ctx):
        changed = plan_copy(src, ["a.txt"], "/a", "/").digest
    assert changed != fresh
    assert json.loads(table.read_text())[str(f)][4] != "0" * 64
    # outside the block nothing is remembered or used
    assert plan_copy(src, ["a.txt"], "/a", "/").digest == changed
