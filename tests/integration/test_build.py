"""`dockyard build` on the real kernel: RUN in containers, COPY into layers, the cache,
stages, config/history bookkeeping, failures that leave nothing behind, reproducibility."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import TEST_ROOT, dy

pytestmark = pytest.mark.kernel

FOUR = 'FROM busybox\nRUN echo hi > /x\nCOPY a.txt /a.txt\nENV GREETING=hello\nCMD ["cat", "/x"]\n'


#: tags are unique per session: other sessions may build the same Dockerfiles meanwhile
SESSION = uuid.uuid4().hex[:8]


def tag(name: str) -> str:
    return f"dy-build-{name}-{SESSION}"


@pytest.fixture
def images() -> Iterator[list[str]]:
    """Image IDs and tags to remove after the test (removed newest first)."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        dy("rmi", "-f", ref)


def _step_images(out: str) -> list[str]:
    """IDs of the images the steps made or reused (not the FROM bases)."""
    ids: list[str] = []
    after_from = False
    for line in out.splitlines():
        if line.startswith("Step "):
            after_from = " : FROM " in line
            continue
        m = re.fullmatch(r" ---> ([0-9a-f]{12})", line)
        if m and not after_from:
            ids.append(m.group(1))
    return ids


def _build(images: list[str], ctx: Path, *args: str, ok: bool = True, **kw):  # type: ignore[no-untyped-def]
    p = dy("build", *args, str(ctx), **kw)
    images.extend(_step_images(p.stdout))
    for i, a in enumerate(args):
        if a == "-t":
            images.append(args[i + 1])
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def _config(image: str) -> dict:  # type: ignore[type-arg]
    iid = json.loads(dy("image", "inspect", image, check=True).stdout)[0]["Id"]
    return json.loads(Path(TEST_ROOT, "image/overlay2/imagedb/content/sha256", iid[7:]).read_text())


def _mounts() -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if TEST_ROOT in line]


