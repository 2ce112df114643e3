"""RUN --mount, build --secret and ADD --checksum flag parsing (pure)."""

from __future__ import annotations

import pytest

from dockyard.build.mounts import (absolute_target, check_checksum, parse_mount, parse_secret_flag,
                                   parse_size)
from dockyard.errors import InvalidArgument

SUM = "sha256:" + "a" * 64


def test_bind_defaults_and_rw() -> None:
    m = parse_mount("target=/m")
    assert (m.type, m.target, m.source, m.read_only) == ("bind", "/m", "", True)
    m = parse_mount("type=bind,src=data,dst=/d,from=build,rw")
    assert (m.source, m.target, m.from_, m.read_only) == ("data", "/d", "build", False)
    assert parse_mount("type=bind,target=/d,readwrite=false").read_only


def test_cache_defaults() -> None:
    m = parse_mount("type=cache,target=/root/.cache")
    assert (m.id, m.sharing, m.read_only, m.mode, m.uid) == ("/root/.cache", "shared", False, None, 0)
    m = parse_mount("type=cache,target=/c,id=pip,sharing=locked,mode=0700,uid=1000,gid=1000,ro")
    assert (m.id, m.sharing, m.mode, m.uid, m.gid, m.read_only) == ("pip", "locked", 0o700, 1000, 1000, True)


def test_tmpfs_and_secret() -> None:
    assert parse_mount("type=tmpfs,target=/t,size=64m").size == 64 << 20
    s = parse_mount("type=secret,id=pw")
    assert (s.target, s.mode, s.read_only, s.required) == ("/run/secrets/pw", 0o400, True, False)
    s = parse_mount("type=secret,target=/etc/key,required")
    assert (s.id, s.required) == ("key", True)
    assert parse_size("1k") == 1024 and parse_size("100") == 100


@pytest.mark.parametrize("value,msg", [
    ("type=foo,target=/x", "unsupported mount type 'foo'"),
    ("type=cache", "mount target not specified"),
    ("type=cache,target=/c,sharing=no", "unsupported sharing value 'no'"),
    ("type=bind,target=/c,bogus=1", "unexpected key 'bogus'"),
    ("type=cache,target=/c,uid=x", "invalid value for uid: x"),
    ("type=tmpfs,target=/t,size=lots", "invalid size: 'lots'"),
    ("type=secret", "secret mount: id or target is required"),
    ("type=ssh,target=/s,size=1", "unexpected key 'size'"),
    ("type=bind,target=/c,id=x", "bind mounts take no id"),
])
def test_mount_errors(value: str, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg.replace("(", r"\(").replace(")", r"\)")):
        parse_mount(value)


def test_relative_target() -> None:
    assert absolute_target("cache", "/app") == "/app/cache"
    with pytest.raises(InvalidArgument):
        absolute_target("/", "/")


def test_ssh_mount_and_flag() -> None:
    from dockyard.build.ssh import parse_ssh_flag

    m = parse_mount("type=ssh")
    assert (m.type, m.id, m.target, m.mode, m.required) == ("ssh", "default", "", 0o600, False)
    m = parse_mount("type=ssh,id=gh,target=/a,mode=0660,uid=5,required")
    assert (m.id, m.target, m.mode, m.uid, m.required) == ("gh", "/a", 0o660, 5, True)
    assert parse_ssh_flag("default") == ("default", [])
    assert parse_ssh_flag("gh=/k1,/k2") == ("gh", ["/k1", "/k2"])
    for bad in ("", "=x", "gh="):
        with pytest.raises(InvalidArgument):
            parse_ssh_flag(bad)


def test_secret_flag() -> None:
    assert parse_secret_flag("id=pw,src=/tmp/p") == ("pw", "/tmp/p")
    assert parse_secret_flag("source=/tmp/token") == ("token", "/tmp/token")
    for bad in ("id=pw", "pw", "id=x,src=/a,type=env"):
        with pytest.raises(InvalidArgument):
            parse_secret_flag(bad)


