"""The Docker SDK for Python against `dockyard serve`: images (build with buildargs, list,
get, tag, remove, save/load), volumes, networks, and containers.run with both.

Every test removes what it made.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from registry_server import start_or_skip

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def client(docker_host: str) -> Iterator[Any]:
    c = docker.DockerClient(base_url=docker_host, version="auto", timeout=120)
    yield c
    c.close()


def _uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def made(client: Any) -> Iterator[dict[str, list[str]]]:
    things: dict[str, list[str]] = {"containers": [], "images": [], "volumes": [], "networks": []}
    yield things
    errors = docker.errors.APIError
    for c in things["containers"]:
        try:
            client.api.remove_container(c, force=True)
        except errors:
            pass
    for i in things["images"]:
        try:
            client.images.remove(i, force=True)
        except errors:
            pass
    for v in things["volumes"]:
        try:
            client.api.remove_volume(v, force=True)
        except errors:
            pass
    for n in things["networks"]:
        try:
            client.api.remove_network(n)
        except errors:
            pass


def test_build_with_buildargs(client: Any, made: dict[str, list[str]], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\n"
                                    "RUN echo \"for $WHO\" > /who && echo step-output\n"
                                    'CMD ["cat", "/who"]\n')
    tag = _uniq("dy-sdk-build") + ":v1"
    made["images"].append(tag)
    image, logs = client.images.build(path=str(ctx), tag=tag, buildargs={"WHO": "sdk"}, rm=True)
    text = "".join(chunk.get("stream", "") for chunk in logs)
    assert "step-output" in text and "Successfully built" in text
    assert tag in image.tags
    assert client.containers.run(tag, remove=True) == b"for sdk\n"
    with pytest.raises(docker.errors.BuildError) as e:
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 2\n")
        client.images.build(path=str(ctx), rm=True)
    assert "returned a non-zero code: 2" in str(e.value)


def test_images_list_get_tag_remove(client: Any, made: dict[str, list[str]]) -> None:
    bb = client.images.get("busybox")
    assert "busybox:latest" in bb.tags and bb.id.startswith("sha256:")
    assert any(i.id == bb.id for i in client.images.list())
    repo = _uniq("dy-sdk-tag")
    made["images"].append(f"{repo}:t1")
    assert bb.tag(repo, "t1")
    listed = client.images.list(name=repo)
    assert [i.id for i in listed] == [bb.id] and f"{repo}:t1" in listed[0].tags
    hist = bb.history()
    assert hist and hist[0]["Id"] == bb.id
    client.images.remove(f"{repo}:t1")
    assert client.images.list(name=repo) == []
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("dy-sdk-no-such-image")


def test_save_and_load(client: Any, made: dict[str, list[str]]) -> None:
    repo = _uniq("dy-sdk-save")
    made["images"].append(f"{repo}:v1")
    bb = client.images.get("busybox")
    bb.tag(repo, "v1")
    data = b"".join(client.api.get_image(f"{repo}:v1"))
    assert len(data) > 1_000_000
    client.images.remove(f"{repo}:v1")
    loaded = client.images.load(data)
    assert [i.id for i in loaded] == [bb.id]
    assert f"{repo}:v1" in client.images.get(bb.id).tags


def test_volumes_and_networks_with_run(client: Any, made: dict[str, list[str]]) -> None:
    vol_name, net_name, name = _uniq("dy-sdk-vol"), _uniq("dy-sdk-net"), _uniq("dy-sdk-c")
    made["volumes"].append(vol_name)
    made["networks"].append(net_name)
    made["containers"].append(name)
    vol = client.volumes.create(vol_name, labels={"dy.sdk": "1"})
    assert vol.name == vol_name and vol.attrs["Labels"] == {"dy.sdk": "1"}
    assert [v.name for v in client.volumes.list(filters={"label": "dy.sdk=1"})] == [vol_name]
    assert client.volumes.get(vol_name).attrs["Driver"] == "local"

    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.231.9.0/24")])
    net = client.networks.create(net_name, driver="bridge", ipam=ipam, labels={"dy.sdk": "1"})
    assert client.networks.get(net.id).name == net_name
    assert net_name in [n.name for n in client.networks.list(names=[net_name])]

    out = client.containers.run("busybox", ["sh", "-c", "echo $(hostname) > /data/who; ip -4 -o addr"],
                                volumes={vol_name: {"bind": "/data", "mode": "rw"}},
                                network=net_name, remove=True)
    assert b"10.231.9." in out
    c = client.containers.run("busybox", ["sleep", "60"], name=name, detach=True)
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {"bridge"}
    net.connect(c, ipv4_address="10.231.9.77")
    net.reload()
    assert [k for k in net.attrs["Containers"]] == [c.id]
    assert b"10.231.9.77" in c.exec_run(["ip", "-4", "-o", "addr"]).output
    net.disconnect(c)
    net.reload()
    assert net.attrs["Containers"] == {}
    c.remove(force=True)
    assert client.containers.run("busybox", ["cat", "/data/who"], volumes=[f"{vol_name}:/data"],
                                 remove=True).strip()
    net.remove()
    vol.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(vol_name)
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(net_name)


def test_json_shapes_match_the_spec(docker_host: str, made: dict[str, list[str]]) -> None:
    """Image, history, volume, network and prune responses validate against moby's spec."""
    pytest.importorskip("yaml")
    from .test_api_shapes import SPEC, api, check

    import yaml

    if not SPEC.exists():
        pytest.skip(f"the spec is not at {SPEC}")
    spec = yaml.safe_load(SPEC.read_text())
    vol, net = _uniq("dy-shape-vol"), _uniq("dy-shape-net")
    made["volumes"].append(vol)
    made["networks"].append(net)

    def ok(method: str, path: str, spec_path: str, body: object = None, status: int = 200) -> object:
        got, doc, _ = api(docker_host, method, "/v1.45" + path, body)
        assert got == status, (path, doc)
        schema = spec["paths"][spec_path][method.lower()]["responses"][status]["schema"]
        assert check(spec, schema, doc) == [], (path, check(spec, schema, doc))
        return doc

    ok("GET", "/images/json?all=1", "/images/json")
    ok("GET", "/images/json?shared-size=1", "/images/json")
    ok("GET", "/images/busybox/json", "/images/{name}/json")
    ok("GET", "/images/busybox/history", "/images/{name}/history")
    ok("POST", "/volumes/create", "/volumes/create", {"Name": vol, "Labels": {"a": "b"}}, 201)
    ok("GET", f"/volumes/{vol}", "/volumes/{name}")
    ok("GET", "/volumes", "/volumes")
    created = ok("POST", "/networks/create", "/networks/create", {"Name": net, "Labels": {"a": "b"}}, 201)
    ok("GET", f"/networks/{created['Id']}", "/networks/{id}")  # type: ignore[index]
    ok("GET", "/networks", "/networks")
    ok("POST", "/images/prune?filters=%7B%22label%22%3A%5B%22dy.none%3D1%22%5D%7D", "/images/prune")
    ok("POST", "/volumes/prune?filters=%7B%22label%22%3A%5B%22dy.none%3D1%22%5D%7D", "/volumes/prune")
    ok("POST", "/networks/prune?filters=%7B%22label%22%3A%5B%22dy.none%3D1%22%5D%7D", "/networks/prune")
    ok("POST", "/build/prune", "/build/prune")
    assert api(docker_host, "GET", "/v1.45/images/search?term=busybox")[:2] == (200, [])
    got, doc, _ = api(docker_host, "GET", "/v1.45/images/dy-no-such/json")
    assert got == 404 and "No such image" in doc["message"]
    got, doc, _ = api(docker_host, "DELETE", "/v1.45/networks/bridge")
    assert got == 403 and "pre-defined" in doc["message"]
    got, doc, _ = api(docker_host, "DELETE", f"/v1.45/networks/{net}")
    assert got == 204
    got, doc, _ = api(docker_host, "DELETE", f"/v1.45/volumes/{vol}")
    assert got == 204


