"""RUN --mount (bind, cache, tmpfs, secret), ADD --checksum and COPY --parents on the real
kernel: what RUN sees, what the image keeps (nothing of the mounts), and the cache."""

from __future__ import annotations

import hashlib
import os
import http.server
import shutil
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import TEST_ROOT, dy

pytestmark = pytest.mark.kernel

SESSION = uuid.uuid4().hex[:8]


def tag(name: str) -> str:
    return f"dy-bm-{name}-{SESSION}"


@pytest.fixture
def images() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for ref in reversed(made):
        dy("rmi", "-f", ref)
    dy("image", "prune", "-f")  # a failed build leaves its last step's image dangling, as Docker's


def _build(images: list[str], ctx: Path, name: str, *args: str, ok: bool = True):  # type: ignore[no-untyped-def]
    p = dy("build", "-t", tag(name), *args, str(ctx))
    images.append(tag(name))
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def _run(image: str, script: str) -> str:
    p = dy("run", "--rm", tag(image), "sh", "-c", script)
    return p.stdout


def _history(image: str) -> str:
    return dy("history", "--no-trunc", tag(image), check=True).stdout


def _mounts() -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if TEST_ROOT in line]


def test_cache_mount_persists_between_builds_and_is_not_in_the_image(busybox: str, tmp_path: Path,
                                                                     images: list[str]) -> None:
    cid = f"bm-cache-{SESSION}"
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nARG N\n"
        f"RUN --mount=type=cache,target=/cache,id={cid} echo run$N >> /cache/log && cat /cache/log > /seen\n")
    _build(images, tmp_path, "cache", "--build-arg", "N=1")
    assert _run("cache", "cat /seen") == "run1\n"
    _build(images, tmp_path, "cache", "--build-arg", "N=2")
    assert _run("cache", "cat /seen") == "run1\nrun2\n"
    assert _run("cache", "ls -a /cache 2>&1; echo end").strip().endswith("end")
    assert "No such file" in _run("cache", "ls /cache 2>&1")  # the stub mount point is gone too
    assert (Path(TEST_ROOT) / "build" / "mounts" / cid / "log").read_text() == "run1\nrun2\n"
    again = _build(images, tmp_path, "cache", "--build-arg", "N=2")
    assert "CACHED" in again.stdout.split("RUN --mount")[1]
    shutil.rmtree(Path(TEST_ROOT) / "build" / "mounts" / cid)


def test_bind_mount_from_context_and_stage(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("from-context\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS other\nRUN mkdir /stuff && echo from-stage > /stuff/s.txt\n"
        "FROM busybox\n"
        "RUN --mount=type=bind,source=data,target=/ctx cat /ctx/in.txt > /got-ctx\n"
        "RUN --mount=type=bind,from=other,source=/stuff,target=/st cat /st/s.txt > /got-stage\n"
        "RUN --mount=type=bind,source=data,target=/rw,rw echo x > /rw/new.txt && ls /rw > /got-rw\n")
    _build(images, tmp_path, "bind")
    assert _run("bind", "cat /got-ctx /got-stage /got-rw") == "from-context\nfrom-stage\nin.txt\nnew.txt\n"
    assert "No such file" in _run("bind", "ls /ctx /st /rw 2>&1")
    assert not (tmp_path / "data" / "new.txt").exists()  # rw never writes the context
    (tmp_path / "data" / "in.txt").write_text(f"changed-{SESSION}\n")
    again = _build(images, tmp_path, "bind")
    after = again.stdout.split("source=data,target=/ctx")[1].split("Step")[0]
    assert "Cache miss: RUN: --mount source content changed" in after, again.stdout
    assert _run("bind", "cat /got-ctx") == f"changed-{SESSION}\n"
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "Dockerfile").write_text("FROM busybox\nRUN --mount=type=bind,target=/m touch /m/x\n")
    failed = _build(images, ro, "bindro", ok=False)
    assert failed.returncode != 0 and "Read-only file system" in failed.stdout + failed.stderr
    assert not _mounts()


def test_tmpfs_mount(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN --mount=type=tmpfs,target=/t,size=1m "
        "grep ' /t tmpfs' /proc/mounts > /got && echo big > /t/f\n")
    _build(images, tmp_path, "tmpfs")
    assert "size=1024k" in _run("tmpfs", "cat /got")
    assert "No such file" in _run("tmpfs", "ls /t 2>&1")
    # a mount point below an existing directory leaves no layer at all (BuildKit's stub cleaner)
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN --mount=type=tmpfs,target=/etc/zz/t true\n")
    _build(images, tmp_path, "tmpfs2", "--no-cache")
    layers = dy("image", "inspect", "-f", "{{len .RootFS.Layers}}", tag("tmpfs2"), check=True).stdout
    assert layers == dy("image", "inspect", "-f", "{{len .RootFS.Layers}}", busybox, check=True).stdout


