"""cp, diff, export and commit through the CLI, checked against Docker's behaviour."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import TEST_ROOT, dy

pytestmark = pytest.mark.usefixtures("busybox")


def uniq(prefix: str = "fl") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def inspect(ref: str, kind: str = "inspect") -> dict:
    args = ("image", "inspect", ref) if kind == "image" else ("inspect", ref)
    return json.loads(dy(*args, check=True).stdout)[0]


def run(cleanup: list[str], *args: str, detach: bool = False) -> str:
    name = uniq()
    cleanup.append(name)
    dy("run", *(("-d",) if detach else ()), "--name", name, "busybox", *args, check=True)
    return name


def tar_of(*args: str) -> tarfile.TarFile:
    p = dy(*args, input=b"")
    assert p.returncode == 0, p.stderr
    return tarfile.open(fileobj=io.BytesIO(p.stdout))


def read(tf: tarfile.TarFile, name: str) -> bytes:
    f = tf.extractfile(name)
    assert f is not None
    return f.read()


def mounted(name: str) -> bool:
    merged = inspect(name)["GraphDriver"]["Data"]["MergedDir"]
    with open("/proc/mounts") as f:
        return any(line.split()[1] == merged for line in f)


def rmi(*refs: str) -> None:
    for ref in refs:
        dy("rmi", "-f", ref)


CHANGES = ("echo hi > /newf; rm /bin/ls; echo x >> /etc/passwd; mkdir -p /a/b; "
           "echo 9.9.9.9 extra >> /etc/hosts; echo other > /etc/hostname")
EXPECTED_DIFF = "A /a\nA /a/b\nC /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /newf\n"


# ---- diff ------------------------------------------------------------------------------


def test_diff_added_changed_deleted(container_cleanup):
    name = run(container_cleanup, "sh", "-c", CHANGES)
    p = dy("diff", name)
    assert p.returncode == 0, p.stderr
    # /etc/hosts and /etc/hostname are Docker's bind mounts: never in the diff
    assert p.stdout == EXPECTED_DIFF


def test_diff_running_container_and_nothing_changed(container_cleanup):
    name = run(container_cleanup, "sh", "-c", "touch /made; sleep 300", detach=True)
    idle = run(container_cleanup, "true")
    hidden = run(container_cleanup, "sh", "-c", "echo 1.1.1.1 x >> /etc/hosts")
    for _ in range(100):
        if dy("diff", name).stdout:
            break
    assert dy("diff", name).stdout == "A /made\n"
    assert dy("diff", idle).stdout == ""
    assert dy("diff", hidden).stdout == ""
    p = dy("diff", "no-such-container-x")
    assert p.returncode == 1
    assert p.stderr == "Error response from daemon: No such container: no-such-container-x\n"


# ---- export ------------------------------------------------------------------------------


def test_export_stopped_to_stdout_and_file(container_cleanup, tmp_path):
    name = run(container_cleanup, "sh", "-c", "echo made here > /made-here; mkdir /dd")
    tf = tar_of("export", name)
    names = set(tf.getnames())
    assert {"bin/sh", "etc/passwd", "made-here", "dd", ".dockerenv"} <= names
    assert read(tf, "made-here") == b"made here\n"
    assert not any(n.startswith(("/", "./")) for n in names)
    assert not mounted(name)  # mounted for the export only
    out = tmp_path / "x.tar"
    p = dy("export", "-o", str(out), name)
    assert p.returncode == 0 and p.stdout == "", p.stderr
    with tarfile.open(out) as tf2:
        assert read(tf2, "made-here") == b"made here\n"
    assert [f.name for f in tmp_path.iterdir()] == ["x.tar"]  # no temp file left


def test_export_running_keeps_it_mounted_and_refuses_a_terminal(container_cleanup):
    name = run(container_cleanup, "sh", "-c", "echo r > /live; sleep 300", detach=True)
    for _ in range(100):
        if "live" in tar_of("export", name).getnames():
            break
    assert read(tar_of("export", name), "live") == b"r\n"
    assert mounted(name) and inspect(name)["State"]["Running"]
    master, slave = os.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "dockyard", "export", name], stdout=slave,
                           stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 1
    assert p.stderr == b"cowardly refusing to save to a terminal. Use the -o flag or redirect\n"


# ---- cp out ------------------------------------------------------------------------------


def test_cp_out_file_dir_contents_and_owners(container_cleanup, tmp_path):
    name = run(container_cleanup, "sh", "-c",
               "mkdir -p /d/sub; echo a > /d/a; echo b > /d/sub/b; echo f > /f; "
               "chown 1234:1234 /f; chmod 640 /f; ln -s /etc /lnk")
    # a tar on stdout keeps owners and modes
    tf = tar_of("cp", f"{name}:/f", "-")
    (m,) = tf.getmembers()
    assert (m.name, m.uid, m.gid, m.mode) == ("f", 1234, 1234, 0o640)
    assert read(tf, "f") == b"f\n"
    # local copies: the invoking user owns them, unless -a
    assert dy("cp", f"{name}:/f", str(tmp_path / "f1")).returncode == 0
    assert (tmp_path / "f1").read_text() == "f\n" and (tmp_path / "f1").stat().st_uid == os.geteuid()
    assert dy("cp", "-a", f"{name}:/f", str(tmp_path / "f2")).returncode == 0
    assert (tmp_path / "f2").stat().st_uid == 1234
    # a directory into an existing one, and "dir/." (its contents)
    assert dy("cp", f"{name}:/d", str(tmp_path)).returncode == 0
    assert (tmp_path / "d" / "sub" / "b").read_text() == "b\n"
    (tmp_path / "into").mkdir()
    assert dy("cp", f"{name}:/d/.", str(tmp_path / "into")).returncode == 0
    assert sorted(os.listdir(tmp_path / "into")) == ["a", "sub"]
    assert dy("cp", f"{name}:/d", str(tmp_path / "new")).returncode == 0
    assert sorted(os.listdir(tmp_path / "new")) == ["a", "sub"]
    tf = tar_of("cp", f"{name}:/d/.", "-")
    assert sorted(tf.getnames()) == [".", "a", "sub", "sub/b"]
    # symlinks: copied as links, followed with -L (inside the container: /etc is its /etc)
    assert dy("cp", f"{name}:/lnk", str(tmp_path / "l1")).returncode == 0
    assert os.readlink(tmp_path / "l1") == "/etc"
    assert dy("cp", "-L", f"{name}:/lnk", str(tmp_path / "l2")).returncode == 0
    assert (tmp_path / "l2" / "passwd").is_file()
    assert not mounted(name)


def test_cp_out_errors(container_cleanup, tmp_path):
    name = run(container_cleanup, "sh", "-c", "mkdir /d")
    (tmp_path / "file").write_text("x")
    cases = [
        ((f"{name}:/nope", str(tmp_path)), f"Error: No such container:path: {name}:/nope\n"),
        ((f"{name}:/d", str(tmp_path / "file")), "Error: cannot copy directory\n"),
        ((f"{name}:/etc/passwd", str(tmp_path / "nodir") + "/"), "Error: no such directory\n"),
        ((f"{name}:/d", f"{name}:/x"), "Error: copying between containers is not supported\n"),
        ((str(tmp_path), str(tmp_path)), "Error: must specify at least one container source\n"),
    ]
    for args, err in cases:
        p = dy("cp", *args)
        assert (p.returncode, p.stderr) == (1, err), args
    assert (tmp_path / "file").read_text() == "x"


# ---- cp in -------------------------------------------------------------------------------


def test_cp_in_running_container(container_cleanup, tmp_path):
    name = run(container_cleanup, "sleep", "300", detach=True)
    src = tmp_path / "src"
    (src / "in").mkdir(parents=True)
    (src / "h").write_text("hello\n")
    (src / "in" / "x").write_text("x\n")
    os.chown(src / "h", 555, 556)
    assert dy("cp", str(src / "h"), f"{name}:/").returncode == 0
    assert dy("cp", str(src), f"{name}:/tmp").returncode == 0        # -> /tmp/src
    assert dy("cp", f"{src}/.", f"{name}:/newdir").returncode == 0   # contents -> new dir
    assert dy("cp", str(src / "h"), f"{name}:/etc/passwd-copy").returncode == 0
    tf = tar_of("cp", f"{name}:/", "-")
    got = {m.name: m for m in tf.getmembers()}
    assert read(tf, "h") == b"hello\n" and (got["h"].uid, got["h"].gid) == (555, 556)
    assert read(tf, "tmp/src/in/x") == b"x\n"
    assert read(tf, "newdir/h") == b"hello\n" and "newdir/in/x" in got
    assert read(tf, "etc/passwd-copy") == b"hello\n"
    # the container sees the files (same overlay), and it is still running
    assert inspect(name)["State"]["Running"] and mounted(name)
    # a tar on stdin goes into a directory, names under it
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("sub/s.txt")
        ti.size, ti.uid = 3, 42
        t.addfile(ti, io.BytesIO(b"s!\n"))
    assert dy("cp", "-", f"{name}:/tmp", input=buf.getvalue()).returncode == 0
    tf = tar_of("cp", f"{name}:/tmp/sub/s.txt", "-")
    assert read(tf, "s.txt") == b"s!\n" and tf.getmember("s.txt").uid == 42
    p = dy("cp", "-", f"{name}:/h", input=buf.getvalue())
    assert (p.returncode, p.stderr) == (1, f'Error: destination "{name}:/h" must be a directory\n'.encode())
    p = dy("cp", str(src), f"{name}:/h")
    assert (p.returncode, p.stderr) == (1, "Error: cannot copy directory\n")
    p = dy("cp", str(src / "h"), f"{name}:/nope/x")
    assert (p.returncode, p.stderr) == (1, f"Error response from daemon: Could not find the file /nope in container {name}\n")


def test_cp_in_symlinks_resolve_inside_the_container(container_cleanup, tmp_path):
    name = run(container_cleanup, "sh", "-c", "ln -s / /up; ln -s /etc /tmp/etclink")
    (tmp_path / "f").write_text("inside\n")
    marker = f"/tmp/dockyard-escape-{secrets.token_hex(4)}"
    assert dy("cp", str(tmp_path / "f"), f"{name}:/up/up{marker}").returncode == 0
    assert not os.path.exists(marker)  # the container's /, never the host's
    assert read(tar_of("cp", f"{name}:{marker}", "-"), os.path.basename(marker)) == b"inside\n"
    assert dy("cp", str(tmp_path / "f"), f"{name}:/tmp/etclink").returncode == 0
    tf = tar_of("cp", f"{name}:/etc/f", "-")
    assert read(tf, "f") == b"inside\n"


def test_cp_archive_mode_uses_the_container_user(container_cleanup, tmp_path):
    name = uniq()
    container_cleanup.append(name)
    dy("create", "--name", name, "-u", "1000:1001", "busybox", "true", check=True)
    (tmp_path / "o").write_text("o\n")
    os.chown(tmp_path / "o", 555, 556)
    assert dy("cp", str(tmp_path / "o"), f"{name}:/tmp/plain").returncode == 0
    assert dy("cp", "-a", str(tmp_path / "o"), f"{name}:/tmp/archived").returncode == 0
    plain = tar_of("cp", f"{name}:/tmp/plain", "-").getmember("plain")
    archived = tar_of("cp", f"{name}:/tmp/archived", "-").getmember("archived")
    assert (plain.uid, plain.gid) == (555, 556)       # Docker keeps the archive's owners
    assert (archived.uid, archived.gid) == (1000, 1001)  # -a: the container's user


def test_cp_into_stopped_container_then_start(container_cleanup, tmp_path):
    name = uniq()
    container_cleanup.append(name)
    dy("create", "--name", name, "busybox", "cat", "/hello", check=True)
    (tmp_path / "hello").write_text("from the host\n")
    p = dy("cp", str(tmp_path / "hello"), f"{name}:/hello")
    assert p.returncode == 0, p.stderr
    assert not mounted(name)
    p = dy("start", "-a", name)
    assert (p.returncode, p.stdout) == (0, "from the host\n"), p.stderr


# ---- commit ------------------------------------------------------------------------------


def test_commit_new_layer_config_and_run(container_cleanup):
    name = run(container_cleanup, "sh", "-c", CHANGES + "; echo xyz > /x")
    ref = f"dyfiles-{secrets.token_hex(4)}:v1"
    try:
        p = dy("commit", "-a", "Ann <a@b.c>", "-m", "a message", "-c", 'CMD ["cat","/x"]',
               "-c", "ENV COMMITTED=yes", name, ref)
        assert p.returncode == 0, p.stderr
        image_id = p.stdout.strip()
        assert image_id.startswith("sha256:") and len(image_id) == 71
        img = inspect(ref, "image")
        parent = inspect("busybox", "image")
        assert img["Id"] == image_id and img["Parent"] == parent["Id"]
        assert len(img["RootFS"]["Layers"]) == len(parent["RootFS"]["Layers"]) + 1
        assert img["Config"]["Cmd"] == ["cat", "/x"] and "COMMITTED=yes" in img["Config"]["Env"]
        assert (img["Author"], img["Comment"]) == ("Ann <a@b.c>", "a message")
        # history: Docker's created_by is the container's Cmd joined by spaces
        raw = json.loads(Path(TEST_ROOT, "image/overlay2/imagedb/content/sha256", image_id[7:]).read_bytes())
        assert raw["history"][-1]["created_by"] == "sh -c " + CHANGES + "; echo xyz > /x"
        # the init layer's files are not in the new layer, the container's changes are
        upper = Path(img["GraphDriver"]["Data"]["UpperDir"])
        assert sorted(os.listdir(upper)) == ["a", "bin", "etc", "newf", "x"]
        assert sorted(os.listdir(upper / "etc")) == ["passwd"]
        p = dy("run", "--rm", ref)
        assert (p.returncode, p.stdout) == (0, "xyz\n"), p.stderr
        p = dy("run", "--rm", ref, "sh", "-c", "cat /newf; ls /bin/ls 2>&1; tail -1 /etc/passwd")
        assert p.stdout.splitlines()[0] == "hi" and "No such file" in p.stdout
        # a new container from it gets its own /etc/hostname
        fresh = uniq()
        container_cleanup.append(fresh)
        dy("create", "--name", fresh, ref, check=True)
        tf = tar_of("export", fresh)
        assert read(tf, "etc/hostname") == (inspect(fresh)["Config"]["Hostname"] + "\n").encode()
        assert b"9.9.9.9" not in read(tf, "etc/hosts")
        dy("rm", "-f", fresh)
    finally:
        rmi(ref)


def test_commit_running_container_pauses_and_resumes(container_cleanup):
    name = run(container_cleanup, "sh", "-c", "echo 1 > /n; while true; do sleep 0.1; done", detach=True)
    ids = []
    try:
        for args in ((), ("--pause=false",), ("-p",)):
            p = dy("commit", *args, name)
            assert p.returncode == 0, p.stderr
            ids.append(p.stdout.strip())
            st = inspect(name)["State"]
            assert (st["Running"], st["Paused"], st["Status"]) == (True, False, "running")
        p = dy("run", "--rm", ids[0], "cat", "/n")
        assert p.stdout == "1\n"
        # the container's Cmd stays the image's command
        assert inspect(ids[0], "image")["Config"]["Cmd"][0] == "sh"
        assert dy("images", "-q", "--filter", "dangling=true").returncode == 0
    finally:
        rmi(*ids)


def test_commit_errors(container_cleanup):
    name = run(container_cleanup, "true")
    p = dy("commit", "-c", "RUN echo", name)
    assert (p.returncode, p.stderr) == (1, "Error response from daemon: run is not a valid change command\n")
    p = dy("commit", "no-such-container-y")
    assert p.returncode == 1 and "No such container: no-such-container-y" in p.stderr
    p = dy("commit", "--pause=maybe", name)
    assert p.returncode == 125 and "invalid argument" in p.stderr
