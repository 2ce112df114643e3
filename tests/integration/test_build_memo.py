"""The build's fast path (`build.memo`): a fully cached build repeated with nothing changed
is answered from its record, byte for byte as the full builder answers it; any change to
the context, the base, the step cache or the images sends it back to the full builder."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import TEST_ROOT, dy

pytestmark = pytest.mark.kernel

SESSION = uuid.uuid4().hex[:8]
DOCKERFILE = 'FROM {base}\nRUN echo hi > /x\nCOPY a.txt /a.txt\nENV A=b\nCMD ["cat", "/x"]\n'


def tag(name: str) -> str:
    return f"dy-memo-{name}-{SESSION}"


@pytest.fixture
def refs() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for ref in reversed(made):
        dy("rmi", "-f", ref)
    dy("image", "prune", "-f")


def _records() -> set[str]:
    d = Path(TEST_ROOT) / "build" / "cache" / "memo"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def _tag_events(image: str) -> int:
    path = Path(os.environ["DOCKYARD_RUNROOT"]) / "events.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if '"Action":"tag"' in line and f'"ID":"{image}"' in line)


def _build(ctx: Path, *args: str) -> str:
    time.sleep(0.15)  # a context changed within the last 100 ms is not recorded (racy stat data)
    p = dy("build", "-t", tag("img"), *args, str(ctx))
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _strip_context_line(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if not line.startswith("Sending build context"))


def test_repeat_build_is_answered_from_the_record(busybox: str, tmp_path: Path, refs: list[str]) -> None:
    base = tag("base")
    dy("tag", busybox, base, check=True)
    refs += [tag("img"), base]
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (tmp_path / "a.txt").write_text("a\n")
    _build(tmp_path, "--no-cache")
    before = _records()
    full = _build(tmp_path)  # every step a hit: recorded
    assert full.count("CACHED") == 4
    new = _records() - before
    assert len(new) == 1
    record = Path(TEST_ROOT) / "build" / "cache" / "memo" / new.pop()
    image = json.loads(record.read_text())["image"]
    tags_before = _tag_events(image)
    fast = _build(tmp_path)
    assert fast == full  # same lines, same image
    q = dy("build", "-q", "-t", tag("img"), "--iidfile", str(tmp_path.parent / "iid"), str(tmp_path), check=True)
    assert q.stdout.strip() == image == (tmp_path.parent / "iid").read_text()
    assert _tag_events(image) == tags_before + 2  # each build tags, as Docker's: a tag event each

    # a touched file (same content): the record misses, the full builder still hits
    os.utime(tmp_path / "a.txt")
    again = _build(tmp_path)
    assert again.count("CACHED") == 4 and _strip_context_line(again) == _strip_context_line(full)
    # changed content: the full builder says why
    (tmp_path / "a.txt").write_text("b\n")
    changed = _build(tmp_path)
    assert "Cache miss: COPY a.txt: a.txt content changed" in changed
    (tmp_path / "a.txt").write_text("a\n")
    assert _build(tmp_path).count("CACHED") == 4
    assert _strip_context_line(_build(tmp_path)) == _strip_context_line(full)

    # a new file anywhere in the context, even one no step reads, is a change to look at
    (tmp_path / "unused.txt").write_text("x")
    assert _build(tmp_path).count("CACHED") == 4

    # the base retagged to another image: FROM resolves anew
    other = tag("other")
    refs.append(other)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "Dockerfile").write_text(f"FROM {busybox}\nENV OTHER=1\n")
    dy("build", "-q", "-t", other, str(tmp_path / "o"), check=True)
    dy("tag", other, base, check=True)
    rebased = _build(tmp_path)
    assert "Cache miss" in rebased and "base image changed" in rebased, rebased
    dy("tag", busybox, base, check=True)
    assert _build(tmp_path).count("CACHED") == 4
    assert _build(tmp_path).count("CACHED") == 4  # recorded again, then answered

    # the step cache pruned: rebuilt, not answered from the record
    dy("builder", "prune", "-a", "-f", check=True)
    pruned = _build(tmp_path)
    assert "CACHED" not in pruned and pruned.count("Cache miss") == 4, pruned


def test_a_tag_moved_elsewhere_is_put_back(busybox: str, tmp_path: Path, refs: list[str]) -> None:
    refs.append(tag("img"))
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=busybox))
    (tmp_path / "a.txt").write_text("a\n")
    _build(tmp_path)
    _build(tmp_path)
    time.sleep(0.15)
    image = dy("build", "-q", "-t", tag("img"), str(tmp_path), check=True).stdout.strip()
    dy("tag", busybox, tag("img"), check=True)  # someone moves the tag
    assert dy("build", "-q", "-t", tag("img"), str(tmp_path), check=True).stdout.strip() == image
    inspect = json.loads(dy("image", "inspect", tag("img"), check=True).stdout)[0]
    assert inspect["Id"] == image
    # a tag the record has not seen goes through the full builder, which checks it
    p = dy("build", "-q", "-t", "Not/Valid", str(tmp_path))
    assert p.returncode != 0 and "invalid reference format" in p.stderr
