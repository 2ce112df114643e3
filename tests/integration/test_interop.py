"""Interop with real Docker and OCI tools: Dockyard's `save` tar loads into Docker (Debian's
docker.io, a dockerd started here on its own data root and socket) and runs there; an image
saved by that Docker loads into Dockyard and runs; IDs and diffIDs agree; skopeo reads the
tar through docker-archive: and oci-archive:; umoci unpacks its OCI layout.

CI needs: apt-get install -y docker.io skopeo umoci
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Callable, Iterator

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

DOCKERD = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
DOCKER = shutil.which("docker")

Docker = Callable[..., subprocess.CompletedProcess]


def _need(tool: str | None, what: str) -> None:
    if tool is None:
        pytest.skip(f"{what} is not installed (apt-get install -y docker.io skopeo umoci)")


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """A private dockerd; stopped by its PID at the end, its data root removed."""
    _need(DOCKERD, "dockerd")
    _need(DOCKER, "the docker client")
    tag = f"dyit-{os.getpid()}"
    data_root = Path(f"/var/lib/{tag}")
    exec_root = Path(f"/run/{tag}")
    sock = f"/run/{tag}.sock"
    pidfile = f"/run/{tag}.pid"
    log = open(f"/tmp/{tag}-dockerd.log", "wb")
    proc = subprocess.Popen(
        [str(DOCKERD), "--data-root", str(data_root), "--exec-root", str(exec_root), "-H", f"unix://{sock}",
         "--pidfile", pidfile, "--iptables=false", "--ip-masq=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        p = subprocess.run([str(DOCKER), "-H", f"unix://{sock}", *args], capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    try:
        deadline = time.monotonic() + 60
        while run("version", check=False, timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"dockerd did not start:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.3)
        yield run
    finally:
        if proc.poll() is None:
            for c in run("ps", "-aq", check=False).stdout.split():
                run("rm", "-f", c, check=False)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        for f in (sock, pidfile):
            if os.path.exists(f):
                os.unlink(f)


def _dy_inspect(ref: str) -> dict:
    return json.loads(dy("image", "inspect", ref, check=True).stdout)[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dy save busybox` (an imported layer: its bytes come back through tar-split)."""
    out = tmp_path_factory.mktemp("interop") / "busybox.tar"
    dy("save", "-o", str(out), "busybox", check=True)
    return out


def test_dockyard_save_loads_and_runs_in_docker(docker: Docker, saved: Path):
    p = docker("load", "-i", str(saved))
    assert "Loaded image: busybox:latest" in p.stdout
    assert docker("run", "--rm", "--network", "none", "busybox", "echo", "ok").stdout == "ok\n"
    mine = _dy_inspect("busybox")
    theirs = json.loads(docker("image", "inspect", "busybox").stdout)[0]
    assert theirs["Id"] == mine["Id"]
    assert theirs["RootFS"]["Layers"] == mine["RootFS"]["Layers"]


