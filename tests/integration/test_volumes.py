"""Volumes and mounts through the CLI, checked against Docker's behaviour: named and
anonymous volumes, copy-up, binds, tmpfs, --volumes-from, rm -v, volume rm/prune/inspect,
commit/export exclusion, bind propagation and tmpfs-type local volumes."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import tarfile

import pytest

from conftest import TEST_ROOT, TEST_RUNROOT, dy

pytestmark = pytest.mark.usefixtures("busybox")


def uniq(prefix: str = "vol") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def made():
    """(containers, volumes) a test makes, removed after it even when it fails: the
    containers first, so that their volumes are no longer in use."""
    containers: list[str] = []
    vols: list[str] = []
    yield containers, vols
    if containers:
        dy("rm", "-f", *containers)
    if vols:
        p = dy("volume", "rm", "-f", *vols)
        assert p.returncode == 0, p.stderr


def volumes() -> set[str]:
    return set(dy("volume", "ls", "-q", check=True).stdout.split())


def inspect(ref: str) -> dict:
    return json.loads(dy("inspect", ref, check=True).stdout)[0]


def run(cs: list[str], *args: str, name: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    name = name or uniq("c")
    cs.append(name)
    return dy("run", "--name", name, *args, check=check)


def mounted(path_part: str) -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if path_part in line.split()[1]]


def test_named_volume_keeps_data_across_containers_and_rm(made):
    cs, vs = made
    v = uniq()
    vs.append(v)
    run(cs, "-v", f"{v}:/data", "busybox", "sh", "-c", "echo persisted > /data/f")
    dy("rm", "-v", cs[-1], check=True)  # -v never removes a named volume
    assert v in volumes()
    p = run(cs, "--rm", "-v", f"{v}:/data", "busybox", "cat", "/data/f")
    assert p.stdout == "persisted\n"
    assert v in volumes()


def test_anonymous_volume_from_v_path_and_rm_v_removes_only_anonymous(made):
    cs, vs = made
    named = uniq()
    vs.append(named)
    name = uniq("c")
    run(cs, "-v", "/anon", "-v", f"{named}:/named", "busybox", "sh", "-c", "echo a > /anon/f", name=name)
    c = inspect(name)
    assert c["Config"]["Volumes"] == {"/anon": {}}
    assert c["HostConfig"]["Binds"] == [f"{named}:/named"]
    anon = next(m for m in c["Mounts"] if m["Destination"] == "/anon")
    vs.append(anon["Name"])
    assert len(anon["Name"]) == 64 and anon["Type"] == "volume" and anon["Mode"] == ""
    labels = json.loads(dy("volume", "inspect", anon["Name"], check=True).stdout)[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    # restart reuses the same anonymous volume
    assert dy("start", "-a", name, check=True).returncode == 0
    assert inspect(name)["Mounts"] == c["Mounts"]
    dy("rm", "-v", name, check=True)
    assert anon["Name"] not in volumes()
    assert named in volumes()


def test_run_rm_removes_anonymous_volumes_but_rm_without_v_keeps_them(made):
    cs, vs = made
    before = volumes()
    run(cs, "--rm", "-v", "/scratch", "busybox", "true")
    assert volumes() == before
    name = uniq("c")
    run(cs, "-v", "/keep", "busybox", "true", name=name)
    anon = inspect(name)["Mounts"][0]["Name"]
    vs.append(anon)
    dy("rm", name, check=True)
    assert anon in volumes()  # dangling now
    assert anon in dy("volume", "ls", "-q", "-f", "dangling=true", check=True).stdout.split()


@pytest.fixture
def volume_image(busybox):
    """An image with VOLUME /data whose /data holds files with owners, modes and an xattr."""
    ref = f"volimg-{secrets.token_hex(3)}:latest"
    base = uniq("base")
    dy("run", "--name", base, "busybox", "sh", "-c",
       "mkdir -p /data/sub && echo img > /data/sub/f && ln /data/sub/f /data/hard && ln -s sub/f /data/link"
       " && chown -R 1000:2000 /data && chmod 750 /data && chmod 640 /data/sub/f", check=True)
    try:
        base_dir = json.loads(dy("inspect", base, check=True).stdout)[0]["GraphDriver"]["Data"]["UpperDir"]
        os.setxattr(os.path.join(base_dir, "data/sub/f"), "user.dockyard", b"kept")
        dy("commit", "-c", "VOLUME /data", base, ref, check=True)
    finally:
        dy("rm", "-f", base)
    yield ref
    dy("rmi", "-f", ref)


def test_image_volume_is_created_and_filled_by_copy_up(made, volume_image):
    cs, vs = made
    name = uniq("c")
    p = run(cs, volume_image, "sh", "-c", "stat -c '%u:%g %a %n' /data /data/sub/f; cat /data/link; echo new > /data/n",
            name=name)
    assert p.stdout.splitlines() == ["1000:2000 750 /data", "1000:2000 640 /data/sub/f", "img"]
    m = inspect(name)["Mounts"]
    assert len(m) == 1 and m[0]["Destination"] == "/data" and m[0]["Type"] == "volume"
    vs.append(m[0]["Name"])
    data = m[0]["Source"]
    assert data == f"{TEST_ROOT}/volumes/{m[0]['Name']}/_data"
    st = os.stat(data)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 2000, 0o750)
    assert os.getxattr(f"{data}/sub/f", "user.dockyard") == b"kept"
    assert os.stat(f"{data}/hard").st_ino == os.stat(f"{data}/sub/f").st_ino
    assert os.readlink(f"{data}/link") == "sub/f"
    # the volume is not filled again: a later start sees the container's own data
    assert "n" in dy("start", "-a", name, check=True).stdout or os.path.exists(f"{data}/n")
    assert open(f"{data}/n").read() == "new\n"


def test_user_mount_covers_image_volume_and_nocopy_skips_copy_up(made, volume_image):
    cs, vs = made
    before = volumes()
    a, b = uniq(), uniq()
    vs += [a, b]
    p = run(cs, "--rm", "-v", f"{a}:/data:nocopy", volume_image, "ls", "-A", "/data")
    assert p.stdout == ""
    p = run(cs, "--rm", "--mount", f"type=volume,src={b},dst=/data,volume-nocopy", volume_image, "ls", "-A", "/data")
    assert p.stdout == ""
    p = run(cs, "--rm", "--tmpfs", "/data", volume_image, "ls", "-A", "/data")
    assert p.stdout == ""
    assert volumes() - before == {a, b}  # no anonymous volume for the covered VOLUME /data
    # a named volume with content is never overwritten by copy-up
    dy("run", "--rm", "-v", f"{a}:/x", "busybox", "sh", "-c", "echo mine > /x/own", check=True)
    p = run(cs, "--rm", "-v", f"{a}:/data", volume_image, "ls", "-A", "/data")
    assert p.stdout == "own\n"


def test_bind_mounts_file_and_dir_ro_enforced(made, tmp_path):
    cs, _ = made
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in").write_text("dir\n")
    (tmp_path / "file").write_text("file\n")
    missing = tmp_path / "created" / "by-v"
    p = run(cs, "--rm", "-v", f"{tmp_path}/d:/d", "-v", f"{tmp_path}/file:/etc/file.txt:ro",
            "-v", f"{missing}:/m", "busybox", "sh", "-c",
            "cat /d/in /etc/file.txt; echo w > /d/out; echo x > /etc/file.txt || echo RO; touch /m/ok", check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["dir", "file", "RO"]
    assert (tmp_path / "d" / "out").read_text() == "w\n"
    assert (tmp_path / "file").read_text() == "file\n"
    assert (missing / "ok").exists()  # -v made the missing host directory
    p = run(cs, "--rm", "--mount", f"type=bind,src={tmp_path}/d,dst=/d,readonly", "busybox",
            "sh", "-c", "touch /d/x", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr


def test_mount_bind_missing_source_is_an_error_and_creates_nothing(made, tmp_path):
    cs, _ = made
    before = dy("ps", "-aq", check=True).stdout
    name = uniq("c")
    cs.append(name)
    p = dy("run", "--name", name, "--mount", f"type=bind,src={tmp_path}/nope,dst=/x", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == (f'Error: invalid mount config for type "bind": bind source path does not exist: '
                                f"{tmp_path}/nope")
    assert not (tmp_path / "nope").exists()
    assert dy("ps", "-aq", check=True).stdout == before


def test_failed_create_releases_the_volumes_it_made(made):
    cs, vs = made
    before = volumes()
    v = uniq()
    vs.append(v)
    name = uniq("c")
    cs.append(name)
    p = dy("create", "--name", name, "-v", f"{v}:/d", "--mount", "type=volume,dst=/d", "busybox", "true")
    assert p.returncode == 125 and "Duplicate mount point: /d" in p.stderr
    assert volumes() == before
    assert dy("inspect", name).returncode != 0


def test_tmpfs_flags_with_size_and_options(made):
    cs, _ = made
    p = run(cs, "--rm", "--tmpfs", "/run/t:size=1m,mode=1777", "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m",
            "busybox", "sh", "-c", "grep -E ' /(run/t|t2) ' /proc/mounts; stat -c %a /run/t")
    lines = p.stdout.splitlines()
    t1 = next(line for line in lines if " /run/t " in line)
    t2 = next(line for line in lines if " /t2 " in line)
    assert "size=1024k" in t1 and "noexec" in t1 and "nosuid" in t1
    assert "size=2048k" in t2
    assert lines[-1] == "1777"


def test_volumes_from_shares_mounts_and_ro_mode(made):
    cs, vs = made
    v = uniq()
    vs.append(v)
    src = uniq("c")
    run(cs, "-v", f"{v}:/shared", "-v", "/anon", "busybox", "sh", "-c", "echo s > /shared/f; echo a > /anon/f",
        name=src)
    vs.append(next(m["Name"] for m in inspect(src)["Mounts"] if m["Destination"] == "/anon"))
    p = run(cs, "--rm", "--volumes-from", src, "busybox", "sh", "-c", "cat /shared/f /anon/f; echo more > /shared/g")
    assert p.stdout == "s\na\n"
    p = run(cs, "--rm", "--volumes-from", f"{src}:ro", "busybox", "sh", "-c", "touch /shared/h", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    p = dy("run", "--rm", "--volumes-from", "no-such-container-dy", "busybox", "true")
    assert p.returncode == 125 and "No such container: no-such-container-dy" in p.stderr


def test_volume_rm_is_refused_while_any_container_uses_it(made):
    cs, vs = made
    v = uniq()
    vs.append(v)
    name = uniq("c")
    cs.append(name)
    dy("create", "--name", name, "-v", f"{v}:/d", "busybox", "true", check=True)  # never started
    cid = inspect(name)["Id"]
    p = dy("volume", "rm", v)
    assert p.returncode == 1
    assert p.stderr.strip() == f"Error response from daemon: remove {v}: volume is in use - [{cid}]"
    assert v in volumes()
    dy("rm", name, check=True)
    assert dy("volume", "rm", v, check=True).stdout == f"{v}\n"
    p = dy("volume", "rm", v)
    assert p.returncode == 1 and f"get {v}: no such volume" in p.stderr
    assert dy("volume", "rm", "-f", v).returncode == 0


def test_prune_removes_unused_anonymous_volumes_and_all_with_a(made):
    cs, vs = made
    named, used = uniq(), uniq()
    vs += [named, used]
    dy("volume", "create", named, check=True)
    name = uniq("c")
    run(cs, "-v", "/gone", "busybox", "true", name=name)
    anon = inspect(name)["Mounts"][0]["Name"]
    vs.append(anon)
    dy("rm", name, check=True)
    keeper = uniq("c")
    run(cs, "-v", f"{used}:/u", "busybox", "true", name=keeper)
    out = dy("volume", "prune", "-f", check=True).stdout
    assert anon in out and named not in out
    assert anon not in volumes() and named in volumes()
    out = dy("volume", "prune", "-f", "-a", "--filter", f"label!=keep", check=True).stdout
    assert named in out and used not in out  # `used` belongs to a stopped container
    assert used in volumes() and named not in volumes()


def test_volume_create_inspect_ls_shapes(made):
    _, vs = made
    v = uniq()
    vs.append(v)
    assert dy("volume", "create", "--label", "team=a", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
              v, check=True).stdout == f"{v}\n"
    doc = json.loads(dy("volume", "inspect", v, check=True).stdout)
    assert len(doc) == 1
    d = doc[0]
    assert set(d) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert d["Driver"] == "local" and d["Scope"] == "local" and d["Name"] == v
    assert d["Labels"] == {"team": "a"}
    assert d["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert d["Mountpoint"] == f"{TEST_ROOT}/volumes/{v}/_data"
    assert d["CreatedAt"].endswith("Z") and "T" in d["CreatedAt"]
    assert dy("volume", "ls", "-q", "-f", f"name={v}", check=True).stdout == f"{v}\n"
    assert dy("volume", "ls", "-q", "-f", "label=team=a", "-f", f"name={v}", check=True).stdout == f"{v}\n"
    assert dy("volume", "ls", "-q", "-f", "label=team=b", "-f", f"name={v}", check=True).stdout == ""
    assert v in dy("volume", "ls", "-q", "-f", "dangling=true", check=True).stdout.split()
    assert v not in dy("volume", "ls", "-q", "-f", "dangling=false", check=True).stdout.split()
    assert dy("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Label \"team\"}}", "-f", f"name={v}",
              check=True).stdout == f"{v} local a\n"
    table = dy("volume", "ls", "-f", f"name={v}", check=True).stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"] and table[1].split() == ["local", v]
    assert dy("volume", "inspect", "-f", "{{.Mountpoint}}", v, check=True).stdout.strip() == d["Mountpoint"]
    p = dy("volume", "create", "bad/name")
    assert p.returncode == 1 and "includes invalid characters for a local volume name" in p.stderr
    p = dy("volume", "create", "-o", "bogus=1", uniq())
    assert p.returncode == 1 and "invalid option key: 'bogus'" in p.stderr
    p = dy("volume", "inspect", "no-such-volume-dy")
    assert p.returncode == 1 and "get no-such-volume-dy: no such volume" in p.stderr


def test_inspect_mounts_and_stored_shapes(made, tmp_path):
    cs, vs = made
    v = uniq()
    vs.append(v)
    name = uniq("c")
    cs.append(name)
    dy("create", "--name", name, "-v", f"{v}:/vol", "-v", f"{tmp_path}:/bind:ro", "--mount", "type=tmpfs,dst=/tmp2",
       "--tmpfs", "/tmp1:size=1m", "busybox", "true", check=True)
    c = inspect(name)
    assert c["Mounts"] == [
        {"Type": "bind", "Source": str(tmp_path), "Destination": "/bind", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/tmp2", "Mode": "", "RW": True, "Propagation": ""},
        {"Type": "volume", "Name": v, "Source": f"{TEST_ROOT}/volumes/{v}/_data", "Destination": "/vol",
         "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
    ]
    hc = c["HostConfig"]
    assert hc["Binds"] == [f"{v}:/vol", f"{tmp_path}:/bind:ro"]
    assert hc["Mounts"] == [{"Type": "tmpfs", "Target": "/tmp2"}]
    assert hc["Tmpfs"] == {"/tmp1": "size=1m"}
    with open(f"{TEST_ROOT}/containers/{c['Id']}/config.v2.json") as f:
        mps = json.load(f)["MountPoints"]
    assert set(mps) == {"/vol", "/bind", "/tmp2"}
    mp = mps["/vol"]
    for key in ("Source", "Destination", "RW", "Name", "Driver", "Type", "Relabel", "Propagation", "ID", "Spec",
                "SkipMountpointCreation"):
        assert key in mp
    assert mp["Spec"] == {"Type": "volume", "Source": v, "Target": "/vol"}
    assert mps["/bind"]["Spec"] == {"Type": "bind", "Source": str(tmp_path), "Target": "/bind", "ReadOnly": True}
    ps = dy("ps", "-a", "--filter", f"name={name}", "--format", "{{.Mounts}} {{.LocalVolumes}}", check=True)
    assert ps.stdout == f"{tmp_path},{v} 1\n"


def test_commit_and_export_leave_mount_contents_out(made, tmp_path):
    cs, vs = made
    v = uniq()
    vs.append(v)
    name = uniq("c")
    (tmp_path / "hostfile").write_text("host\n")
    run(cs, "-v", f"{v}:/vol", "-v", f"{tmp_path}:/bnd", "--tmpfs", "/tm", "busybox", "sh", "-c",
        "echo v > /vol/f; echo t > /tm/f; echo kept > /kept.txt", name=name)
    dy("cp", str(tmp_path / "hostfile"), f"{name}:/vol/copied", check=True)  # lands in the upper dir
    p = dy("export", name, input=b"")
    names = set(tarfile.open(fileobj=io.BytesIO(p.stdout)).getnames())
    assert {"vol", "bnd", "tm", "kept.txt"} <= {n.rstrip("/") for n in names}
    assert not {n for n in names if n.startswith(("vol/", "bnd/", "tm/"))}
    ref = f"volcommit-{secrets.token_hex(3)}"
    dy("commit", name, ref, check=True)
    try:
        out = dy("run", "--rm", ref, "sh", "-c", "ls -A /vol /bnd /tm; cat /kept.txt", check=True).stdout
        assert out.split() == ["/bnd:", "/tm:", "/vol:", "kept"]
    finally:
        dy("rmi", ref)


@pytest.fixture
def shared_dir(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-R", str(d)], check=False)


def test_bind_propagation_rshared_sees_host_mounts(made, shared_dir):
    cs, _ = made
    name = uniq("c")
    run(cs, "-d", "--mount", f"type=bind,src={shared_dir},dst=/s,bind-propagation=rshared", "busybox",
        "sleep", "60", name=name)
    assert inspect(name)["Mounts"][0]["Propagation"] == "rshared"
    sub = shared_dir / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
    try:
        (sub / "f").write_text("from host\n")
        assert dy("exec", name, "cat", "/s/sub/f", check=True).stdout == "from host\n"
    finally:
        dy("rm", "-f", name, check=True)
        subprocess.run(["umount", str(sub)], check=True)
    # a private (default) bind does not see later host mounts
    name2 = uniq("c")
    run(cs, "-d", "-v", f"{shared_dir}:/s", "busybox", "sleep", "60", name=name2)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
    try:
        (sub / "g").write_text("x")
        assert dy("exec", name2, "ls", "/s/sub").stdout == ""
    finally:
        dy("rm", "-f", name2, check=True)
        subprocess.run(["umount", str(sub)], check=True)


def test_tmpfs_type_volume_is_mounted_while_used(made):
    cs, vs = made
    v = uniq()
    vs.append(v)
    dy("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m,mode=0777", v, check=True)
    data = f"{TEST_ROOT}/volumes/{v}/_data"
    a, b = uniq("c"), uniq("c")
    run(cs, "-d", "-v", f"{v}:/x", "busybox", "sh", "-c", "echo a > /x/a; sleep 60", name=a)
    run(cs, "-d", "-v", f"{v}:/x", "busybox", "sleep", "60", name=b)
    assert mounted(data) == [data]
    out = dy("exec", b, "sh", "-c", "cat /x/a; df /x | tail -1", check=True).stdout
    assert out.startswith("a\n") and "1024" in out
    dy("rm", "-f", a, check=True)
    assert mounted(data) == [data]  # b still uses it
    assert dy("volume", "rm", v).returncode == 1
    dy("rm", "-f", b, check=True)
    assert mounted(data) == []
    assert not os.path.exists(f"{TEST_RUNROOT}/volumes/{v}.users")
    p = run(cs, "--rm", "-v", f"{v}:/x", "busybox", "ls", "-A", "/x")
    assert p.stdout == ""  # a tmpfs: its contents went with the last user
    assert mounted(data) == []


def test_bind_type_local_volume(made, tmp_path):
    cs, vs = made
    v = uniq()
    vs.append(v)
    (tmp_path / "seed").write_text("seed\n")
    dy("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}", v, check=True)
    p = run(cs, "--rm", "-v", f"{v}:/x", "busybox", "sh", "-c", "cat /x/seed; echo out > /x/out")
    assert p.stdout == "seed\n"
    assert (tmp_path / "out").read_text() == "out\n"
    assert mounted(f"{TEST_ROOT}/volumes/{v}/_data") == []


@pytest.fixture
def loop_ext4(tmp_path):
    """A loop device holding a fresh ext4 file system."""
    import shutil

    if not (shutil.which("losetup") and shutil.which("mkfs.ext4")):
        pytest.skip("needs losetup and mkfs.ext4 (util-linux, e2fsprogs)")
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", str(img)], check=True)
    dev = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
    yield dev
    subprocess.run(["losetup", "-d", dev], check=False)


def test_device_volume_is_mounted_with_its_type_and_options(made, loop_ext4, tmp_path):
    cs, vs = made
    v = uniq()
    vs.append(v)
    dy("volume", "create", "-o", "type=ext4", "-o", f"device={loop_ext4}", "-o", "o=noatime", v, check=True)
    p = run(cs, "--rm", "-v", f"{v}:/e", "busybox", "sh", "-c", "grep ' /e ' /proc/mounts; echo on-disk > /e/f")
    assert p.stdout.split()[:3] == [loop_ext4, "/e", "ext4"] and "noatime" in p.stdout
    assert mounted(f"{TEST_ROOT}/volumes/{v}/_data") == []
    check = tmp_path / "check"
    check.mkdir()
    subprocess.run(["mount", loop_ext4, str(check)], check=True)
    try:
        assert (check / "f").read_text() == "on-disk\n"
    finally:
        subprocess.run(["umount", str(check)], check=True)


def test_volume_create_without_a_name_is_named_but_not_anonymous(made):
    _, vs = made
    name = dy("volume", "create", check=True).stdout.strip()
    vs.append(name)
    assert len(name) == 64
    d = json.loads(dy("volume", "inspect", name, check=True).stdout)[0]
    assert d["Labels"] == {} and d["Options"] == {}
    assert name not in dy("volume", "prune", "-f", check=True).stdout
    assert name in volumes()


def test_v_host_directory_is_made_at_start_not_at_create(made, tmp_path):
    cs, _ = made
    missing = tmp_path / "later"
    name = uniq("c")
    cs.append(name)
    dy("create", "--name", name, "-v", f"{missing}:/m", "busybox", "touch", "/m/x", check=True)
    assert not missing.exists()
    dy("start", "-a", name, check=True)
    assert (missing / "x").exists()
