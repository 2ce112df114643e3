"""pull and push against Debian's real `docker-registry` on 127.0.0.1 (issue 5).

Push busybox, pull it back into a clean second data root and run it; pull by digest;
RepoDigests; `Already exists`; run --pull; resume after kill -9; a corrupted blob; cross-repo
mount; a second registry without recompression; skopeo interop; login/logout; errors.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import dy
from registry_server import REGISTRY_BIN, Registry, TokenServer, make_htpasswd

# no test here (or in the session) may reach a registry off this host
os.environ.setdefault("DOCKYARD_REGISTRY_LOOPBACK_ONLY", "1")

pytestmark = pytest.mark.usefixtures("busybox")


def _start(base: Path, **kw) -> Registry:
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry (Debian package) is not installed")
    return Registry.start(base, **kw)


def _access_log(reg: Registry) -> str:
    return reg.access_log.read_text(errors="replace")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = _start(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def registry2(tmp_path_factory):
    r = _start(tmp_path_factory.mktemp("registry2"))
    yield r
    r.stop()


class Root:
    """A second, empty data root (its own run root) for pulls."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.runroot = Path(f"/run/dockyard-pulltest-{os.getpid()}-{os.urandom(3).hex()}")
        self.env = {"DOCKYARD_ROOT": str(self.root), "DOCKYARD_RUNROOT": str(self.runroot)}

    def dy(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return dy(*args, env={**self.env, **kw.pop("env", {})}, **kw)

    def popen(self, *args: str) -> subprocess.Popen:
        import sys

        return subprocess.Popen([sys.executable, "-m", "dockyard", *args], env={**os.environ, **self.env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def cleanup(self) -> None:
        left = self.dy("ps", "-aq").stdout.split()
        if left:
            self.dy("rm", "-f", *left)
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if str(self.root) in line or str(self.runroot) in line]
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        # the root's own default bridge and packet-filter table (made at its first container)
        from dockyard.engine import networks
        from dockyard.paths import Paths

        paths = Paths(self.root, self.runroot)
        subprocess.run(["nft", "delete", "table", "ip", networks.nft_table(paths)], capture_output=True)
        bridge = networks.settings(paths).default_bridge
        if os.path.exists(f"/sys/class/net/{bridge}"):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


@pytest.fixture
def clean_root(tmp_path):
    r = Root(tmp_path)
    yield r
    r.cleanup()


@pytest.fixture(scope="module")
def pushed(registry):
    """busybox pushed to <registry>/qa/bb:v1; yields (reference, manifest digest, push output)."""
    ref = f"{registry.host}/qa/bb:v1"
    dy("tag", "busybox", ref, check=True)
    p = dy("push", ref, check=True)
    m = re.search(r"v1: digest: (sha256:[0-9a-f]{64}) size: (\d+)", p.stdout)
    assert m, p.stdout
    yield ref, m.group(1), p.stdout
    dy("rmi", ref)


def test_push_output_and_repo_digests(registry, pushed):
    ref, digest, out = pushed
    assert f"The push refers to repository [{registry.host}/qa/bb]" in out
    assert re.search(r"^[0-9a-f]{12}: Pushed$", out, re.M), out
    info = json.loads(dy("image", "inspect", ref, check=True).stdout)[0]
    assert f"{registry.host}/qa/bb@{digest}" in info["RepoDigests"]
    # the registry holds a Docker schema 2 manifest whose layers hash to the diffIDs
    with urllib.request.urlopen(urllib.request.Request(
            f"http://{registry.host}/v2/qa/bb/manifests/v1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})) as r:
        doc = json.loads(r.read())
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["config"]["digest"] == info["Id"]
    # pushing again: every layer is already there
    again = dy("push", ref, check=True).stdout
    assert "Layer already exists" in again and "Pushed" not in again


def test_pull_into_clean_root_and_run(registry, pushed, clean_root):
    ref, digest, _ = pushed
    p = clean_root.dy("pull", ref)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "v1: Pulling from qa/bb"
    assert re.search(r"^[0-9a-f]{12}: Pull complete$", p.stdout, re.M), p.stdout
    assert f"Digest: {digest}" in lines
    assert f"Status: Downloaded newer image for {ref}" in lines
    assert lines[-1] == ref
    info = json.loads(clean_root.dy("image", "inspect", ref, check=True).stdout)[0]
    assert info["RepoDigests"] == [f"{registry.host}/qa/bb@{digest}"]
    assert info["Id"] == json.loads(dy("image", "inspect", "busybox", check=True).stdout)[0]["Id"]
    run = clean_root.dy("run", "--rm", "--network", "none", ref, "echo", "pulled-and-ran")
    assert run.returncode == 0 and run.stdout.strip() == "pulled-and-ran", run.stderr
    # nothing left in the download area
    assert not glob.glob(str(clean_root.root / "tmp/blobs/*.partial"))
    assert not glob.glob(str(clean_root.root / "tmp/blobs/*.blob"))
    # second pull: up to date, layers not fetched again
    again = clean_root.dy("pull", ref, check=True).stdout
    assert f"Status: Image is up to date for {ref}" in again
    assert "Pull complete" not in again
    # the same image under another tag: "Already exists" for its layers
    dy("tag", "busybox", f"{registry.host}/qa/bb:v2", check=True)
    dy("push", f"{registry.host}/qa/bb:v2", check=True)
    other = clean_root.dy("pull", f"{registry.host}/qa/bb:v2", check=True).stdout
    assert re.search(r"^[0-9a-f]{12}: Already exists$", other, re.M), other
    assert f"Status: Downloaded newer image for {registry.host}/qa/bb:v2" in other
    dy("rmi", f"{registry.host}/qa/bb:v2")


def test_pull_by_digest_and_quiet(registry, pushed, clean_root):
    ref, digest, _ = pushed
    name = ref.rsplit(":", 1)[0]
    p = clean_root.dy("pull", "-q", f"{name}@{digest}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"{name}@{digest}"]
    info = json.loads(clean_root.dy("image", "inspect", f"{name}@{digest}", check=True).stdout)[0]
    assert f"{name}@{digest}" in info["RepoDigests"]
    assert info["RepoTags"] == []


def test_run_pull_policies(registry, pushed, clean_root):
    ref, _, _ = pushed
    never = clean_root.dy("run", "--rm", "--pull", "never", "--network", "none", ref, "true")
    assert never.returncode == 125 and "No such image" in never.stderr
    missing = clean_root.dy("run", "--rm", "--network", "none", ref, "echo", "ok")
    assert missing.returncode == 0, missing.stderr
    assert f"Unable to find image '{ref}' locally" in missing.stderr
    assert "Pull complete" in missing.stderr and missing.stdout.strip() == "ok"
    always = clean_root.dy("run", "--rm", "--pull", "always", "--network", "none", ref, "echo", "ok")
    assert always.returncode == 0 and "Image is up to date" in always.stderr, always.stderr
    created = clean_root.dy("create", "--pull", "always", "-q", "--network", "none", ref, "true")
    assert created.returncode == 0 and "Pulling" not in created.stderr, created.stderr
    clean_root.dy("rm", created.stdout.strip())


def test_missing_repository_and_bad_reference(registry, clean_root):
    p = clean_root.dy("pull", f"{registry.host}/qa/nothing-here:v1")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"Error: manifest for {registry.host}/qa/nothing-here:v1 not found: manifest unknown: manifest unknown"]
    assert p.stdout == ""
    p = dy("push", f"{registry.host}/qa/not-tagged-here")
    assert p.returncode == 1 and p.stderr.strip() == (
        f"Error: An image does not exist locally with the tag: {registry.host}/qa/not-tagged-here")
    p = clean_root.dy("pull", "UPPER/Case")
    assert p.returncode == 1 and "invalid reference format" in p.stderr


def test_docker_hub_is_never_contacted_in_tests(clean_root):
    p = clean_root.dy("pull", "busybox")
    assert p.returncode == 1 and "is not on this host" in p.stderr and "Traceback" not in p.stderr


def test_cross_repository_mount(registry, pushed):
    target = f"{registry.host}/qa/other:m1"
    dy("tag", "busybox", target, check=True)
    try:
        out = dy("push", target, check=True).stdout
        assert "Mounted from qa/bb" in out, out
    finally:
        dy("rmi", target)


def test_second_registry_reuses_the_compressed_blob(registry, registry2, pushed):
    root = Path(os.environ["DOCKYARD_ROOT"])
    blobs = sorted((root / "image/overlay2/distribution/blobs/sha256").iterdir())
    assert blobs
    before = {b: b.stat().st_mtime_ns for b in blobs}
    target = f"{registry2.host}/qa/bb:v1"
    dy("tag", "busybox", target, check=True)
    try:
        out = dy("push", target, check=True).stdout
        assert "Pushed" in out
        assert {b: b.stat().st_mtime_ns for b in blobs} == before
        assert sorted((root / "image/overlay2/distribution/blobs/sha256").iterdir()) == blobs
    finally:
        dy("rmi", target)


def _random_tar(path: Path, size: int) -> None:
    with tarfile.open(path, "w") as tf:
        data = os.urandom(size)
        ti = tarfile.TarInfo("big.bin")
        ti.size = size
        import io

        tf.addfile(ti, io.BytesIO(data))


def test_resume_after_kill(registry, clean_root, tmp_path):
    ref = f"{registry.host}/qa/big:v1"
    _random_tar(tmp_path / "big.tar", 30 << 20)
    dy("import", str(tmp_path / "big.tar"), ref, check=True)
    try:
        dy("push", ref, check=True)
        blobs = clean_root.root / "tmp" / "blobs"
        proc = clean_root.popen("pull", ref)
        deadline = time.time() + 60
        partial = []
        while time.time() < deadline and proc.poll() is None:
            partial = [p for p in glob.glob(str(blobs / "*.partial")) if os.path.getsize(p) > 0]
            if partial:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait()
        assert partial, "the pull finished before it could be killed"
        size = os.path.getsize(partial[0])
        assert 0 < size < (30 << 20) + 1024 * 64
        p = clean_root.dy("pull", ref)
        assert p.returncode == 0, p.stderr
        digest = "sha256:" + Path(partial[0]).name.split(".")[0]
        log = _access_log(registry)
        assert re.search(rf'"GET /v2/qa/big/blobs/{digest} HTTP/1.1" 206 ', log), log[-3000:]
        ids = [json.loads(d(*("image", "inspect", ref), check=True).stdout)[0]["Id"] for d in (dy, clean_root.dy)]
        assert ids[0] == ids[1]
        files = glob.glob(str(clean_root.root / "overlay2/*/diff/big.bin"))
        assert len(files) == 1 and os.path.getsize(files[0]) == 30 << 20
    finally:
        dy("rmi", ref)


def test_corrupted_blob_fails_cleanly(registry, clean_root, tmp_path):
    ref = f"{registry.host}/qa/corrupt:v1"
    _random_tar(tmp_path / "c.tar", 1 << 20)
    dy("import", str(tmp_path / "c.tar"), ref, check=True)
    try:
        dy("push", ref, check=True)
        with urllib.request.urlopen(urllib.request.Request(
                f"http://{registry.host}/v2/qa/corrupt/manifests/v1",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})) as r:
            layer = json.loads(r.read())["layers"][0]["digest"]
        data = registry.blob_data_path("qa/corrupt", layer)
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
        p = clean_root.dy("pull", ref)
        assert p.returncode == 1 and "Traceback" not in p.stderr, (p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and layer in p.stderr, p.stderr
        assert clean_root.dy("image", "inspect", ref).returncode != 0
        assert clean_root.dy("images", "-q").stdout.strip() == ""
        overlay = clean_root.root / "overlay2"
        assert not [d for d in (overlay.iterdir() if overlay.is_dir() else []) if d.name.startswith(".tmp-")]
        assert not glob.glob(str(clean_root.root / "tmp/blobs/*.blob"))
    finally:
        dy("rmi", ref)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_interop(registry, pushed, clean_root, tmp_path):
    ref, _, _ = pushed
    oci = tmp_path / "oci"
    p = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:v1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    target = f"{registry.host}/qa/from-skopeo:s1"
    p = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{oci}:v1", f"docker://{target}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    pulled = clean_root.dy("pull", target)
    assert pulled.returncode == 0, pulled.stderr
    run = clean_root.dy("run", "--rm", "--network", "none", target, "echo", "via-skopeo")
    assert run.stdout.strip() == "via-skopeo", run.stderr


def test_manifest_inspect(registry, pushed):
    ref, _, _ = pushed
    p = dy("manifest", "inspect", ref)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schemaVersion"] == 2 and doc["layers"]
    assert p.stdout.startswith("{\n\t\"schemaVersion\"")


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_login_logout(tmp_path, clean_root, auth):
    if shutil.which("htpasswd") is None and auth == "htpasswd":
        pytest.skip("htpasswd is not installed")
    users = {"qa": "s3cret"}
    if auth == "htpasswd":
        token = None
        reg = _start(tmp_path / "reg", htpasswd=make_htpasswd(tmp_path / "htpasswd", users))
    else:
        token = TokenServer(tmp_path / "token", users)
        reg = _start(tmp_path / "reg", token=token)
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    config = tmp_path / "docker-config" / "config.json"
    try:
        bad = clean_root.dy("login", "-u", "qa", "--password-stdin", reg.host, input="wrong\n", env=env)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert not config.exists()
        ok = clean_root.dy("login", "-u", "qa", "-p", "s3cret", reg.host, env=env)
        assert ok.returncode == 0 and ok.stdout.strip() == "Login Succeeded", ok.stderr
        assert "WARNING! Using --password via the CLI is insecure" in ok.stderr
        assert reg.host in json.loads(config.read_text())["auths"]
        assert config.stat().st_mode & 0o777 == 0o600
        # with the saved credentials push and pull work
        dy("tag", "busybox", f"{reg.host}/qa/auth:v1", check=True)
        try:
            pushed_ok = dy("push", f"{reg.host}/qa/auth:v1", env=env)
            assert pushed_ok.returncode == 0, pushed_ok.stderr
        finally:
            dy("rmi", f"{reg.host}/qa/auth:v1")
        assert clean_root.dy("pull", "-q", f"{reg.host}/qa/auth:v1", env=env).returncode == 0
        out = clean_root.dy("logout", reg.host, env=env)
        assert out.returncode == 0 and out.stdout.strip() == f"Removing login credentials for {reg.host}"
        assert reg.host not in json.loads(config.read_text()).get("auths", {})
        again = clean_root.dy("logout", reg.host, env=env)
        assert again.returncode == 0 and again.stdout.strip() == f"Not logged in to {reg.host}"
        # without credentials: refused, in one line
        denied = clean_root.dy("pull", f"{reg.host}/qa/auth:v1", env=env)
        assert denied.returncode == 1 and "Traceback" not in denied.stderr
        assert len(denied.stderr.strip().splitlines()) == 1, denied.stderr
    finally:
        reg.stop()
        if token is not None:
            token.close()


def _put_blob(registry: Registry, repo: str, data: bytes) -> str:
    import hashlib
    from urllib.parse import urljoin

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req) as r:
        loc = urljoin(f"http://{registry.host}/", r.headers["Location"])
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(f"{loc}{sep}digest={digest}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).close()
    return digest


def _put_manifest(registry: Registry, repo: str, ref: str, media_type: str, raw: bytes) -> str:
    import hashlib

    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{ref}", method="PUT", data=raw,
                                 headers={"Content-Type": media_type})
    urllib.request.urlopen(req).close()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_manifest_list_platform_selection(registry, pushed, clean_root):
    """An index with this host's platform (busybox as pushed) and another (the same layers, a
    config saying so): the host's platform is picked by default, --platform picks the other."""
    ref, digest, _ = pushed
    repo = "qa/multi"
    with urllib.request.urlopen(urllib.request.Request(
            f"http://{registry.host}/v2/qa/bb/manifests/{digest}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})) as r:
        amd_raw = r.read()
    amd = json.loads(amd_raw)
    host_config = urllib.request.urlopen(f"http://{registry.host}/v2/qa/bb/blobs/{amd['config']['digest']}").read()
    for layer in amd["layers"]:  # the layers, into this repository
        data = urllib.request.urlopen(f"http://{registry.host}/v2/qa/bb/blobs/{layer['digest']}").read()
        _put_blob(registry, repo, data)
    _put_blob(registry, repo, host_config)
    arm_config = json.loads(host_config)
    host_arch = arm_config["architecture"]
    other = "arm64" if host_arch != "arm64" else "amd64"
    arm_config["architecture"] = other
    arm_bytes = json.dumps(arm_config).encode()
    arm_digest = _put_blob(registry, repo, arm_bytes)
    arm = dict(amd, config={**amd["config"], "digest": arm_digest, "size": len(arm_bytes)})
    arm_raw = json.dumps(arm).encode()
    mt = "application/vnd.docker.distribution.manifest.v2+json"
    amd_digest = _put_manifest(registry, repo, "amd", mt, amd_raw)
    arm_m_digest = _put_manifest(registry, repo, "arm", mt, arm_raw)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
             "manifests": [
                 {"mediaType": mt, "size": len(arm_raw), "digest": arm_m_digest,
                  "platform": {"architecture": other, "os": "linux"}},
                 {"mediaType": mt, "size": len(amd_raw), "digest": amd_digest,
                  "platform": {"architecture": host_arch, "os": "linux"}}]}
    index_raw = json.dumps(index).encode()
    index_digest = _put_manifest(registry, repo, "multi", index["mediaType"], index_raw)
    target = f"{registry.host}/{repo}:multi"
    p = clean_root.dy("pull", target)
    assert p.returncode == 0, p.stderr
    assert f"Digest: {index_digest}" in p.stdout
    got = json.loads(clean_root.dy("image", "inspect", target, check=True).stdout)[0]
    assert got["Architecture"] == host_arch and got["Id"] == amd["config"]["digest"]
    assert got["RepoDigests"] == [f"{registry.host}/{repo}@{index_digest}"]
    p = clean_root.dy("pull", "--platform", f"linux/{other}", target)
    assert p.returncode == 0, p.stderr
    got = json.loads(clean_root.dy("image", "inspect", target, check=True).stdout)[0]
    assert got["Architecture"] == other and got["Id"] == arm_digest
    assert "Already exists" in p.stdout  # same layers
    out = dy("manifest", "inspect", target, check=True).stdout
    assert json.loads(out)["manifests"][1]["platform"]["architecture"] == host_arch


def test_concurrent_pulls_and_all_tags(registry, clean_root, tmp_path):
    """Two pulls of the same image at once into one data root both succeed (the blob lock
    and the layer store's commit keep one copy); `pull -a` fetches every tag."""
    repo = f"{registry.host}/qa/conc"
    _random_tar(tmp_path / "c.tar", 8 << 20)
    dy("import", str(tmp_path / "c.tar"), f"{repo}:a", check=True)
    dy("tag", "busybox", f"{repo}:b", check=True)
    try:
        dy("push", "-a", repo, check=True)
        procs = [clean_root.popen("pull", f"{repo}:a") for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        assert len(clean_root.dy("images", "-q").stdout.split()) == 1
        assert len(glob.glob(str(clean_root.root / "image/overlay2/layerdb/sha256/*"))) == 1
        p = clean_root.dy("pull", "-a", repo)
        assert p.returncode == 0, p.stderr
        assert "a: Pulling from qa/conc" in p.stdout and "b: Pulling from qa/conc" in p.stdout
        assert p.stdout.splitlines()[-1] == repo
        tags = clean_root.dy("images", "--format", "{{.Tag}}", repo).stdout.split()
        assert sorted(tags) == ["a", "b"]
    finally:
        dy("rmi", f"{repo}:a", f"{repo}:b")


def test_platform_of_a_single_manifest_is_checked(registry, pushed, clean_root):
    ref, _, _ = pushed
    arch = json.loads(dy("image", "inspect", ref, check=True).stdout)[0]["Architecture"]
    other = "arm64" if arch != "arm64" else "amd64"
    p = clean_root.dy("pull", "--platform", f"linux/{other}", ref)
    assert p.returncode == 1 and f"does not match the specified platform (linux/{other})" in p.stderr, p.stderr
    assert clean_root.dy("images", "-q").stdout.strip() == ""
    p = clean_root.dy("pull", "--platform", f"linux/{arch}", ref)
    assert p.returncode == 0, p.stderr


def test_push_cache_follows_the_layer_store(registry, pushed, tmp_path):
    root = Path(os.environ["DOCKYARD_ROOT"]) / "image/overlay2/distribution"
    ref = f"{registry.host}/qa/cache:v1"
    _random_tar(tmp_path / "x.tar", 256 << 10)
    dy("import", str(tmp_path / "x.tar"), ref, check=True)
    diff_id = json.loads(dy("image", "inspect", ref, check=True).stdout)[0]["RootFS"]["Layers"][0]
    dy("push", ref, check=True)
    mapping = root / "compressed-by-diffid/gzip/sha256" / diff_id[7:]
    blob = root / "blobs/sha256" / json.loads(mapping.read_text())["Digest"][7:]
    assert blob.is_file()
    dy("rmi", ref, check=True)
    dy("push", pushed[0], check=True)
    assert not mapping.exists() and not blob.exists()


def test_build_from_pulls_a_missing_base(registry, pushed, clean_root, tmp_path):
    ref, _, _ = pushed
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(f"FROM {ref}\nRUN echo built > /built\n")
    p = clean_root.dy("build", "-q", "-t", "on-pulled", str(tmp_path / "ctx"))
    assert p.returncode == 0, p.stderr
    assert clean_root.dy("image", "inspect", ref).returncode == 0
    run = clean_root.dy("run", "--rm", "--network", "none", "on-pulled", "cat", "/built")
    assert run.stdout.strip() == "built", run.stderr


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory):
    """A private dockerd (Debian's docker.io) on its own data root and socket, stopped by PID."""
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    client = shutil.which("docker")
    if dockerd is None or client is None:
        pytest.skip("docker.io is not installed")
    tag = f"dypp-{os.getpid()}"
    data_root, exec_root = Path(f"/var/lib/{tag}"), Path(f"/run/{tag}")
    sock, pidfile = f"/run/{tag}.sock", f"/run/{tag}.pid"
    log = open(tmp_path_factory.mktemp("dockerd") / "dockerd.log", "wb")
    proc = subprocess.Popen([dockerd, "--data-root", str(data_root), "--exec-root", str(exec_root),
                             "-H", f"unix://{sock}", "--pidfile", pidfile, "--iptables=false",
                             "--ip-masq=false", "--bridge=none"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([client, "-H", f"unix://{sock}", *args], capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    try:
        deadline = time.monotonic() + 60
        while run("version", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"dockerd did not start: {Path(log.name).read_text()[-500:]}")
            time.sleep(0.3)
        yield run
    finally:
        if proc.poll() is None:
            for c in run("ps", "-aq", check=False).stdout.split():
                run("rm", "-f", c, check=False)
            proc.terminate()
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


def test_docker_interop(registry, pushed, clean_root, docker_cli, tmp_path):
    """Docker pulls and runs what Dockyard pushed (same image ID); Dockyard pulls and runs what
    Docker pushed (same ID and diffIDs)."""
    ref, digest, _ = pushed
    p = docker_cli("pull", ref)
    assert f"Digest: {digest}" in p.stdout
    assert docker_cli("run", "--rm", "--network", "none", ref, "echo", "in-docker").stdout == "in-docker\n"
    theirs = json.loads(docker_cli("image", "inspect", ref).stdout)[0]
    assert theirs["Id"] == json.loads(dy("image", "inspect", ref, check=True).stdout)[0]["Id"]
    docker_cli("run", "--name", "dypp-c", "--network", "none", ref, "sh", "-c", "echo from-docker > /d")
    target = f"{registry.host}/qa/from-docker:d1"
    docker_cli("commit", "dypp-c", target)
    docker_cli("rm", "dypp-c")
    docker_cli("push", target)
    pulled = clean_root.dy("pull", target)
    assert pulled.returncode == 0, pulled.stderr
    run = clean_root.dy("run", "--rm", "--network", "none", target, "cat", "/d")
    assert run.stdout == "from-docker\n", run.stderr
    mine = json.loads(clean_root.dy("image", "inspect", target, check=True).stdout)[0]
    theirs = json.loads(docker_cli("image", "inspect", target).stdout)[0]
    assert mine["Id"] == theirs["Id"] and mine["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
    assert mine["RepoDigests"] == theirs["RepoDigests"]


def test_a_blob_used_twice_in_one_image(registry, pushed, clean_root):
    """Some images repeat a layer blob (old builders' empty layers): both positions are pulled."""
    ref, digest, _ = pushed
    with urllib.request.urlopen(urllib.request.Request(
            f"http://{registry.host}/v2/qa/bb/manifests/{digest}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})) as r:
        m = json.loads(r.read())
    config = json.loads(urllib.request.urlopen(f"http://{registry.host}/v2/qa/bb/blobs/{m['config']['digest']}").read())
    config["rootfs"]["diff_ids"] = config["rootfs"]["diff_ids"] * 2
    config["history"] = (config.get("history") or []) * 2
    repo = "qa/twice"
    layer = m["layers"][0]
    _put_blob(registry, repo, urllib.request.urlopen(f"http://{registry.host}/v2/qa/bb/blobs/{layer['digest']}").read())
    cfg = json.dumps(config).encode()
    cfg_digest = _put_blob(registry, repo, cfg)
    m2 = dict(m, config={**m["config"], "digest": cfg_digest, "size": len(cfg)}, layers=[layer, layer])
    _put_manifest(registry, repo, "t", m["mediaType"], json.dumps(m2).encode())
    target = f"{registry.host}/{repo}:t"
    p = clean_root.dy("pull", target)
    assert p.returncode == 0, p.stderr
    info = json.loads(clean_root.dy("image", "inspect", target, check=True).stdout)[0]
    assert info["Id"] == cfg_digest and len(info["RootFS"]["Layers"]) == 2
    run = clean_root.dy("run", "--rm", "--network", "none", target, "echo", "twice")
    assert run.stdout.strip() == "twice", run.stderr


def test_pull_through_a_mirror(registry, registry2, clean_root, tmp_path):
    """registry-mirrors-by-host in daemon.json: a name only the mirror has is pulled from it."""
    dy("tag", "busybox", f"{registry2.host}/qa/mirrored:m", check=True)
    try:
        dy("push", f"{registry2.host}/qa/mirrored:m", check=True)
    finally:
        dy("rmi", f"{registry2.host}/qa/mirrored:m")
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"registry-mirrors-by-host": {registry.host: [f"http://{registry2.host}"]}}))
    env = {"DOCKYARD_CONFIG": str(cfg)}
    p = clean_root.dy("pull", f"{registry.host}/qa/mirrored:m", env=env)
    assert p.returncode == 0, p.stderr
    assert "GET /v2/qa/mirrored/manifests/m" in _access_log(registry2)
    assert re.search(r'"GET /v2/qa/mirrored/blobs/sha256:[0-9a-f]{64} HTTP/1.1" 200 ', _access_log(registry2))
    without = clean_root.dy("pull", f"{registry.host}/qa/mirrored:m")
    assert without.returncode == 1 and "not found" in without.stderr


_HEAVY = ("ssl", "http.client", "email", "concurrent.futures", "tarfile", "gzip", "subprocess",
          "socket", "selectors", "threading", "base64", "hashlib",
          "dockyard.engine.distribution_layers", "dockyard.engine.distribution_compress",
          "dockyard.network.store")


def _cli_modules(*args: str, env: dict[str, str] | None = None,
                 gc_on: bool = False) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the CLI in a fresh interpreter; returns it and the heavy modules it imported.
    Checks the cyclic garbage collector ended on (`gc_on`: layers moved) or off."""
    import sys

    code = ("import gc, sys\nfrom dockyard.cli.main import main\nrc = main(sys.argv[1:])\n"
            "print('GC', gc.isenabled())\n"
            f"print('MODULES', sorted(m for m in {_HEAVY!r} if m in sys.modules))\nsys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **(env or {})})
    line = [x for x in p.stdout.splitlines() if x.startswith("MODULES ")]
    assert line, (p.stdout, p.stderr)
    assert f"GC {gc_on}" in p.stdout.splitlines(), p.stdout
    return p, eval(line[-1][len("MODULES "):])


def test_a_pull_that_moves_layers_turns_the_garbage_collector_on(registry, pushed, clean_root):
    """pull/push start without the cyclic GC (as short commands do) and turn it on once
    layers move; an up-to-date one never does (test_up_to_date_pull_and_push_stay_light)."""
    ref, _, _ = pushed
    p, heavy = _cli_modules("pull", ref, env=clean_root.env, gc_on=True)
    assert p.returncode == 0, p.stderr
    assert "dockyard.engine.distribution_layers" in heavy


def test_up_to_date_pull_and_push_stay_light(registry, pushed):
    """An up-to-date pull/push: no TLS probe of the plain-http registry once its scheme is
    known, and no ping either; none of the download/compression machinery, no thread; the
    pull sends Docker's manifest GET, the push HEADs and no manifest PUT (the tag already
    points to the very manifest it would send)."""
    ref, digest, _ = pushed
    dy("pull", ref, check=True)  # learns (and keeps) that the registry speaks plain http
    before = _access_log(registry)
    p, heavy = _cli_modules("pull", ref)
    assert p.returncode == 0, p.stderr
    assert "Image is up to date" in p.stdout and heavy == [], (p.stdout, heavy)
    p, heavy = _cli_modules("push", ref)
    assert p.returncode == 0, p.stderr
    assert "Layer already exists" in p.stdout and heavy == [], (p.stdout, heavy)
    log = _access_log(registry)[len(before):]
    manifest_gets = re.findall(r'"GET /v2/qa/bb/manifests/v1 HTTP/1.1" 200', log)
    assert len(manifest_gets) == 1, log  # one manifest request for the pull, as Docker
    assert '"GET /v2/ ' not in log, log  # the scheme is remembered: no ping
    assert len(re.findall(r'"HEAD /v2/qa/bb/manifests/v1 HTTP/1.1" 200', log)) == 1, log
    assert len(re.findall(r'"HEAD /v2/qa/bb/blobs/sha256:[0-9a-f]{64} HTTP/1.1" 200', log)) >= 2, log
    assert not re.search(r'"(POST|PATCH|PUT) ', log), log  # nothing uploaded, the tag left as is
    assert f"v1: digest: {digest} " in p.stdout


def test_push_moves_a_tag_that_points_elsewhere(registry, pushed):
    """The push's up-to-date check compares the tag's manifest digest with the one it would
    send: a tag moved to another manifest (here the same content, spelt compactly) is put back."""
    import urllib.request

    ref, digest, _ = pushed
    url = f"http://{registry.host}/v2/qa/bb/manifests/v1"
    media = "application/vnd.docker.distribution.manifest.v2+json"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": media})) as r:
        compact = json.dumps(json.loads(r.read()), separators=(",", ":")).encode()
    put = urllib.request.Request(url, data=compact, method="PUT", headers={"Content-Type": media})
    with urllib.request.urlopen(put) as r:
        other = r.headers["Docker-Content-Digest"]
    assert other != digest
    before = _access_log(registry)
    p = dy("push", ref, check=True)
    assert f"v1: digest: {digest} " in p.stdout
    log = _access_log(registry)[len(before):]
    assert len(re.findall(r'"PUT /v2/qa/bb/manifests/v1 HTTP/1.1" 201', log)) == 1, log
    head = urllib.request.Request(url, method="HEAD", headers={"Accept": media})
    with urllib.request.urlopen(head) as r:
        assert r.headers["Docker-Content-Digest"] == digest