def test_docker_save_loads_and_runs_in_dockyard(docker: Docker, saved: Path, tmp_path: Path):
    docker("load", "-i", str(saved))
    name = f"dyit-c-{os.getpid()}"
    docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
           "echo from-docker > /y; rm /etc/group; mkdir -p /var/spool && rm -rf /var/spool/* && touch /var/spool/n")
    tag = f"dyit/fromdocker:{os.getpid()}"
    docker("commit", name, tag)
    docker("rm", name)
    out = tmp_path / "docker.tar"
    docker("save", "-o", str(out), tag)
    try:
        p = dy("load", "-i", str(out), check=True)
        assert p.stdout == f"Loaded image: {tag}\n"
        r = dy("run", "--rm", tag, "sh", "-c", "cat /y; test -e /etc/group || echo gone", check=True)
        assert r.stdout == "from-docker\ngone\n"
        # (c) the same IDs and diffIDs on both sides, for Docker's own layer too
        mine = _dy_inspect(tag)
        theirs = json.loads(docker("image", "inspect", tag).stdout)[0]
        assert mine["Id"] == theirs["Id"]
        assert mine["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
        # and Dockyard gives Docker's layer back byte for byte: Docker loads the re-save
        again = tmp_path / "again.tar"
        dy("save", "-o", str(again), tag, check=True)
        docker("rmi", tag)
        docker("load", "-i", str(again))
        assert docker("run", "--rm", "--network", "none", tag, "cat", "/y").stdout == "from-docker\n"
    finally:
        dy("rmi", "-f", tag)


def test_committed_layer_ids_agree_with_docker(docker: Docker, tmp_path: Path, container_cleanup: list[str]):
    """A layer made by Dockyard's commit (re-tarred from its tree) has the same diffID in Docker."""
    name = f"dyit-commit-{os.getpid()}"
    container_cleanup.append(name)
    dy("run", "--name", name, "busybox", "sh", "-c", "echo hi > /x; rm /etc/passwd", check=True)
    tag = f"dyit/committed:{os.getpid()}"
    dy("commit", name, tag, check=True)
    try:
        out = tmp_path / "c.tar"
        dy("save", "-o", str(out), tag, check=True)
        docker("load", "-i", str(out))
        mine = _dy_inspect(tag)
        theirs = json.loads(docker("image", "inspect", tag).stdout)[0]
        assert (theirs["Id"], theirs["RootFS"]["Layers"]) == (mine["Id"], mine["RootFS"]["Layers"])
        assert docker("run", "--rm", "--network", "none", tag, "sh", "-c",
                      "cat /x; test -e /etc/passwd || echo gone").stdout == "hi\ngone\n"
    finally:
        dy("rmi", "-f", tag)


def test_skopeo_reads_both_transports_and_copies(saved: Path, tmp_path: Path):
    skopeo = shutil.which("skopeo")
    _need(skopeo, "skopeo")
    mine = _dy_inspect("busybox")
    for transport in ("docker-archive", "oci-archive"):
        p = subprocess.run([str(skopeo), "inspect", f"{transport}:{saved}"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["Layers"] == mine["RootFS"]["Layers"], transport
    p = subprocess.run([str(skopeo), "inspect", "--config", f"oci-archive:{saved}"], capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout)["rootfs"]["diff_ids"] == mine["RootFS"]["Layers"]
    dest = tmp_path / "oci"
    p = subprocess.run([str(skopeo), "--insecure-policy", "copy", f"docker-archive:{saved}", f"oci:{dest}:copied"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"


def test_skopeo_oci_layout_with_gzip_layers_loads_into_dockyard(saved: Path, tmp_path: Path):
    """A pure OCI layout written by another tool (gzip'd layers, converted config) loads and runs."""
    skopeo = shutil.which("skopeo")
    _need(skopeo, "skopeo")
    dest = tmp_path / "ocz"
    p = subprocess.run([str(skopeo), "--insecure-policy", "copy", "--dest-compress", f"docker-archive:{saved}",
                        f"oci:{dest}:copied"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    manifest_digest = json.loads((dest / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((dest / "blobs" / "sha256" / manifest_digest[7:]).read_text())
    assert manifest["layers"][0]["mediaType"].endswith("+gzip")
    layout = tmp_path / "ocz.tar"
    with tarfile.open(layout, "w") as t:
        t.add(dest, arcname=".")
    p = dy("load", "-i", str(layout), check=True)
    assert p.stdout.startswith("Loaded image ID: sha256:")
    image_id = p.stdout.split()[-1]
    try:
        assert image_id == manifest["config"]["digest"]
        assert dy("run", "--rm", image_id, "echo", "ok", check=True).stdout == "ok\n"
        assert _dy_inspect(image_id)["RootFS"]["Layers"] == _dy_inspect("busybox")["RootFS"]["Layers"]
    finally:
        dy("rmi", "-f", image_id)


def test_umoci_unpacks_the_oci_layout(saved: Path, tmp_path: Path):
    umoci = shutil.which("umoci")
    _need(umoci, "umoci")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(saved) as t:
        t.extractall(layout)
    bundle = tmp_path / "bundle"
    p = subprocess.run([str(umoci), "unpack", "--image", f"{layout}:latest", str(bundle)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (bundle / "config.json").is_file()
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    assert (bundle / "rootfs" / "etc" / "passwd").read_text().startswith("root:x:0:0:")