def test_four_steps_build_run_cache_and_invalidation(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    (tmp_path / "Dockerfile").write_text(FOUR)
    p = _build(images, tmp_path, "-t", tag("four"))
    assert "Step 1/5 : FROM busybox" in p.stdout and f"Successfully tagged {tag('four')}:latest" in p.stdout
    run = dy("run", "--rm", tag("four"), "cat", "/x", "/a.txt")
    assert run.stdout == "hi\nhello\n", run.stderr
    assert dy("run", "--rm", tag("four")).stdout == "hi\n"

    again = _build(images, tmp_path, "-t", tag("four"))
    assert again.stdout.count(" ---> Using cache") == 4, again.stdout
    assert again.stdout.count(" ---> CACHED") == 4
    assert "Cache miss" not in again.stdout

    (tmp_path / "a.txt").write_text("changed\n")
    changed = _build(images, tmp_path, "-t", tag("four"))
    out = changed.stdout
    assert out.count(" ---> Using cache") == 1  # the RUN before the COPY
    assert " ---> Cache miss: COPY a.txt: a.txt content changed" in out
    assert dy("run", "--rm", tag("four"), "cat", "/a.txt").stdout == "changed\n"

    fresh = _build(images, tmp_path, "-t", tag("four"), "--no-cache")
    assert "Using cache" not in fresh.stdout and " ---> Running in " in fresh.stdout

    cfg = _config(tag("four"))
    hist = cfg["history"][-4:]
    assert hist[0]["created_by"] == "/bin/sh -c echo hi > /x" and "empty_layer" not in hist[0]
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /a.txt ", hist[1]["created_by"])
    assert hist[2] == {**hist[2], "created_by": "/bin/sh -c #(nop)  ENV GREETING=hello", "empty_layer": True}
    assert hist[3]["created_by"] == '/bin/sh -c #(nop)  CMD ["cat" "/x"]'
    assert "GREETING=hello" in cfg["config"]["Env"]
    assert len(cfg["rootfs"]["diff_ids"]) == len([h for h in cfg["history"] if not h.get("empty_layer")])


def test_args_build_args_and_unused_warning(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text("ARG TAG=latest\nFROM busybox:${TAG}\nARG VERSION=1\n"
                                         "RUN echo v=$VERSION > /v\n")
    p = _build(images, tmp_path, "-t", tag("args"), "--build-arg", "VERSION=2", "--build-arg", "UNUSED=1")
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in p.stdout
    assert dy("run", "--rm", tag("args"), "cat", "/v").stdout == "v=2\n"
    assert _config(tag("args"))["history"][-1]["created_by"] == "|1 VERSION=2 /bin/sh -c echo v=$VERSION > /v"
    p = _build(images, tmp_path, "-t", tag("args"), "--build-arg", "VERSION=3")
    assert " ---> Cache miss: RUN: --build-arg VERSION changed" in p.stdout


def test_multi_stage_copy_from_and_target(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS builder\nRUN mkdir /out && echo built > /out/artifact\n"
        "FROM busybox AS unused\nRUN exit 1\n"
        "FROM busybox\nCOPY --from=builder /out/artifact /app/\nCMD [\"cat\", \"/app/artifact\"]\n")
    p = _build(images, tmp_path, "-t", tag("multi"))
    assert "exit 1" not in p.stdout  # the unused stage is skipped
    assert dy("run", "--rm", tag("multi")).stdout == "built\n"
    p = _build(images, tmp_path, "-t", tag("multi-b"), "--target", "builder")
    assert "Step 2/2" in p.stdout
    assert dy("run", "--rm", tag("multi-b"), "cat", "/out/artifact").stdout == "built\n"


def test_workdir_user_entrypoint_cmd(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nWORKDIR /app\nWORKDIR sub\nRUN pwd > /pwd\nUSER 1000:1000\nEXPOSE 8080\n"
        "LABEL a=b\nSTOPSIGNAL SIGINT\nENTRYPOINT [\"echo\"]\nCMD [\"hello\", \"world\"]\n")
    _build(images, tmp_path, "-t", tag("cfg"), "--label", "extra=1")
    info = json.loads(dy("image", "inspect", tag("cfg"), check=True).stdout)[0]["Config"]
    assert info["WorkingDir"] == "/app/sub" and info["User"] == "1000:1000"
    assert info["Entrypoint"] == ["echo"] and info["Cmd"] == ["hello", "world"]
    assert info["ExposedPorts"] == {"8080/tcp": {}} and info["Labels"] == {"a": "b", "extra": "1"}
    assert info["StopSignal"] == "SIGINT"
    assert dy("run", "--rm", tag("cfg")).stdout == "hello world\n"
    got = dy("run", "--rm", "--entrypoint", "sh", tag("cfg"), "-c", "cat /pwd; id -u; pwd; ls -d /app/sub")
    assert got.stdout == "/app/sub\n1000\n/app/sub\n/app/sub\n", got.stderr


def test_dockerignore_and_copy_rules(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "deep" / "f.txt").write_text("f")
    (tmp_path / "src" / "debug.log").write_text("x")
    (tmp_path / "secret").write_text("s")
    (tmp_path / "keep.log").write_text("k")
    (tmp_path / ".dockerignore").write_text("secret\n**/*.log\n!keep.log\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"from tar\n"
        ti = tarfile.TarInfo("inner/t.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    (tmp_path / "bundle.tar.gz").write_bytes(buf.getvalue())
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nCOPY . /ctx/\nCOPY src /flat\nCOPY --chown=1000:1000 --chmod=600 keep.log /owned\n"
        "ADD bundle.tar.gz /unpacked/\n")
    _build(images, tmp_path, "-t", tag("ignore"))
    got = dy("run", "--rm", tag("ignore"), "sh", "-c",
             "cd /ctx && find . | sort; ls /flat; stat -c '%u %g %a' /owned; cat /unpacked/inner/t.txt")
    lines = got.stdout.splitlines()
    assert "./secret" not in lines and "./src/debug.log" not in lines
    assert "./keep.log" in lines and "./src/deep/f.txt" in lines and "./Dockerfile" in lines
    assert "deep" in lines and "1000 1000 600" in lines and "from tar" in lines
    p = dy("build", "-t", tag("missing"), "-f", "-", str(tmp_path), input="FROM busybox\nCOPY secret /s\n")
    assert p.returncode != 0 and "secret" in p.stderr and "excluded by .dockerignore" in p.stderr


def test_failing_run_leaves_nothing(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo about to fail && exit 7\nCMD true\n")
    p = _build(images, tmp_path, "-t", tag("fail"), ok=False)
    assert p.returncode != 0
    assert "about to fail" in p.stdout
    err = p.stderr.strip().splitlines()[-1]
    assert "Step 2/3 : RUN echo about to fail && exit 7" in err and "returned a non-zero code: 7" in err
    assert dy("image", "inspect", tag("fail")).returncode != 0
    # the build container (named in "Running in") is gone with its layers and mounts
    cid = re.search(r" ---> Running in ([0-9a-f]{12})", p.stdout).group(1)  # type: ignore[union-attr]
    assert not any(c.startswith(cid) for c in dy("ps", "-aq", "--no-trunc").stdout.split())
    assert not list(Path(TEST_ROOT, "containers").glob(cid + "*"))
    assert not list(Path(TEST_ROOT, "image/overlay2/layerdb/mounts").glob(cid + "*"))
    assert not [m for m in _mounts() if cid in m]
    bad = dy("build", "-f", "-", str(tmp_path), input="FROM busybox\nBOGUS x\n")
    assert bad.returncode != 0 and "line 2" in bad.stderr
    offline = dy("build", "-f", "-", str(tmp_path), input="FROM busybox\nADD http://nonexistent.invalid/a /a\n")
    assert offline.returncode != 0 and "cannot download it" in offline.stderr


def test_source_date_epoch_is_reproducible(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    (tmp_path / "Dockerfile").write_text(FOUR)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    ids = []
    for _ in range(2):
        p = dy("build", "-q", "--no-cache", str(tmp_path), env=env)
        assert p.returncode == 0, p.stderr
        ids.append(p.stdout.strip())
        images.append(ids[-1])
    assert ids[0] == ids[1] and ids[0].startswith("sha256:")
    assert _config(ids[0])["created"] == "2023-11-14T22:13:20Z"


def test_dockerfile_and_context_from_stdin(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "f.txt").write_text("from dir\n")
    _build(images, tmp_path, "-t", tag("stdin-f"), "-f", "-", input="FROM busybox\nCOPY f.txt /f\n")
    assert dy("run", "--rm", tag("stdin-f"), "cat", "/f").stdout == "from dir\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY g.txt /g\n"), ("g.txt", b"from tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    p = dy("build", "-t", tag("stdin-tar"), "-", input=buf.getvalue())
    images.append(tag("stdin-tar"))
    assert p.returncode == 0, p.stderr
    assert dy("run", "--rm", tag("stdin-tar"), "cat", "/g").stdout == "from tar\n"
    p = dy("build", "-q", "-", input=b"FROM busybox\nENV BARE=1\n")
    assert p.returncode == 0, p.stderr
    images.append(p.stdout.strip())


def test_heredoc_onbuild_shell_volume_healthcheck(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN <<EOF\necho one > /h1\necho two >> /h1\nEOF\n"
        "RUN cat > /h2 <<END\nline\nEND\n"
        'SHELL ["/bin/sh", "-ec"]\nRUN echo shell=$0 > /sh\n'
        "VOLUME /data\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN echo triggered > /trig\n")
    _build(images, tmp_path, "-t", tag("misc"))
    got = dy("run", "--rm", tag("misc"), "cat", "/h1", "/h2", "/sh")
    assert got.stdout == "one\ntwo\nline\nshell=/bin/sh\n", got.stderr
    cfg = _config(tag("misc"))["config"]
    assert cfg["Volumes"] == {"/data": {}} and cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"] and cfg["OnBuild"] == ["RUN echo triggered > /trig"]
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text(f"FROM {tag('misc')}\nRUN chown 1234:1234 /h1\n")
    p = _build(images, child, "-t", tag("misc-child"))
    assert "# Executing 1 build trigger" in p.stdout
    assert dy("run", "--rm", tag("misc-child"), "cat", "/trig").stdout == "triggered\n"
    assert _config(tag("misc-child"))["config"]["OnBuild"] is None
    grand = tmp_path / "grand"
    grand.mkdir()
    (grand / "Dockerfile").write_text(f"FROM busybox\nCOPY --from={tag('misc-child')} /h1 /h1\n")
    _build(images, grand, "-t", tag("misc-grand"))
    assert dy("run", "--rm", tag("misc-grand"), "stat", "-c", "%u:%g", "/h1").stdout == "1234:1234\n"


def test_iidfile_network_none_and_quiet(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN cat /proc/net/dev > /netdev\n")
    iidfile = tmp_path / "iid"
    p = dy("build", "-q", "--no-cache", "--network", "none", "--iidfile", str(iidfile), str(tmp_path))
    assert p.returncode == 0, p.stderr
    iid = p.stdout.strip()
    images.append(iid)
    assert iidfile.read_text() == iid and p.stdout == iid + "\n"
    ifaces = dy("run", "--rm", iid, "sh", "-c", "tail -n +3 /netdev | cut -d: -f1").stdout.split()
    assert ifaces == ["lo"]
    bad = dy("build", "--network", "bogus", str(tmp_path))
    assert bad.returncode != 0 and "network" in bad.stderr


def test_run_ignores_the_image_entrypoint_and_runs_as_user(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nENTRYPOINT ["false"]\nRUN echo ran > /ran\nUSER 1234\nRUN id -u > /tmp/uid\n')
    _build(images, tmp_path, "-t", tag("ep"))
    got = dy("run", "--rm", "--entrypoint", "cat", tag("ep"), "/ran", "/tmp/uid")
    assert got.stdout == "ran\n1234\n", got.stderr


def test_copy_heredoc_and_run_shebang_heredoc(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nCOPY <<EOF /etc/conf\nkey=$value\nEOF\n"
        "COPY --chmod=755 <<one <<two /bin/\n#!/bin/sh\necho one\none\n#!/bin/sh\necho two\ntwo\n"
        "RUN <<EOF\n#!/bin/sh -e\necho \"script ran as $0\" | cut -d' ' -f1-2 > /script\nEOF\n")
    _build(images, tmp_path, "-t", tag("heredoc"))
    got = dy("run", "--rm", tag("heredoc"), "sh", "-c", "cat /etc/conf; one; two; cat /script; ls /tmp | wc -l")
    assert got.stdout == "key=$value\none\ntwo\nscript ran\n0\n", got.stderr


def test_dockerfile_specific_dockerignore(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    (tmp_path / ".dockerignore").write_text("a\n")
    (tmp_path / "app.Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("b\n")
    _build(images, tmp_path, "-t", tag("own-ignore"), "-f", str(tmp_path / "app.Dockerfile"))
    got = dy("run", "--rm", tag("own-ignore"), "ls", "/ctx").stdout.split()
    assert "a" in got and "b" not in got


def test_cache_from_an_image_without_local_cache(busybox: str, tmp_path: Path, images: list[str]) -> None:
    """--cache-from: an image that arrived without its build cache (here: saved, removed with
    the whole build cache, loaded back) answers the steps whose history it shares; its RUN is
    not run again and an unchanged build ends in that very image."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("one\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN head -c 16 /dev/urandom | od -x > /rand\n"
                                    "ENV X=1\nCOPY f.txt /f.txt\n")
    src = tag("cachefrom-src")
    _build(images, ctx, "-t", src)
    src_id = dy("image", "inspect", "-f", "{{.Id}}", src, check=True).stdout.strip()
    rand = dy("run", "--rm", src, "cat", "/rand", check=True).stdout
    tar = tmp_path / "src.tar"
    dy("save", "-o", str(tar), src, check=True)
    dy("rmi", src, check=True)
    dy("builder", "prune", "-a", "-f", check=True)
    dy("load", "-i", str(tar), check=True)

    out = _build(images, ctx, "--cache-from", src, "-t", tag("cachefrom-same")).stdout
    assert out.count("Using cache (from --cache-from)") == 3, out
    assert dy("image", "inspect", "-f", "{{.Id}}", tag("cachefrom-same"), check=True).stdout.strip() == src_id

    (ctx / "f.txt").write_text("two\n")
    out = _build(images, ctx, "--cache-from", src, "-t", tag("cachefrom-changed")).stdout
    assert out.count(" ---> Using cache") == 2, out  # RUN and ENV (now from the local cache too)
    changed = tag("cachefrom-changed")
    assert dy("run", "--rm", changed, "cat", "/rand", check=True).stdout == rand
    assert dy("run", "--rm", changed, "cat", "/f.txt", check=True).stdout == "two\n"
    assert dy("image", "inspect", "-f", "{{.Id}}", changed, check=True).stdout.strip() != src_id