def test_secret_readable_in_run_absent_from_image_and_history(busybox: str, tmp_path: Path,
                                                              images: list[str]) -> None:
    secret = tmp_path / "s.txt"
    secret.write_text("hunter2")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN --mount=type=secret,id=pw cat /run/secrets/pw > /copy && "
        "stat -c %a /run/secrets/pw > /mode\n"
        "RUN --mount=type=secret,id=pw,target=/etc/pw,required ls -l /etc/pw > /lsl\n")
    _build(images, ctx, "secret", "--secret", f"id=pw,src={secret}")
    assert _run("secret", "cat /copy /mode") == "hunter2400\n"
    assert "No such file" in _run("secret", "ls /run/secrets/pw /etc/pw 2>&1")
    assert "hunter2" not in _history("secret")
    missing = _build(images, ctx, "secret2", ok=False)
    assert missing.returncode != 0 and "secret pw not found" in missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_add_checksum(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "f.txt").write_text("payload\n")
    good = "sha256:" + hashlib.sha256(b"payload\n").hexdigest()
    bad = "sha256:" + "0" * 64
    handler = lambda *a, **kw: _Quiet(*a, directory=str(tmp_path), **kw)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/f.txt"
    try:
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={good} {url} /f.txt\n")
        _build(images, ctx, "sumok")
        assert _run("sumok", "cat /f.txt") == "payload\n"
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={bad} {url} /f.txt\n")
        p = _build(images, ctx, "sumbad", ok=False)
        assert p.returncode != 0 and f"digest mismatch {bad}: {good}" in p.stderr, p.stdout + p.stderr
        for algo in ("sha384", "sha512"):
            right = f"{algo}:" + hashlib.new(algo, b"payload\n").hexdigest()
            (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={right} {url} /{algo}.txt\n")
            _build(images, ctx, algo)
            assert _run(algo, f"cat /{algo}.txt") == "payload\n"
            wrong = right[:-4] + "0000"
            (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={wrong} {url} /f.txt\n")
            p = _build(images, ctx, algo + "bad", ok=False)
            assert p.returncode != 0 and f"digest mismatch {wrong}: {right}" in p.stderr, p.stdout + p.stderr
        (ctx / "local.txt").write_text("x")
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={good} local.txt /l\n")
        p = _build(images, ctx, "sumlocal", ok=False)
        assert p.returncode != 0 and "checksum requires HTTP(S) or Git sources" in p.stderr
    finally:
        srv.shutdown()
        srv.server_close()


def test_copy_parents_layouts(busybox: str, tmp_path: Path, images: list[str]) -> None:
    for rel in ("x/a.txt", "y/a.txt", "x/y/b.txt", "x/y/z/c.txt", "d/e/f.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel + "\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY --parents ./x/a.txt ./y/a.txt /parents/\n"
        "COPY --parents ./x/./y/*.txt /pivot/\n"
        "COPY --parents x/*/z/*.txt /glob/\n"
        "COPY --parents d /dir/\n")
    _build(images, tmp_path, "parents")
    out = _run("parents", "cd / && find parents pivot glob dir -type f | sort")
    assert out.split() == ["dir/d/e/f.txt", "glob/x/y/z/c.txt", "parents/x/a.txt", "parents/y/a.txt",
                           "pivot/y/b.txt"], out
    assert _run("parents", "cat /parents/y/a.txt") == "y/a.txt\n"


def test_mount_flag_errors(busybox: str, tmp_path: Path, images: list[str]) -> None:
    for bad, msg in (("type=foo,target=/x", "unsupported mount type 'foo'"),
                     ("type=cache", "mount target not specified"),
                     ("type=cache,target=/c,sharing=bogus", "unsupported sharing value 'bogus'"),
                     ("type=bind,target=/m,source=nope", "not found")):
        (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN --mount={bad} true\n")
        p = _build(images, tmp_path, "bad", ok=False)
        assert p.returncode != 0 and msg in p.stderr and "Step 2/2" in p.stderr, (bad, p.stderr)
        assert "Traceback" not in p.stderr
    assert not _mounts()


def test_cache_mount_sharing_and_odd_ids(busybox: str, tmp_path: Path, images: list[str]) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN --mount=type=cache,target=/c,id=..,sharing=locked,uid=1000,mode=0700 stat -c '%u %a' /c > /l\n"
        "RUN --mount=type=cache,target=/p,id=..,sharing=private stat -c '%u %a' /p > /p2\n")
    _build(images, tmp_path, "sharing", "--no-cache")
    assert _run("sharing", "cat /l /p2") == "1000 700\n1000 700\n"
    home = Path(TEST_ROOT) / "build" / "mounts"
    assert (home / "%2E.").is_dir() and not any(p.name.startswith(".private-") for p in home.iterdir())
    shutil.rmtree(home / "%2E.")


def test_add_git_repository(busybox: str, tmp_path: Path, images: list[str]) -> None:
    from git_server import git_daemon, make_repo

    srv = tmp_path / "srv"
    _, (c1, c2) = make_repo(srv, {"README": "one\n", "src/app.sh": "echo app\n"}, {"README": "two\n"})
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with git_daemon(srv) as base:
        url = f"{base}/r.git"
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD {url} /app\nADD --checksum={c1} {url}#{c1}:src /old/\n"
                                        f"ADD --keep-git-dir {url}#v2 /kept\n")
        p = _build(images, ctx, "git")
        out = _run("git", "cat /app/README /old/app.sh; ls -a /app; test -f /kept/.git/HEAD && echo kept")
        assert out.split() == ["two", "echo", "app", ".", "..", "README", "src", "kept"], p.stdout
        again = _build(images, ctx, "git")
        assert again.stdout.count("CACHED") == 3, again.stdout  # same commits: same content, cache hits
    p = _build(images, ctx, "gitoff", ok=False)  # the daemon is gone: one line, no traceback
    assert p.returncode != 0 and "cannot fetch the repository" in p.stderr and "Traceback" not in p.stderr


def test_builder_prune_removes_cache_mounts_then_cached_steps(busybox: str, tmp_path: Path,
                                                               images: list[str]) -> None:
    cid = f"bm-prune-{SESSION}"
    mount_dir = Path(TEST_ROOT) / "build" / "mounts" / cid
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nRUN --mount=type=cache,target=/c,id={cid} echo {SESSION} > /c/f && cp /c/f /kept\n")
    _build(images, tmp_path, "prune")
    assert mount_dir.is_dir()
    assert dy("builder", "prune", input="n\n").stdout.startswith("WARNING! This will remove all dangling build cache.")
    assert mount_dir.is_dir()  # answered no
    p = dy("builder", "prune", "-f", check=True)
    assert "Deleted build cache objects:\n" in p.stdout and cid in p.stdout.split("\n"), p.stdout
    assert "Total reclaimed space: " in p.stdout
    assert not mount_dir.exists()
    # the step itself is still cached (its image exists): only -a drops it
    assert "CACHED" in _build(images, tmp_path, "prune").stdout.split("RUN --mount")[1]
    assert not mount_dir.exists()  # a cache hit mounts nothing
    dy("builder", "prune", "-a", "-f", check=True)
    again = _build(images, tmp_path, "prune").stdout.split("RUN --mount")[1]
    assert "CACHED" not in again and "Cache miss" in again, again
    assert mount_dir.is_dir() and _run("prune", "cat /kept") == f"{SESSION}\n"
    dy("builder", "prune", "-f", check=True)
    assert dy("builder", "prune", "-f", check=True).stdout == "Total reclaimed space: 0B\n"


def _ssh_add_rootfs(dest: Path) -> None:
    """The host's ssh-add and the libraries it links, at the same paths under `dest`."""
    import subprocess

    out = subprocess.run(["ldd", "/usr/bin/ssh-add"], capture_output=True, text=True, check=True).stdout
    paths = ["/usr/bin/ssh-add"] + [w for line in out.splitlines() for w in line.split() if w.startswith("/")]
    for p in paths:
        target = dest / p.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(p), target)


