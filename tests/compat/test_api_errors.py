"""Errors as Docker returns them: JSON {"message"} with 400/404/405/409/304/503, and never a
traceback for a client's mistake."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .conftest import ApiServer
from .test_api_shapes import api


@pytest.fixture(scope="module", autouse=True)
def log_start(api_server: ApiServer) -> int:
    """Where the server log stood before this module's requests."""
    return len(api_server.log_text())


def _message(body: Any) -> str:
    assert isinstance(body, dict) and set(body) == {"message"}, body
    return str(body["message"])


def test_unknown_container_is_404(docker_host: str) -> None:
    for method, path in (("GET", "/containers/nope-nope/json"), ("POST", "/containers/nope-nope/start"),
                         ("DELETE", "/containers/nope-nope"), ("GET", "/containers/nope-nope/logs?stdout=1"),
                         ("POST", "/containers/nope-nope/exec")):
        status, body, _ = api(docker_host, method, "/v1.45" + path, {"Cmd": ["true"]} if "exec" in path else None)
        assert status == 404, (path, body)
        assert "No such container: nope-nope" in _message(body)
    status, body, _ = api(docker_host, "GET", "/v1.45/exec/0123abc/json")
    assert status == 404 and "No such exec instance" in _message(body)


def test_bad_json_and_bad_parameters_are_400(docker_host: str) -> None:
    conn_path = docker_host.removeprefix("unix://")
    s = socket.socket(socket.AF_UNIX)
    s.connect(conn_path)
    s.sendall(b"POST /v1.45/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 9\r\n\r\n{not json")
    got = b""
    while b"}" not in got:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    head = got.decode()
    assert head.startswith("HTTP/1.1 400 ")
    assert '"message"' in head and "Traceback" not in head
    status, body, _ = api(docker_host, "POST", "/v1.45/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                                             "HostConfig": {"NetworkMode": "none"}})
    assert status == 201
    cid = body["Id"]
    try:
        status, body, _ = api(docker_host, "GET", f"/v1.45/containers/{cid}/logs")
        assert status == 400 and "at least one stream" in _message(body)
        status, body, _ = api(docker_host, "POST", f"/v1.45/containers/{cid}/kill?signal=NOPE")
        assert status in (400, 409), body
        status, body, _ = api(docker_host, "GET", "/v1.45/containers/json?filters=%7Bbad")
        assert status == 400
    finally:
        api(docker_host, "DELETE", f"/v1.45/containers/{cid}?force=1")


def test_unknown_path_method_and_version(docker_host: str) -> None:
    status, body, _ = api(docker_host, "GET", "/v1.45/no/such/endpoint")
    assert status == 404 and _message(body) == "page not found"
    status, body, _ = api(docker_host, "PATCH", "/v1.45/containers/json")
    assert status == 405
    status, body, _ = api(docker_host, "GET", "/v1.12/version")
    assert status == 400 and "too old" in _message(body)
    status, body, _ = api(docker_host, "GET", "/v1.99/version")
    assert status == 400 and "too new" in _message(body)


def test_conflicts_and_not_modified(docker_host: str) -> None:
    status, body, _ = api(docker_host, "POST", "/v1.45/containers/create?name=err-conflict",
                          {"Image": "busybox", "Cmd": ["sleep", "30"], "HostConfig": {"NetworkMode": "none"}})
    assert status == 201
    cid = body["Id"]
    try:
        status, body, _ = api(docker_host, "POST", "/v1.45/containers/create?name=err-conflict",
                              {"Image": "busybox", "Cmd": ["true"]})
        assert status == 409 and "already in use" in _message(body)
        assert api(docker_host, "POST", f"/v1.45/containers/{cid}/stop")[0] == 304
        assert api(docker_host, "POST", f"/v1.45/containers/{cid}/start")[0] == 204
        assert api(docker_host, "POST", f"/v1.45/containers/{cid}/start")[0] == 304
        status, body, _ = api(docker_host, "DELETE", f"/v1.45/containers/{cid}")
        assert status == 409 and "cannot remove a running container" in _message(body)
    finally:
        api(docker_host, "DELETE", f"/v1.45/containers/{cid}?force=1")
    status, body, _ = api(docker_host, "POST", "/v1.45/containers/create", {"Image": "no-such-image:xyz"})
    assert status == 404 and "No such image" in _message(body)


def test_swarm_and_plugins(docker_host: str) -> None:
    status, body, _ = api(docker_host, "GET", "/v1.45/swarm")
    assert status == 503 and "not a swarm manager" in _message(body)
    assert api(docker_host, "GET", "/v1.45/services")[0] == 503
    assert api(docker_host, "GET", "/v1.45/plugins")[:2] == (200, [])


def test_no_traceback_for_client_errors(api_server: ApiServer, log_start: int) -> None:
    # everything above was a client error: none may have produced a traceback in the log
    log = api_server.log_text()[log_start:]
    if "Traceback" in log:
        pytest.fail("the server logged a traceback:\n" + log[-3000:])
