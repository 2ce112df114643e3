"""The build frontend against an in-memory backend: stages, ARG scoping, cache, history,
and COPY source planning against a real directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard.build.backend import BaseImage, CopyRequest, EntryKind, LayerResult, RunRequest
from dockyard.build.cache import BuildCache, StepInputs, explain_miss
from dockyard.build.context import SourceRoot, plan_copy
from dockyard.build.executor import Builder, BuildFailed, BuildOptions
from dockyard.build.ignore import Matcher, parse as parse_ignore
from dockyard.build.parser import parse
from dockyard.errors import InvalidArgument, NotFound


class FakeBackend:
    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.runs: list[RunRequest] = []
        self.copies: list[CopyRequest] = []
        base = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
                "history": [{"created_by": "import"}]}
        self.base_id = self.create_image(base, None)
        self.exit_code = 0

    def base(self, ref: str) -> BaseImage:
        if ref != "busybox":
            raise NotFound(f"No such image: {ref}")
        return self.get_image(self.base_id)

    def get_image(self, image_id: str) -> BaseImage:
        return BaseImage(image_id, json.loads(json.dumps(self.images[image_id])), None)

    def image_exists(self, image_id: str) -> bool:
        return image_id in self.images

    def create_image(self, config: dict[str, Any], parent_id: str | None) -> str:
        data = json.dumps(config, separators=(",", ":")).encode()
        iid = "sha256:" + hashlib.sha256(data).hexdigest()
        self.images[iid] = json.loads(data)
        return iid

    def run(self, parent: BaseImage, req: RunRequest, output: Callable[[bytes], None], mtime_clamp: int | None,
            on_start: Callable[[str], None]) -> LayerResult:
        on_start("c" * 64)
        self.runs.append(req)
        output(b"ran\n")
        if self.exit_code:
            return LayerResult(None, self.exit_code)
        return LayerResult("sha256:" + hashlib.sha256(repr(req.argv).encode()).hexdigest())

    def copy(self, parent: BaseImage | None, req: CopyRequest, mtime_clamp: int | None) -> LayerResult:
        self.copies.append(req)
        if all(e.kind is EntryKind.DIR for e in req.entries):
            return LayerResult(None)
        return LayerResult("sha256:" + hashlib.sha256(repr(req.entries).encode()).hexdigest())

    @contextlib.contextmanager
    def rootfs(self, image: BaseImage) -> Iterator[Path]:
        yield Path(self.tmp)

    def tag(self, image_id: str, ref: str) -> None:
        pass

    tmp = "/"


def _build(backend: FakeBackend, text: str, ctx: Path, cache: BuildCache | None = None,
           **opts: Any) -> tuple[str, list[str]]:
    lines: list[str] = []
    b = Builder(backend, cache, SourceRoot(ctx), BuildOptions(**opts), lines.append, lambda _d: None)
    return b.build(parse(text)), lines


def test_four_steps_history_and_config(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    fb = FakeBackend()
    iid, lines = _build(fb, 'FROM busybox\nRUN echo hi > /x\nCOPY a.txt /a.txt\nENV A=b\nCMD ["cat", "/x"]\n',
                        tmp_path)
    assert lines[0] == "Step 1/5 : FROM busybox"
    doc = fb.images[iid]
    hist = [h["created_by"] for h in doc["history"][1:]]
    assert hist[0] == "/bin/sh -c echo hi > /x"
    assert hist[1].startswith("/bin/sh -c #(nop) COPY file:") and hist[1].endswith(" in /a.txt ")
    assert hist[2] == "/bin/sh -c #(nop)  ENV A=b"
    assert [h.get("empty_layer", False) for h in doc["history"][1:]] == [False, False, True, True]
    assert len(doc["rootfs"]["diff_ids"]) == 3
    assert doc["config"]["Cmd"] == ["cat", "/x"] and "A=b" in doc["config"]["Env"]
    assert list(doc) == sorted(doc)


def test_args_scoping_build_args_and_unused_warning(tmp_path: Path) -> None:
    fb = FakeBackend()
    text = ("ARG V=1\nARG BASE=busybox\nFROM $BASE\nARG V\nARG W=w\nENV E=$V-$W\nRUN echo $V\n")
    iid, lines = _build(fb, text, tmp_path, build_args={"V": "2", "NOPE": "x"})
    doc = fb.images[iid]
    assert "E=2-w" in doc["config"]["Env"]
    run = [h["created_by"] for h in doc["history"] if "echo" in h["created_by"]][0]
    assert run == "|2 V=2 W=w /bin/sh -c echo $V"
    assert fb.runs[0].env[-2:] == ("V=2", "W=w")
    assert any("[Warning] One or more build-args [NOPE] were not consumed" in line for line in lines)
    assert "/bin/sh -c #(nop)  ARG W=w" in [h["created_by"] for h in doc["history"]]


def test_env_overrides_arg_in_run_record(tmp_path: Path) -> None:
    fb = FakeBackend()
    iid, _ = _build(fb, "FROM busybox\nARG A=1\nENV A=2\nRUN echo\n", tmp_path)
    assert fb.images[iid]["history"][-1]["created_by"] == "/bin/sh -c echo"


def test_target_skips_unneeded_stages(tmp_path: Path) -> None:
    fb = FakeBackend()
    text = ("FROM busybox AS a\nRUN echo a\nFROM busybox AS b\nRUN echo b\nFROM busybox AS c\n"
            "COPY --from=a /etc /e\nRUN echo c\n")
    fb.tmp = str(tmp_path)
    (tmp_path / "etc").mkdir()
    _iid, lines = _build(fb, text, tmp_path, target="c")
    assert [r.argv[-1] for r in fb.runs] == ["echo a", "echo c"]
    assert lines[0] == "Step 1/5 : FROM busybox AS a"
    fb2 = FakeBackend()
    _build(fb2, text, tmp_path, target="b")
    assert [r.argv[-1] for r in fb2.runs] == ["echo b"]
    with pytest.raises(InvalidArgument, match="target"):
        _build(FakeBackend(), text, tmp_path, target="zzz")


def test_from_earlier_stage_and_scratch(tmp_path: Path) -> None:
    fb = FakeBackend()
    iid, _ = _build(fb, "FROM busybox AS one\nENV X=1\nFROM one\nENV Y=2\n", tmp_path)
    env = fb.images[iid]["config"]["Env"]
    assert "X=1" in env and "Y=2" in env
    (tmp_path / "f").write_text("x")
    iid, _ = _build(fb, "FROM scratch\nCOPY f /f\n", tmp_path)
    assert len(fb.images[iid]["rootfs"]["diff_ids"]) == 1
    with pytest.raises(BuildFailed, match="empty"):
        _build(fb, "FROM scratch\n", tmp_path)


def test_failed_run_names_step_command_and_code(tmp_path: Path) -> None:
    fb = FakeBackend()
    fb.exit_code = 3
    with pytest.raises(BuildFailed) as e:
        _build(fb, "FROM busybox\nRUN exit 3\n", tmp_path)
    assert str(e.value) == ("Step 2/2 : RUN exit 3: The command '/bin/sh -c exit 3' returned a non-zero "
                            "code: 3")


def test_cache_hits_and_miss_reasons(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("one")
    cache = BuildCache(tmp_path / "cache")
    fb = FakeBackend()
    text = "FROM busybox\nARG VERSION=1\nRUN echo $VERSION\nCOPY a.txt /a.txt\nCMD x\n"
    first, _ = _build(fb, text, ctx, cache)
    again, lines = _build(fb, text, ctx, cache)
    assert again == first and lines.count(" ---> Using cache") == 4
    os.utime(ctx / "a.txt", (1, 1))  # mtimes are not content
    assert _build(fb, text, ctx, cache)[0] == first
    (ctx / "a.txt").write_text("two")
    _, lines = _build(fb, text, ctx, cache)
    assert " ---> Cache miss: COPY a.txt: a.txt content changed" in lines
    assert " ---> Cache miss: previous step was rebuilt" in lines
    _, lines = _build(fb, text, ctx, cache, build_args={"VERSION": "2"})
    assert " ---> Cache miss: ARG: --build-arg VERSION changed" in lines or \
        " ---> Cache miss: RUN: --build-arg VERSION changed" in lines
    _, lines = _build(fb, text, ctx, cache, no_cache=True)
    assert not any("cache" in line.lower() for line in lines)


def test_explain_miss_metadata() -> None:
    a = StepInputs("COPY x /x", "c", files={"x": "file 644 abc"})
    b = StepInputs("COPY x /x", "c", files={"x": "file 755 abc"})
    assert explain_miss(b, [a], set(), False) == "COPY x: x metadata changed"
    assert explain_miss(b, [], set(), False) == "not built before on this parent"


def test_plan_copy_rules(tmp_path: Path) -> None:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "f").write_text("f")
    (tmp_path / "dir" / "g.log").write_text("g")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    src = SourceRoot(tmp_path, Matcher(parse_ignore("**/*.log")))
    plan = plan_copy(src, ["dir"], "/app", "/")
    dests = sorted(e.dest for e in plan.entries)
    assert dests == ["/app", "/app/sub", "/app/sub/f"]  # contents, not the dir; g.log ignored
    plan = plan_copy(src, ["*.txt"], "/out/", "/")
    assert sorted(e.dest for e in plan.entries) == ["/out/a.txt", "/out/b.txt"]
    assert plan.source_hash.startswith("multi:")
    with pytest.raises(InvalidArgument, match="must be a directory"):
        plan_copy(src, ["a.txt", "b.txt"], "/out", "/")
    plan = plan_copy(src, ["a.txt"], "rel", "/work")
    assert plan.entries[0].dest == "/work/rel" and plan.source_hash.startswith("file:")
    with pytest.raises(NotFound, match="file not found"):
        plan_copy(src, ["dir/g.log"], "/x", "/")
    with pytest.raises(InvalidArgument, match="remote URL"):
        plan_copy(src, ["http://example.com/x"], "/x", "/", cmd="ADD")
    before = plan_copy(src, ["a.txt"], "/a", "/").digest
    os.utime(tmp_path / "a.txt", (5, 5))
    assert plan_copy(src, ["a.txt"], "/a", "/").digest == before


def test_context_symlinks_never_lead_outside(tmp_path: Path) -> None:
    (tmp_path / "hostusr").symlink_to("/usr")
    (tmp_path / "up").symlink_to("../../usr")
    src = SourceRoot(tmp_path)
    for name in ("hostusr", "hostusr/bin", "up/bin", "hostusr/b*", "up/b*"):
        with pytest.raises(NotFound):
            plan_copy(src, [name], "/x/", "/")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "inner").symlink_to("/etc")
    (tmp_path / "alias").symlink_to("/data")
    plan = plan_copy(src, ["alias"], "/e", "/")  # a named source is followed (inside the root) ...
    assert [(e.kind, e.dest, e.source) for e in plan.entries] == [
        (EntryKind.DIR, "/e", ""), (EntryKind.SYMLINK, "/e/inner", "/etc")]  # ... links below are kept
    image = tmp_path / "img"
    (image / "real").mkdir(parents=True)
    (image / "real" / "f").write_text("f")
    (image / "abs").symlink_to("/real")
    plan = plan_copy(SourceRoot(image, chroot=True), ["abs/f"], "/f", "/")
    assert plan.entries[0].source == str(image / "real" / "f")


def test_base_image_change_is_the_miss_reason(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "cache")
    fb = FakeBackend()
    text = "FROM busybox\nRUN echo\n"
    _build(fb, text, tmp_path, cache)
    new_base = dict(fb.images[fb.base_id], comment="rebuilt")
    fb.base_id = fb.create_image(new_base, None)
    _, lines = _build(fb, text, tmp_path, cache)
    assert any(line.startswith(" ---> Cache miss: FROM busybox: base image changed (was ") for line in lines)


def test_add_extracts_only_real_archives(tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile

    (tmp_path / "notatar.gz").write_bytes(gzip.compress(b"plain text"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ti = tarfile.TarInfo("x")
        tf.addfile(ti, io.BytesIO(b""))
    (tmp_path / "real.tgz").write_bytes(buf.getvalue())
    src = SourceRoot(tmp_path)
    assert plan_copy(src, ["notatar.gz"], "/d/", "/", "ADD", extract_archives=True).entries[0].kind is EntryKind.FILE
    assert plan_copy(src, ["real.tgz"], "/d/", "/", "ADD", extract_archives=True).entries[0].kind is EntryKind.TAR
    assert plan_copy(src, ["real.tgz"], "/d/", "/", "COPY").entries[0].kind is EntryKind.FILE


def test_platform_args(tmp_path: Path) -> None:
    from dockyard.images.config import host_architecture

    fb = FakeBackend()
    iid, _ = _build(fb, "FROM busybox\nARG TARGETARCH\nENV ARCH=$TARGETARCH OS=$TARGETOS\n", tmp_path)
    env = fb.images[iid]["config"]["Env"]
    assert f"ARCH={host_architecture()}" in env and "OS=" in env  # TARGETOS was not declared


def test_special_files_below_a_directory_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "fifo")
    (tmp_path / "d" / "f").write_text("x")
    plan = plan_copy(SourceRoot(tmp_path), ["d"], "/d", "/")
    assert sorted(e.dest for e in plan.entries) == ["/d", "/d/f"]
    with pytest.raises(InvalidArgument, match="not a regular file"):
        plan_copy(SourceRoot(tmp_path), ["d/fifo"], "/x", "/")


def test_changed_instruction_names_the_previous_one() -> None:
    old = StepInputs("RUN echo ho", "/bin/sh -c echo ho")
    new = StepInputs("RUN echo hi", "/bin/sh -c echo hi")
    assert explain_miss(new, [old], set(), False) == "RUN: instruction changed (was: RUN echo ho)"
    assert explain_miss(new, [StepInputs("ENV A=1", "x")], set(), False) == "RUN: instruction changed"


def test_add_url_downloads_or_says_why_not(tmp_path: Path) -> None:
    import http.server
    import threading

    served = tmp_path / "srv"
    served.mkdir()
    (served / "remote.txt").write_text("remote")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        fb = FakeBackend()
        url = f"http://127.0.0.1:{srv.server_address[1]}/remote.txt"
        iid, _ = _build(fb, f"FROM busybox\nADD {url} /dl/\n", tmp_path)
        entry = fb.copies[-1].entries[0]
        assert entry.kind is EntryKind.FILE and entry.dest == "/dl/remote.txt" and entry.mode == 0o600
        assert fb.images[iid]["history"][-1]["created_by"].startswith("/bin/sh -c #(nop) ADD file:")
    finally:
        srv.shutdown()
    with pytest.raises(BuildFailed, match="cannot download it.*COPY it instead"):
        _build(FakeBackend(), "FROM busybox\nADD http://nonexistent.invalid/x.tgz /x\n", tmp_path)
    with pytest.raises(BuildFailed, match="can't be a URL"):
        _build(FakeBackend(), "FROM busybox\nCOPY http://nonexistent.invalid/x /x\n", tmp_path)


def test_copy_exclude(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name in ("a.md", "a.txt", "docs/b.md", "docs/b.txt"):
        (tmp_path / name).write_text(name)
    fb = FakeBackend()
    _build(fb, "FROM busybox\nCOPY --exclude=*.md --exclude=docs . /all/\nCOPY --exclude=*.md docs /d/\n", tmp_path)
    first, second = fb.copies[-2:]
    assert sorted(e.dest for e in first.entries if e.kind is EntryKind.FILE) == ["/all/a.txt"]
    assert sorted(e.dest for e in second.entries if e.kind is EntryKind.FILE) == ["/d/b.txt"]


def test_cache_prune_keeps_the_newest(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path)
    for i in range(5):
        cache.store(None, StepInputs(f"ENV A={i}", f"c{i}"), f"sha256:{i}")
        os.utime(cache.steps / f"{StepInputs(f'ENV A={i}', f'c{i}').key('scratch')}.json", (i, i))
    assert cache.prune(2) == 3
    assert cache.lookup(None, StepInputs("ENV A=4", "c4")) == "sha256:4"
    assert cache.lookup(None, StepInputs("ENV A=0", "c0")) is None