def test_checksum_rules() -> None:
    assert check_checksum(SUM, ["https://example.com/f"]) == SUM
    with pytest.raises(InvalidArgument, match="checksum requires HTTP\\(S\\) or Git sources"):
        check_checksum(SUM, ["local.txt"])
    with pytest.raises(InvalidArgument, match="multiple sources"):
        check_checksum(SUM, ["https://a/x", "https://a/y"])
    with pytest.raises(InvalidArgument, match="invalid checksum digest format"):
        check_checksum("nothex", ["https://a/x"])
    with pytest.raises(InvalidArgument, match="invalid checksum digest length"):
        check_checksum("sha256:abc", ["https://a/x"])
    with pytest.raises(InvalidArgument, match="unsupported digest algorithm"):
        check_checksum("md5:" + "a" * 32, ["https://a/x"])
    for algo, n in (("sha384", 96), ("sha512", 128)):
        assert check_checksum(f"{algo}:" + "b" * n, ["https://a/x"]) == f"{algo}:" + "b" * n
        with pytest.raises(InvalidArgument, match="invalid checksum digest length"):
            check_checksum(f"{algo}:" + "b" * 64, ["https://a/x"])
    # a Git source's checksum is the commit it must check out
    assert check_checksum("0123abcd", ["git://h/r.git#main"]) == "0123abcd"
    with pytest.raises(InvalidArgument, match="expected a commit hash"):
        check_checksum(SUM, ["git@h:r.git"])


def test_git_sources_as_buildkit_tells_them() -> None:
    from dockyard.build.mounts import is_git_url
    from dockyard.build.remote import parse_git_ref

    for url in ("git@github.com:o/r.git", "git://h/r", "ssh://git@h/r", "https://h/o/r.git",
                "https://h/o/r.git#v1:sub"):
        assert is_git_url(url), url
    for url in ("https://h/f.tar.gz", "http://h/r.git.txt", "r.git", "ftp://h/r.git"):
        assert not is_git_url(url), url
    assert parse_git_ref("git://h/r.git") == ("git://h/r.git", "", "")
    assert parse_git_ref("git://h/r.git#v1") == ("git://h/r.git", "v1", "")
    assert parse_git_ref("git://h/r.git#main:docs/../src/") == ("git://h/r.git", "main", "src")
    assert parse_git_ref("git://h/r.git#:sub") == ("git://h/r.git", "", "sub")


# ---- the executor with the in-memory backend ------------------------------------------

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from dockyard.build.cache import BuildCache  # noqa: E402
from dockyard.build.executor import BuildFailed  # noqa: E402
from test_build_executor import FakeBackend, _build  # noqa: E402


def test_run_mounts_reach_the_backend_and_key_the_cache(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "data" / "a").write_text("1")
    secret = tmp_path / "s"
    secret.write_text("one")
    cache = BuildCache(tmp_path / "cache")
    be = FakeBackend()
    text = ("FROM busybox\nWORKDIR /w\nRUN --mount=type=bind,source=data,target=d "
            "--mount=type=cache,target=/c,id=x --mount=type=tmpfs,target=/t,size=1k "
            "--mount=type=secret,id=pw true\n")
    _build(be, text, ctx, cache, secrets={"pw": str(secret)})
    mounts = {m.target: m for m in be.runs[-1].mounts}
    assert mounts["/w/d"].type == "bind" and mounts["/w/d"].source == str(ctx / "data")
    assert mounts["/c"].id == "x" and not mounts["/c"].read_only and mounts["/t"].size == 1024
    assert mounts["/run/secrets/pw"].source == str(secret) and mounts["/run/secrets/pw"].mode == 0o400
    secret.write_text("two")  # a secret's content is not in the key
    _, lines = _build(be, text, ctx, cache, secrets={"pw": str(secret)})
    assert len(be.runs) == 1 and "Cache miss" not in "\n".join(lines)
    (ctx / "data" / "a").write_text("2")  # a context bind's content is
    _, lines = _build(be, text, ctx, cache, secrets={"pw": str(secret)})
    assert len(be.runs) == 2 and " ---> Cache miss: RUN: --mount source content changed" in lines
    _, lines = _build(be, text.replace("id=x", "id=y"), ctx, cache, secrets={"pw": str(secret)})
    assert any(line.startswith(" ---> Cache miss: RUN: instruction changed (was: RUN --mount=") for line in lines)
    assert len(be.runs) == 3