def test_commit_with_config(client: Any, made: dict[str, list[str]]) -> None:
    """A Config given to commit wins where it sets something; the rest is the container's."""
    name, repo = _uniq("dy-sdk-commit"), _uniq("dy-sdk-committed")
    made["containers"].append(name)
    made["images"].append(f"{repo}:v1")
    c = client.containers.run("busybox", ["sh", "-c", "echo saved > /f"], name=name, detach=True,
                              environment={"FROM_RUN": "1"})
    assert c.wait()["StatusCode"] == 0
    image = c.commit(repo, "v1", message="sdk commit", author="dy",
                     conf={"Cmd": ["cat", "/f"], "Env": ["FROM_CONF=2"], "Labels": {"dy.commit": "1"}})
    cfg = image.attrs["Config"]
    assert cfg["Cmd"] == ["cat", "/f"] and cfg["Labels"] == {"dy.commit": "1"}
    assert "FROM_CONF=2" in cfg["Env"] and "FROM_RUN=1" in cfg["Env"]
    assert image.attrs["Comment"] == "sdk commit" and image.attrs["Author"] == "dy"
    assert client.containers.run(f"{repo}:v1", remove=True) == b"saved\n"


def test_push_and_pull(client: Any, made: dict[str, list[str]], tmp_path: Path) -> None:
    reg = start_or_skip(tmp_path / "registry")
    try:
        repo = f"{reg.host}/sdk/bb"
        made["images"].append(f"{repo}:v2")
        client.images.get("busybox").tag(repo, "v2")
        events = list(client.images.push(repo, "v2", stream=True, decode=True))
        assert not [e for e in events if "error" in e], events
        digest = [e["aux"]["Digest"] for e in events if "aux" in e]
        assert digest and digest[0].startswith("sha256:")
        client.images.remove(f"{repo}:v2")
        pulled = client.images.pull(repo, tag="v2")
        assert f"{repo}:v2" in pulled.tags
        assert f"{repo}@{digest[0]}" in pulled.attrs["RepoDigests"]
        made["images"].append(f"{repo}@{digest[0]}")
        with pytest.raises(docker.errors.APIError):
            client.images.pull(f"{reg.host}/sdk/missing", tag="v1")
    finally:
        reg.stop()


