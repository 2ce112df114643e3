"""JSON shape conformance: responses validate against the definitions of moby's own Engine
API spec (v1.45), read at test time, with a small checker (types, required keys, enums,
nested objects, arrays, maps, allOf) so the tests need no jsonschema package."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

yaml = pytest.importorskip("yaml")

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "docker-engine-api-v1.45.yaml"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def api(host: str, method: str, path: str, body: Any = None) -> tuple[int, Any, http.client.HTTPResponse]:
    conn = UnixHTTPConnection(host.removeprefix("unix://"))
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None, resp
    except ValueError:
        return resp.status, raw, resp


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"the spec is not at {SPEC}")
    return yaml.safe_load(SPEC.read_text())  # type: ignore[no-any-return]


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}


def check(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """Problems of `value` against `schema` (a Swagger 2 schema with $refs into `spec`)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return check(spec, spec["definitions"][name], value, f"{where}<{name}>")
    problems: list[str] = []
    for part in schema.get("allOf", []):
        problems += check(spec, part, value, where)
    if value is None:
        return problems  # Docker sends null for empty slices/maps everywhere; the spec rarely says so
    typ = schema.get("type")
    if typ:
        want = _TYPES[typ]
        if isinstance(value, bool) and typ in ("integer", "number"):
            return problems + [f"{where}: {value!r} is a boolean, expected {typ}"]
        if not isinstance(value, want):  # type: ignore[arg-type]
            return problems + [f"{where}: {type(value).__name__} {value!r:.60}, expected {typ}"]
    if "enum" in schema and value not in schema["enum"] and value != "":
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                problems.append(f"{where}: required key {key!r} missing")
        for key, sub in props.items():
            if key in value:
                problems += check(spec, sub, value[key], f"{where}.{key}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, v in value.items():
                if key not in props:
                    problems += check(spec, extra, v, f"{where}[{key!r}]")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            problems += check(spec, schema["items"], v, f"{where}[{i}]")
    return problems


def response_schema(spec: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return spec["paths"][path][method]["responses"][200]["schema"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def running(docker_host: str) -> Iterator[str]:
    status, body, _ = api(docker_host, "POST", "/v1.45/containers/create?name=shape-check",
                          {"Image": "busybox", "Cmd": ["sleep", "60"], "Labels": {"shape": "1"},
                           "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
                           "ExposedPorts": {"80/tcp": {}}})
    assert status == 201, body
    cid = body["Id"]
    try:
        status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{cid}/start")
        assert status == 204, body
        yield cid
    finally:
        api(docker_host, "DELETE", f"/v1.45/containers/{cid}?force=1")


def test_checker_catches_problems(spec: dict[str, Any]) -> None:
    assert check(spec, {"$ref": "#/definitions/ContainerWaitResponse"}, {"Error": None})
    assert check(spec, {"$ref": "#/definitions/ContainerWaitResponse"}, {"StatusCode": "0"})
    assert not check(spec, {"$ref": "#/definitions/ContainerWaitResponse"}, {"StatusCode": 0})


def test_container_list(spec: dict[str, Any], docker_host: str, running: str) -> None:
    status, body, _ = api(docker_host, "GET", "/v1.45/containers/json?all=1&size=1")
    assert status == 200
    mine = [c for c in body if c["Id"] == running]
    assert mine and mine[0]["Ports"] and mine[0]["Names"] == ["/shape-check"]
    assert check(spec, response_schema(spec, "/containers/json"), body) == []
    for key in ("Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels", "State", "Status",
                "HostConfig", "NetworkSettings", "Mounts"):
        assert key in mine[0], key


def test_container_inspect(spec: dict[str, Any], docker_host: str, running: str) -> None:
    status, body, _ = api(docker_host, "GET", f"/v1.45/containers/{running}/json?size=1")
    assert status == 200
    assert check(spec, response_schema(spec, "/containers/{id}/json"), body) == []
    for key in response_schema(spec, "/containers/{id}/json")["properties"]:
        assert key in body, key
    assert body["State"]["Running"] is True and body["State"]["Pid"] > 0


def test_info_and_version(spec: dict[str, Any], docker_host: str) -> None:
    status, info, _ = api(docker_host, "GET", "/v1.45/info")
    assert status == 200
    assert check(spec, response_schema(spec, "/info"), info) == []
    assert info["Driver"] == "overlay2" and info["Swarm"]["LocalNodeState"] == "inactive"
    status, version, _ = api(docker_host, "GET", "/version")
    assert status == 200
    assert check(spec, response_schema(spec, "/version"), version) == []
    assert version["ApiVersion"] == "1.45" and version["MinAPIVersion"] == "1.24"


def test_exec_inspect_and_top(spec: dict[str, Any], docker_host: str, running: str) -> None:
    status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{running}/exec", {"Cmd": ["true"]})
    assert status == 201
    status, ex, _ = api(docker_host, "GET", f"/v1.45/exec/{body['Id']}/json")
    assert status == 200
    assert check(spec, response_schema(spec, "/exec/{id}/json"), ex) == []
    assert ex["Running"] is False and ex["ContainerID"] == running
    status, top, _ = api(docker_host, "GET", f"/v1.45/containers/{running}/top")
    assert status == 200 and check(spec, response_schema(spec, "/containers/{id}/top"), top) == []


def test_ping_headers(docker_host: str) -> None:
    for method in ("GET", "HEAD"):
        status, body, resp = api(docker_host, method, "/_ping")
        assert status == 200
        assert resp.getheader("Api-Version") == "1.45"
        assert resp.getheader("Ostype") == "linux"
        assert resp.getheader("Docker-Experimental") == "false"
        assert (resp.getheader("Server") or "").startswith("Dockyard/")
        assert resp.getheader("Cache-Control") == "no-cache, no-store, must-revalidate"
    status, body, resp = api(docker_host, "GET", "/v1.30/_ping")
    assert status == 200 and body == b"OK"


def _schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    return spec["paths"][path][method]["responses"][status]["schema"]  # type: ignore[no-any-return]


def test_more_response_shapes(spec: dict[str, Any], docker_host: str, running: str) -> None:
    """The listing without `size` (encoded from the record cache), create, exec create,
    update, changes, wait, events, system/df, commit and prune against the spec."""
    status, body, _ = api(docker_host, "GET", "/v1.45/containers/json")
    assert status == 200 and check(spec, response_schema(spec, "/containers/json"), body) == []
    mine = [c for c in body if c["Id"] == running]
    assert mine and mine[0]["Status"].startswith("Up ") and mine[0]["State"] == "running"
    assert mine[0]["Labels"] == {"shape": "1"} and mine[0]["Ports"][0]["PrivatePort"] == 80
    status, body, _ = api(docker_host, "POST", "/v1.45/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201 and check(spec, _schema(spec, "/containers/create", "post", 201), body) == []
    other = body["Id"]
    try:
        status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{other}/start")
        assert status == 204
        status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{other}/wait?condition=not-running")
        assert status == 200 and check(spec, _schema(spec, "/containers/{id}/wait", "post", 200), body) == []
        status, body, _ = api(docker_host, "POST", f"/v1.45/commit?container={other}&repo=dy-shape-commit")
        assert status == 201 and check(spec, _schema(spec, "/commit", "post", 201), body) == []
        api(docker_host, "DELETE", "/v1.45/images/dy-shape-commit")
    finally:
        api(docker_host, "DELETE", f"/v1.45/containers/{other}?force=1")
    status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{running}/exec", {"Cmd": ["touch", "/made"]})
    assert status == 201 and check(spec, _schema(spec, "/containers/{id}/exec", "post", 201), body) == []
    status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{running}/update", {"CpuShares": 512})
    assert status == 200 and check(spec, _schema(spec, "/containers/{id}/update", "post", 200), body) == []
    status, body, _ = api(docker_host, "GET", f"/v1.45/containers/{running}/changes")
    assert status == 200 and check(spec, _schema(spec, "/containers/{id}/changes", "get", 200), body or []) == []
    status, body, _ = api(docker_host, "GET", "/v1.45/system/df")
    assert status == 200 and check(spec, _schema(spec, "/system/df", "get", 200), body) == []
    assert any(c["Id"] == running for c in body["Containers"])
    import time

    status, raw, _ = api(docker_host, "GET", f"/v1.45/events?since=0&until={int(time.time())}")
    assert status == 200
    lines = raw.splitlines() if isinstance(raw, bytes) else [json.dumps(raw).encode()]
    events = [json.loads(line) for line in lines if line.strip()]
    assert events and all(check(spec, _schema(spec, "/events", "get", 200), e) == [] for e in events)
    status, body, _ = api(docker_host, "POST",
                          "/v1.45/containers/prune?filters=%7B%22label%22%3A%5B%22dy.none%3D1%22%5D%7D")
    assert status == 200 and check(spec, _schema(spec, "/containers/prune", "post", 200), body) == []