def test_run_mount_errors_name_the_step(tmp_path: Path) -> None:
    be = FakeBackend()
    with pytest.raises(BuildFailed, match=r"^Step 2/2 : RUN --mount=type=secret,id=pw,required true: "
                                          r"secret pw not found"):
        _build(be, "FROM busybox\nRUN --mount=type=secret,id=pw,required true\n", tmp_path)
    with pytest.raises(BuildFailed, match="mount source nope not found in the build context"):
        _build(be, "FROM busybox\nRUN --mount=source=nope,target=/m true\n", tmp_path)
    _build(be, "FROM busybox\nRUN --mount=type=secret,id=pw true\n", tmp_path)  # optional: no mount
    assert be.runs[-1].mounts == ()


def test_copy_parents_plan(tmp_path: Path) -> None:
    for rel in ("x/a.txt", "y/a.txt", "x/y/b.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    be = FakeBackend()
    _build(be, "FROM busybox\nCOPY --parents x/a.txt y/a.txt /p/\nCOPY --parents ./x/./y/*.txt /q\n", tmp_path)
    dests = sorted(e.dest for c in be.copies for e in c.entries)
    assert dests == ["/p/x/a.txt", "/p/y/a.txt", "/q/y/b.txt"]


def test_add_checksum_on_a_local_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(BuildFailed, match="ADD --checksum=sha256:.*: checksum requires HTTP\\(S\\) or Git sources"):
        _build(FakeBackend(), f"FROM busybox\nADD --checksum={SUM} f /f\n", tmp_path)


def test_context_bind_hides_dockerignored_files(tmp_path: Path) -> None:
    from dockyard.build.context import SourceRoot
    from dockyard.build.executor import Builder, BuildOptions
    from dockyard.build.ignore import Matcher, parse as parse_ignore
    from dockyard.build.parser import parse

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "keep.txt").write_text("k")
    (tmp_path / "d" / "sub" / "secret.key").write_text("s")
    seen: list[list[str]] = []

    class Peek(FakeBackend):
        def run(self, parent, req, output, mtime_clamp, on_start):  # type: ignore[no-untyped-def]
            src = req.mounts[0].source
            seen.append(sorted(os.path.relpath(os.path.join(d, f), src)
                               for d, _, fs in os.walk(src) for f in fs))
            return super().run(parent, req, output, mtime_clamp, on_start)

    root = SourceRoot(tmp_path, Matcher(parse_ignore("**/*.key\n")))
    Builder(Peek(), None, root, BuildOptions(), lambda _l: None, lambda _d: None).build(
        parse("FROM busybox\nRUN --mount=source=d,target=/m true\n"))
    assert seen == [["keep.txt"]]
    assert (tmp_path / "d" / "sub" / "secret.key").exists()


def test_add_git_source_checks_out_ref_and_subdir(tmp_path: Path) -> None:
    from git_server import git_daemon, make_repo

    srv = tmp_path / "srv"
    _, (c1, c2) = make_repo(srv, {"README": "one\n", "src/app.py": "print(1)\n"}, {"README": "two\n"})
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with git_daemon(srv) as base:
        url = f"{base}/r.git"

        def files(df: str) -> dict[str, str]:
            fb = FakeBackend()
            _build(fb, f"FROM busybox\n{df}\n", ctx)
            return {e.dest: e.kind.value for e in fb.copies[-1].entries if e.kind.value == "file"}

        assert files(f"ADD {url} /app") == {"/app/README": "file", "/app/src/app.py": "file"}
        assert files(f"ADD {url}#main:src /s/") == {"/s/app.py": "file"}
        assert "/r/.git/HEAD" in files(f"ADD --keep-git-dir {url}#v2 /r")
        fb = FakeBackend()
        _build(fb, f"FROM busybox\nADD --checksum={c1[:12]} {url}#{c1} /old\n", ctx)
        with pytest.raises(BuildFailed, match=f"expected checksum to match {c1}, got {c2}"):
            _build(FakeBackend(), f"FROM busybox\nADD --checksum={c1} {url}#v2 /x\n", ctx)
        with pytest.raises(BuildFailed, match="no branch, tag or commit 'nope'"):
            _build(FakeBackend(), f"FROM busybox\nADD {url}#nope /x\n", ctx)
        with pytest.raises(BuildFailed, match="cannot fetch the repository"):
            _build(FakeBackend(), f"FROM busybox\nADD {base}/missing.git /x\n", ctx)
    with pytest.raises(BuildFailed, match="--keep-git-dir is only for Git sources"):
        _build(FakeBackend(), "FROM busybox\nADD --keep-git-dir . /x\n", ctx)