def test_build_pull_platform_cachefrom(client: Any, made: dict[str, list[str]], tmp_path: Path) -> None:
    """images.build(pull=True) pulls the FROM image again (here a newer one the local
    registry has); a platform other than the host's is a 400; cachefrom is accepted."""
    from dockyard.engine.distmeta import parse_platform

    reg = start_or_skip(tmp_path / "registry")
    try:
        base = f"{reg.host}/sdk/{_uniq('base')}:latest"
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        ids = {}
        for word in ("one", "two"):  # the registry ends up with "two", the local tag with "one"
            (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {word} > /v\n")
            image, _ = client.images.build(path=str(ctx), tag=base, rm=True)
            ids[word] = image.id
            made["images"].append(image.id)
            events = list(client.images.push(base, stream=True, decode=True))
            assert not [e for e in events if "error" in e], events
        made["images"].append(base)
        client.images.get(ids["one"]).tag(base)
        (ctx / "Dockerfile").write_text(f'FROM {base}\nCMD ["cat", "/v"]\n')
        tag = _uniq("dy-sdk-pull") + ":v1"
        made["images"].append(tag)
        client.images.build(path=str(ctx), tag=tag, rm=True)
        assert client.containers.run(tag, remove=True) == b"one\n"
        host = "/".join(x for x in parse_platform(None) if x)
        client.images.build(path=str(ctx), tag=tag, rm=True, pull=True, platform=host, cache_from=[base])
        assert client.images.get(base).id == ids["two"]
        assert client.containers.run(tag, remove=True) == b"two\n"
        other = "linux/arm64" if host != "linux/arm64" else "linux/amd64"
        with pytest.raises(docker.errors.APIError) as e:
            client.images.build(path=str(ctx), tag=tag, platform=other)
        assert e.value.status_code == 400 and f'platform "{other}" is not supported' in str(e.value)
        resp = client.api._post(client.api._url("/build"), params={"cachefrom": "not json"}, data=b"")
        assert resp.status_code == 400 and "invalid cachefrom" in resp.json()["message"]
    finally:
        reg.stop()


def test_build_pulls_its_base_with_the_x_registry_config_credentials(
        client: Any, made: dict[str, list[str]], tmp_path: Path) -> None:
    """POST /build with X-Registry-Config (what the docker CLI and SDK send): FROM a private
    image that is not here is pulled with those credentials; without them the build fails."""
    import base64
    import io
    import json
    import tarfile

    reg = start_or_skip(tmp_path / "registry", {"bob": "s3cret"})
    try:
        private = f"{reg.host}/team/{_uniq('base')}:v1"
        client.images.get("busybox").tag(private)
        events = list(client.images.push(private, stream=True, decode=True,
                                         auth_config={"username": "bob", "password": "s3cret"}))
        assert not [e for e in events if "error" in e], events
        client.images.remove(private)
        ctx = io.BytesIO()
        with tarfile.open(fileobj=ctx, mode="w") as tar:
            data = f"FROM {private}\nRUN echo ok > /ok\n".encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tag = _uniq("dy-sdk-privbase") + ":v1"

        def build(creds: dict[str, Any] | None) -> list[dict[str, Any]]:
            headers = {"Content-Type": "application/x-tar"}
            if creds is not None:
                headers["X-Registry-Config"] = base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()
            resp = client.api._post(client.api._url("/build"), params={"t": tag}, data=ctx.getvalue(),
                                    headers=headers, stream=True)
            return [json.loads(line) for line in resp.iter_lines() if line]

        denied = build(None)
        assert [m for m in denied if "error" in m], denied
        made["images"].append(tag)
        made["images"].append(private)
        done = build({reg.host: {"username": "bob", "password": "s3cret"}})
        assert not [m for m in done if "error" in m], done
        assert client.containers.run(tag, ["cat", "/ok"], remove=True) == b"ok\n"
    finally:
        reg.stop()
