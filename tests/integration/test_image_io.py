"""history, save, load, image prune and system df against the real store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import BUSYBOX_TAR, dy

pytestmark = pytest.mark.usefixtures("busybox")


@pytest.fixture(scope="module", autouse=True)
def busybox_layer_record(busybox: str) -> None:
    """A test root made before Dockyard kept tar-split records has a busybox layer without
    one, which `save` cannot reproduce: importing the same tar again records it."""
    diff_id = json.loads(dy("image", "inspect", busybox, check=True).stdout)[0]["RootFS"]["Layers"][0]
    record = Path(os.environ["DOCKYARD_ROOT"], "image/overlay2/layerdb/sha256", diff_id[7:], "tar-split.json.gz")
    if not record.exists():
        tag = f"dyit/record:{os.getpid()}"
        dy("import", BUSYBOX_TAR, tag, check=True)
        dy("rmi", tag, check=True)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def inspect(ref: str, env: dict[str, str] | None = None) -> dict:
    return json.loads(dy("image", "inspect", ref, check=True, env=env).stdout)[0]


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.fixture
def committed(container_cleanup: list[str]) -> Iterator[str]:
    """busybox plus one committed layer with a file, a whiteout and an opaque dir."""
    name = f"io-commit-{os.getpid()}"
    container_cleanup.append(name)
    dy("run", "--name", name, "busybox", "sh", "-c",
       "echo hi > /x; rm /etc/group; rm -rf /var/spool; mkdir -p /var/spool/new", check=True)
    tag = f"iotest/committed:{os.getpid()}"
    dy("commit", "-m", "a comment", name, tag, check=True)
    yield tag
    dy("rmi", "-f", tag)


def test_save_writes_docker_and_oci_layouts_whose_blobs_hash_to_their_names(tmp_path: Path, committed: str):
    out = tmp_path / "x.tar"
    dy("save", "-o", str(out), committed, check=True)
    files = members(out)
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1], name
    info = inspect(committed)
    manifest = json.loads(files["manifest.json"])
    assert manifest == [{"Config": "blobs/sha256/" + info["Id"][7:], "RepoTags": [committed],
                         "Layers": ["blobs/sha256/" + d[7:] for d in info["RootFS"]["Layers"]]}]
    assert files["blobs/sha256/" + info["Id"][7:]] == files["blobs/sha256/" + info["Id"][7:]]
    index = json.loads(files["index.json"])
    (desc,) = index["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "docker.io/" + committed,
                                   "org.opencontainers.image.ref.name": committed.rsplit(":", 1)[1]}
    oci = json.loads(files["blobs/sha256/" + desc["digest"][7:]])
    assert oci["config"]["digest"] == info["Id"]
    assert [l["digest"] for l in oci["layers"]] == info["RootFS"]["Layers"]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    repo, tag = committed.rsplit(":", 1)
    assert json.loads(files["repositories"]) == {repo: {tag: info["RootFS"]["Layers"][-1][7:]}}
    # the committed layer's whiteout and opaque dir are written in the OCI form
    with tarfile.open(fileobj=io.BytesIO(files["blobs/sha256/" + info["RootFS"]["Layers"][-1][7:]])) as t:
        names = t.getnames()
    assert "etc/.wh.group" in names and "var/spool/.wh..wh..opq" in names and "x" in names


def test_save_load_round_trip_keeps_id_tags_and_runs(tmp_path: Path, committed: str):
    before = inspect(committed)
    out = tmp_path / "x.tar"
    with open(out, "wb") as f:
        p = subprocess.run([sys.executable, "-m", "dockyard", "save", committed], stdout=f)
    assert p.returncode == 0
    dy("rmi", committed, check=True)
    p = dy("load", "-i", str(out), check=True)
    assert p.stdout == f"Loaded image: {committed}\n"
    after = inspect(committed)
    assert after["Id"] == before["Id"] and after["RootFS"] == before["RootFS"]
    assert dy("run", "--rm", committed, "sh", "-c", "cat /x; ls /etc/group || true", check=True).stdout == "hi\n"
    # the same archive read from stdin, with the image present: nothing changes
    p = dy("load", input=out.read_bytes(), check=True)
    assert p.stdout == f"Loaded image: {committed}\n".encode()


def test_save_refuses_a_terminal_and_unknown_images():
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "dockyard", "save", "busybox"], stdout=slave,
                           stderr=subprocess.PIPE, text=True)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 1
    assert "cowardly refusing to save to a terminal. Use the -o flag or redirect" in p.stderr
    p = dy("save", "-o", "/dev/null", "qa-no-such-image")
    assert p.returncode == 1 and "No such image" in p.stderr


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.uname, ti.gname, ti.mtime = len(data), 0o644, "root", "root", 1600000000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _config(diff_ids: list[str], tag: str) -> bytes:
    base = inspect("busybox")
    return json.dumps({"architecture": base["Architecture"], "os": "linux", "created": "2024-01-01T00:00:00Z",
                       "config": {"Cmd": ["cat", "/hello"], "Labels": {"t": tag}},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids},
                       "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "x"}] * len(diff_ids)}).encode()


def _busybox_layer() -> bytes:
    return Path(BUSYBOX_TAR).read_bytes()


@pytest.mark.parametrize("fmt", ["docker-old", "docker-new", "oci"])
def test_load_reads_three_formats(tmp_path: Path, fmt: str):
    base = _busybox_layer()
    top = _layer({"hello": f"from {fmt}\n".encode()})
    tag = f"iotest/fmt-{fmt}:{os.getpid()}"
    cfg = _config([sha(base), sha(top)], tag)
    entries: dict[str, bytes] = {}
    if fmt == "docker-old":
        entries = {"l1/layer.tar": base, "l2/layer.tar": top, f"{sha(cfg)[7:]}.json": cfg,
                   "manifest.json": json.dumps([{"Config": f"{sha(cfg)[7:]}.json", "RepoTags": [tag],
                                                 "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()}
    elif fmt == "docker-new":
        entries = {f"blobs/sha256/{sha(b)[7:]}": b for b in (base, top, cfg)}
        entries["manifest.json"] = json.dumps([{"Config": f"blobs/sha256/{sha(cfg)[7:]}", "RepoTags": [tag],
                                                "Layers": [f"blobs/sha256/{sha(b)[7:]}" for b in (base, top)]}]).encode()
    else:
        gz = gzip.compress(top)
        man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": sha(cfg), "size": len(cfg)},
                          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                      "digest": sha(base), "size": len(base)},
                                     {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "digest": sha(gz), "size": len(gz)}]}).encode()
        entries = {f"blobs/sha256/{sha(b)[7:]}": b for b in (base, gz, cfg, man)}
        entries["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
        entries["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(man), "size": len(man),
            "annotations": {"io.containerd.image.name": "docker.io/" + tag}}]}).encode()
    path = tmp_path / "in.tar"
    path.write_bytes(_tar(entries))
    try:
        p = dy("load", "-q", "-i", str(path), check=True)
        assert p.stdout == f"Loaded image: {tag}\n"
        info = inspect(tag)
        assert info["Id"] == sha(cfg)
        assert info["RootFS"]["Layers"] == [sha(base), sha(top)]
        assert dy("run", "--rm", tag, check=True).stdout == f"from {fmt}\n"
        # saving it again gives back the very same layer bytes (tar-split), GNU headers and all
        out = tmp_path / "again.tar"
        dy("save", "-o", str(out), tag, check=True)
        files = members(out)
        assert files[f"blobs/sha256/{sha(top)[7:]}"] == top
        assert files[f"blobs/sha256/{sha(cfg)[7:]}"] == cfg
    finally:
        dy("rmi", "-f", tag)


def test_load_with_a_wrong_diff_id_fails_and_leaves_nothing(tmp_path: Path):
    top = _layer({"hello": b"x"})
    bad = "sha256:" + "0" * 64
    cfg = _config([sha(_busybox_layer()), bad], "bad")
    entries = {"l1/layer.tar": _busybox_layer(), "l2/layer.tar": top, "c.json": cfg,
               "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["iotest/bad:1"],
                                             "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()}
    path = tmp_path / "bad.tar"
    path.write_bytes(_tar(entries))
    layers_before = set(os.listdir(os.path.join(os.environ["DOCKYARD_ROOT"], "image/overlay2/layerdb/sha256")))
    p = dy("load", "-i", str(path))
    assert p.returncode == 1
    assert f"invalid diffID for layer 1: expected {bad}, got {sha(top)}" in p.stderr
    assert dy("image", "inspect", "iotest/bad:1").returncode == 1
    assert dy("image", "inspect", sha(cfg)).returncode == 1
    layers_after = set(os.listdir(os.path.join(os.environ["DOCKYARD_ROOT"], "image/overlay2/layerdb/sha256")))
    assert layers_after <= layers_before


def test_history_like_docker(committed: str):
    info = inspect(committed)
    base = inspect("busybox")
    out = dy("history", committed, check=True).stdout.splitlines()
    assert out[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert out[1].startswith(info["Id"][7:19]) and "sh -c echo hi > /x; rm /etc/group; rm -rf /v…" in out[1]
    assert out[1].rstrip().endswith("a comment")
    assert out[2].startswith(base["Id"][7:19]) and "MB" in out[2]
    assert dy("history", "-q", committed, check=True).stdout.split() == [info["Id"][7:19], base["Id"][7:19]]
    raw = dy("history", "--no-trunc", "-H=false", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.CreatedSince}}",
             committed, check=True).stdout.splitlines()
    parts = raw[0].split("|")
    assert parts[0] == info["Id"]
    assert parts[1] == "sh -c echo hi > /x; rm /etc/group; rm -rf /var/spool; mkdir -p /var/spool/new"
    assert parts[2].isdigit() and parts[3].endswith("Z")
    assert raw[1].split("|")[2] == str(base["Size"])
    # -H is a bool flag: bare, it takes no value
    bare = dy("history", "-H", committed, check=True).stdout.splitlines()
    assert len(bare) == 3 and "MB" in bare[2]
    p = dy("history", "-H=maybe", committed)
    assert p.returncode == 125 and 'invalid argument "maybe" for "-H, --human" flag' in p.stderr


def test_history_of_a_loaded_image_without_parents_shows_missing(tmp_path: Path):
    top = _layer({"hello": b"x"})
    tag = f"iotest/hist:{os.getpid()}"
    cfg = json.loads(_config([sha(_busybox_layer()), sha(top)], tag))
    cfg["history"] = [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
                      {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
                       "empty_layer": True},
                      {"created": "2024-01-02T00:00:00Z", "created_by": "/bin/sh -c echo x > /hello"}]
    raw = json.dumps(cfg).encode()
    path = tmp_path / "h.tar"
    path.write_bytes(_tar({"a/layer.tar": _busybox_layer(), "b/layer.tar": top, "c.json": raw,
                           "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": [tag],
                                                         "Layers": ["a/layer.tar", "b/layer.tar"]}]).encode()}))
    dy("load", "-i", str(path), check=True)
    try:
        rows = dy("history", "--format", "{{.ID}}|{{.Size}}|{{.CreatedBy}}", tag, check=True).stdout.splitlines()
        assert rows == [f"{sha(raw)[7:19]}|{len(b'x')}B|/bin/sh -c echo x > /hello",
                        '<missing>|0B|/bin/sh -c #(nop)  CMD ["sh"]',
                        f"<missing>|{rows[2].split('|')[1]}|/bin/sh -c #(nop) ADD file:abc in / "]
    finally:
        dy("rmi", "-f", tag)


# ---- prune and df, in a data root of their own -------------------------------------------


@pytest.fixture
def own_root() -> Iterator[dict[str, str]]:
    root = f"/var/lib/dockyard-iotest-{os.getpid()}"
    env = {"DOCKYARD_ROOT": root, "DOCKYARD_RUNROOT": f"/run/dockyard-iotest-{os.getpid()}"}
    dy("import", BUSYBOX_TAR, "busybox:latest", check=True, env=env)
    yield env
    for c in dy("ps", "-aq", env=env).stdout.split():
        dy("rm", "-f", c, env=env)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(env["DOCKYARD_RUNROOT"], ignore_errors=True)


def test_image_prune_dangling_then_all(own_root: dict[str, str]):
    env = own_root
    name = "pr1"
    dy("run", "--name", name, "busybox", "sh", "-c", "echo 1 > /one", check=True, env=env)
    dangling = dy("commit", name, check=True, env=env).stdout.strip()
    dy("rm", name, check=True, env=env)
    dy("tag", "busybox", "keep:me", check=True, env=env)
    p = dy("image", "prune", "-f", check=True, env=env)
    lines = p.stdout.splitlines()
    assert lines[0] == "Deleted Images:" and f"deleted: {dangling}" in lines
    assert lines[-1].startswith("Total reclaimed space: ") and lines[-1] != "Total reclaimed space: 0B"
    assert dy("image", "inspect", dangling, env=env).returncode == 1
    assert dy("image", "prune", "-f", check=True, env=env).stdout == "Total reclaimed space: 0B\n"
    # -a keeps images that a container uses, removes the others
    dy("create", "--name", "user", "keep:me", "true", check=True, env=env)
    p = dy("image", "prune", "-a", "-f", check=True, env=env)
    assert p.stdout.strip().endswith("Total reclaimed space: 0B")  # keep:me and busybox are one image
    dy("rm", "user", check=True, env=env)
    p = dy("image", "prune", "-a", "-f", "--filter", "until=1h", check=True, env=env)
    assert p.stdout == "Total reclaimed space: 0B\n"  # the image is newer than an hour
    dy("run", "--name", "pr2", "keep:me", "sh", "-c", "echo 2 > /two", check=True, env=env)
    dy("commit", "pr2", "child:1", check=True, env=env)
    dy("rm", "pr2", check=True, env=env)
    p = dy("image", "prune", "-a", "-f", check=True, env=env)  # the child first, then its tagged parent
    assert "untagged: child:1" in p.stdout
    assert "untagged: busybox:latest" in p.stdout and "untagged: keep:me" in p.stdout
    assert "Total reclaimed space: 1.98" in p.stdout
    assert dy("images", "-q", env=env).stdout == ""


def test_system_df_counts_shared_layers_once(own_root: dict[str, str]):
    env = own_root
    dy("run", "--name", "df1", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /five", check=True, env=env)
    dy("commit", "df1", "five:k", check=True, env=env)
    size = inspect("busybox", env)["Size"]
    rows = {l.split()[0]: l.split() for l in dy("system", "df", check=True, env=env).stdout.splitlines()[1:]}
    assert rows["Images"][1:3] == ["2", "1"]
    from dockyard._util import human_size

    assert rows["Images"][3] == human_size(size + 5000)  # busybox's layer once, plus 5000 bytes
    assert rows["Containers"][1:3] == ["1", "0"]
    assert rows["Local"][2:] == ["0", "0", "0B", "0B"] and rows["Build"][2:] == ["0", "0", "0B", "0B"]
    v = dy("system", "df", "-v", check=True, env=env).stdout
    assert "Images space usage:" in v and "Containers space usage:" in v and "Build cache usage: 0B" in v
    five = next(l for l in v.splitlines() if l.startswith("five "))
    assert five.split()[-4:] == [human_size(size + 5000), human_size(size), "5kB", "0"]


def test_save_fails_clearly_when_a_layer_cannot_be_reproduced(own_root: dict[str, str], tmp_path: Path):
    env = own_root
    foreign = tmp_path / "foreign.tar"
    foreign.write_bytes(_layer({"b": b"2", "a": b"1"}))  # GNU headers, owner names, unsorted
    dy("import", str(foreign), "foreign:1", check=True, env=env)
    diff_id = inspect("foreign:1", env)["RootFS"]["Layers"][0]
    assert diff_id == sha(foreign.read_bytes())
    out = tmp_path / "f.tar"
    dy("save", "-o", str(out), "foreign:1", check=True, env=env)
    assert members(out)["blobs/sha256/" + diff_id[7:]] == foreign.read_bytes()
    record = Path(env["DOCKYARD_ROOT"], "image/overlay2/layerdb/sha256", diff_id[7:], "tar-split.json.gz")
    record.unlink()
    p = dy("save", "-o", str(tmp_path / "g.tar"), "foreign:1", env=env)
    assert p.returncode == 1 and f"cannot reproduce layer {diff_id}" in p.stderr
    assert not (tmp_path / "g.tar").exists() and not list(tmp_path.glob(".g.tar*"))
    dy("import", str(foreign), "foreign:2", check=True, env=env)  # the same tar again records it
    dy("save", "-o", str(tmp_path / "g.tar"), "foreign:1", check=True, env=env)


def test_load_and_save_with_platform(tmp_path: Path):
    """An OCI index with an image per platform: load --platform picks one (default: this
    host's); save --platform checks the (single-platform) image it saves."""
    host_arch = inspect("busybox")["Architecture"]
    other = "arm64" if host_arch != "arm64" else "amd64"
    base = _busybox_layer()
    descs, blobs, cfgs = [], {}, {}
    for arch in (host_arch, other):
        tag = f"iotest/plat:{os.getpid()}"
        cfg = json.loads(_config([sha(base)], tag))
        cfg["architecture"] = arch
        raw = json.dumps(cfg).encode()
        man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": sha(raw), "size": len(raw)},
                          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                      "digest": sha(base), "size": len(base)}]}).encode()
        blobs.update({f"blobs/sha256/{sha(b)[7:]}": b for b in (raw, man)})
        descs.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(man),
                      "size": len(man), "platform": {"os": "linux", "architecture": arch}})
        cfgs[arch] = sha(raw)
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": descs}).encode()
    entries = {f"blobs/sha256/{sha(base)[7:]}": base, **blobs, f"blobs/sha256/{sha(index)[7:]}": index,
               "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
               "index.json": json.dumps({"schemaVersion": 2, "manifests": [{
                   "mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(index),
                   "size": len(index), "annotations": {"io.containerd.image.name": "docker.io/" + tag}}]}).encode()}
    path = tmp_path / "multi.tar"
    path.write_bytes(_tar(entries))
    try:
        dy("load", "-q", "-i", str(path), "--platform", f"linux/{other}", check=True)
        assert inspect(tag)["Id"] == cfgs[other] and inspect(tag)["Architecture"] == other
        p = dy("save", "--platform", f"linux/{host_arch}", "-o", str(tmp_path / "x.tar"), tag)
        assert p.returncode == 1 and f"does not match the specified platform (linux/{host_arch})" in p.stderr
        assert "Traceback" not in p.stderr and not (tmp_path / "x.tar").exists()
        dy("save", "--platform", f"linux/{other}", "-o", str(tmp_path / "y.tar"), tag, check=True)
        assert f"blobs/sha256/{cfgs[other][7:]}" in members(tmp_path / "y.tar")
        dy("load", "-q", "-i", str(path), check=True)  # no --platform: this host's
        assert inspect(tag)["Id"] == cfgs[host_arch]
        p = dy("load", "-i", str(path), "--platform", "linux/s390x")
        assert p.returncode == 1 and "no image for the specified platform (linux/s390x)" in p.stderr
        p = dy("load", "-i", str(path), "--platform", "nonsense")
        assert p.returncode == 1 and "unknown operating system or architecture" in p.stderr
    finally:
        dy("rmi", "-f", tag, cfgs[other], cfgs[host_arch])