def test_ssh_mount_forwards_an_agent(busybox: str, tmp_path: Path, images: list[str]) -> None:
    import subprocess

    if not shutil.which("ssh-agent") or not shutil.which("ssh-keygen"):
        pytest.skip("openssh-client is not installed")
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"k-{SESSION}", "-f", str(key)],
                   check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    ctx = tmp_path / "ctx"
    _ssh_add_rootfs(ctx / "root")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY root/ /\n"
        "RUN --mount=type=ssh ssh-add -l > /default && echo $SSH_AUTH_SOCK > /sock && "
        "stat -c '%a %u' $SSH_AUTH_SOCK >> /sock\n"
        "RUN --mount=type=ssh,id=k,target=/agent,uid=1000,mode=0660 "
        "SSH_AUTH_SOCK=/agent ssh-add -l > /k && stat -c '%a %u' /agent >> /k\n"
        "RUN --mount=type=ssh,id=absent if [ -e /run/buildkit ]; then echo mounted; else echo none; fi > /absent\n")
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    sock = agent_dir / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            import time
            time.sleep(0.02)
        env = {"SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=dict(os.environ, **env), check=True)
        p = dy("build", "-t", tag("ssh"), "--ssh", "default", "--ssh", f"k={key}", str(ctx), env=env)
        images.append(tag("ssh"))
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        agent.terminate()
        agent.wait(10)
    out = _run("ssh", "cat /default /sock /k; cat /absent; ls /agent /run/buildkit 2>&1")
    lines = out.splitlines()
    assert fingerprint in lines[0] and f"k-{SESSION}" in lines[0], out  # the forwarded agent's key
    assert lines[1:3] == ["/run/buildkit/ssh_agent.0", "600 0"], out
    assert fingerprint in lines[3] and lines[4] == "660 1000", out  # the key file, in a private agent
    assert lines[5] == "none", out  # not forwarded (and not required): no mount
    assert lines[6:] == ["ls: /agent: No such file or directory", "ls: /run/buildkit: No such file or directory"], out
    assert not _mounts()  # no socket, no mount point in the image
    required = ctx / "Dockerfile"
    required.write_text("FROM busybox\nRUN --mount=type=ssh,required ls\n")
    p = _build(images, ctx, "sshreq", ok=False)
    assert p.returncode != 0 and "no SSH key 'default' forwarded from the client" in p.stderr
    assert "Traceback" not in p.stderr
