"""The Docker SDK for Python (docker 7) against `dockyard serve`: containers and exec."""

from __future__ import annotations

import io
import socket
import tarfile
import time
import urllib.request
from typing import Any, Iterator

import pytest

from .conftest import uniq

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def client(docker_host: str) -> Iterator[Any]:
    c = docker.DockerClient(base_url=docker_host, timeout=60)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def made(client: Any) -> Iterator[list[Any]]:
    objs: list[Any] = []
    yield objs
    for o in objs:
        try:
            o.remove(force=True)
        except docker.errors.NotFound:
            pass


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_ping_version(client: Any) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.45"


def test_run_foreground_remove(client: Any) -> None:
    out = client.containers.run("busybox", ["sh", "-c", "echo $GREETING"], environment={"GREETING": "hello"},
                                remove=True)
    assert out == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("busybox", ["sh", "-c", "exit 2"], remove=True)
    assert e.value.exit_status == 2


def test_run_detached_ports_volumes_logs(client: Any, made: list[Any], tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("from a bind mount\n")
    port = _free_port()
    c = client.containers.run("busybox", ["httpd", "-f", "-p", "80", "-h", "/www"], detach=True,
                              name=uniq("sdk-web"), ports={"80/tcp": ("127.0.0.1", port)},
                              volumes={str(tmp_path): {"bind": "/www", "mode": "ro"}})
    made.append(c)
    c.reload()
    assert c.status == "running"
    assert c.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    deadline = time.monotonic() + 10
    body = ""
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read().decode()
            break
        except OSError:
            time.sleep(0.1)
    assert body == "from a bind mount\n"
    assert any(x.id == c.id for x in client.containers.list(filters={"name": c.name}))
    assert not client.containers.list(filters={"name": c.name, "status": "exited"})
    c.stop(timeout=1)
    assert any(x.id == c.id for x in client.containers.list(all=True, filters={"status": "exited"}))


def test_list_filters(client: Any, made: list[Any]) -> None:
    """containers.list with each of Docker's filters."""
    tag = uniq("sdk-flt")
    net = client.networks.create(tag + "-net")
    vol = tag + "-vol"
    try:
        port = _free_port()
        up = client.containers.run("busybox", ["sleep", "60"], detach=True, name=tag + "-up", labels={"f": "up"},
                                   ports={"80/tcp": ("127.0.0.1", port)}, volumes={vol: {"bind": "/v"}},
                                   network=net.name)
        made.append(up)
        down = client.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True, name=tag + "-down",
                                     labels={"f": "down"})
        made.append(down)
        client.api.wait(down.id)
        new = client.containers.create("busybox", ["true"], name=tag + "-new", labels={"f": "new"})
        made.append(new)

        def names(**flt: Any) -> list[str]:
            got = client.containers.list(all=True, filters={"name": tag, **flt})
            return sorted(c.name.removeprefix(tag + "-") for c in got)

        assert names() == ["down", "new", "up"]
        assert client.containers.list(filters={"name": tag})[0].id == up.id  # running only
        assert names(status="exited") == ["down"] and names(status="created") == ["new"]
        assert names(exited=3) == ["down"] and names(exited=0) == []
        assert names(label="f=up") == ["up"] and names(label="f") == ["down", "new", "up"]
        assert names(id=down.id[:12]) == ["down"]
        assert names(ancestor="busybox") == ["down", "new", "up"]
        assert names(before=new.id) == ["down", "up"] and names(since=up.id) == ["down", "new"]
        assert names(network=net.name) == ["up"] and names(volume=vol) == ["up"] and names(volume="/v") == ["up"]
        assert names(publish=str(port)) == ["up"] and names(publish=f"{port}/udp") == []
        assert names(expose="80") == ["up"]
        assert names(health="none") == ["down", "new", "up"] and names(health="healthy") == []
        assert names(isolation="default") == ["down", "new", "up"]
        assert names(**{"is-task": "false"}) == ["down", "new", "up"] and names(**{"is-task": "true"}) == []
        for bad in ({"health": "sick"}, {"nope": "1"}, {"status": "sleeping"}):
            with pytest.raises(docker.errors.APIError) as e:
                client.containers.list(all=True, filters=bad)
            assert e.value.status_code == 400
    finally:
        for c in made:
            c.remove(force=True)
        made.clear()
        net.remove()
        client.volumes.get(vol).remove()


def test_logs_stream_and_wait(client: Any, made: list[Any]) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.2; done; exit 5"],
                              detach=True)
    made.append(c)
    lines = b"".join(c.logs(stream=True, follow=True))
    assert lines == b"n1\nn2\nn3\n"
    assert client.api.wait(c.id) == {"StatusCode": 5, "Error": None}
    assert c.logs(tail=1) == b"n3\n"


def test_logs_options_and_wait_conditions(client: Any, made: list[Any]) -> None:
    """logs: timestamps, tail, since, until; wait: next-exit and removed."""
    import datetime
    import threading

    c = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 1.2; echo b; sleep 1.2; echo c"], detach=True)
    made.append(c)
    assert client.api.wait(c.id)["StatusCode"] == 0
    stamped = c.logs(timestamps=True).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["a", "b", "c"]
    times = [datetime.datetime.fromisoformat(line.split(" ", 1)[0][:26]).replace(tzinfo=datetime.timezone.utc)
             for line in stamped]
    assert c.logs(tail=2) == b"b\nc\n" and c.logs(tail=0) == b""
    mid = times[1].timestamp()
    assert c.logs(since=mid - 0.3) == b"b\nc\n"
    assert c.logs(until=mid - 0.3) == b"a\n"
    # next-exit waits for the exit after a restart; removed until the container is gone
    got: dict[str, Any] = {}
    w = threading.Thread(target=lambda: got.update(next=client.api.wait(c.id, condition="next-exit")))
    w.start()
    time.sleep(0.5)
    assert w.is_alive(), "next-exit must not answer for the exit before it was asked"
    c.start()
    w.join(15)
    assert got["next"]["StatusCode"] == 0
    r = threading.Thread(target=lambda: got.update(removed=client.api.wait(c.id, condition="removed")))
    r.start()
    time.sleep(0.5)
    assert r.is_alive()
    c.remove()
    r.join(15)
    assert got["removed"]["StatusCode"] == 0


def test_exec_run(client: Any, made: list[Any]) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    made.append(c)
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert r.exit_code == 3 and b"out\n" in r.output and b"err\n" in r.output
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert r.output == (b"out\n", b"err\n")
    r = c.exec_run(["sh", "-c", "test -t 1 && echo tty"], tty=True)
    assert r.exit_code == 0 and r.output == b"tty\r\n"
    r = c.exec_run("env", environment={"FOO": "bar"}, workdir="/tmp")
    assert b"FOO=bar" in r.output
    assert client.api.inspect_container(c.id)["ExecIDs"] is None  # the finished ones are gone
    eid = client.api.exec_create(c.id, ["sleep", "1"])["Id"]
    assert client.api.inspect_container(c.id)["ExecIDs"] == [eid]  # created, not started yet
    client.api.exec_start(eid, detach=True)
    assert client.api.inspect_container(c.id)["ExecIDs"] == [eid]  # running
    deadline = time.monotonic() + 10
    while client.api.exec_inspect(eid)["Running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    info = client.api.exec_inspect(eid)
    assert info["ExitCode"] == 0 and info["ContainerID"] == c.id
    assert client.api.inspect_container(c.id)["ExecIDs"] is None  # exited: listed no more


def test_attach_socket(client: Any, made: list[Any]) -> None:
    c = client.containers.create("busybox", ["sh", "-c", "read line; echo got:$line"], stdin_open=True)
    made.append(c)
    sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
    raw = sock._sock
    c.start()
    raw.sendall(b"ping\n")
    data = b""
    deadline = time.monotonic() + 10
    while b"got:ping" not in data and time.monotonic() < deadline:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    raw.close()
    # non-TTY: multiplexed frames (stream 1 = stdout)
    assert data.startswith(b"\x01\x00\x00\x00") and b"got:ping\n" in data
    assert client.api.wait(c.id)["StatusCode"] == 0


def test_put_get_archive(client: Any, made: list[Any]) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    made.append(c)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"archived\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mode = 0o640
        tar.addfile(info, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    assert c.exec_run("cat /tmp/hello.txt").output == b"archived\n"
    stream, stat = c.get_archive("/tmp/hello.txt")
    assert stat["name"] == "hello.txt" and stat["size"] == 9 and stat["mode"] & 0o777 == 0o640
    got = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    f = got.extractfile("hello.txt")
    assert f is not None and f.read() == b"archived\n"
    _, dstat = c.get_archive("/tmp")
    assert dstat["mode"] & (1 << 31)  # Go's os.ModeDir
    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/no/such/path")


def test_stats_one_shot(client: Any, made: list[Any]) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    made.append(c)
    s = c.stats(stream=False)
    assert s["id"] == c.id and s["name"] == "/" + c.name
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] > 0
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
    assert s["pids_stats"]["current"] == 1
    assert "precpu_stats" in s and "read" in s and "preread" in s
    gen = c.stats(stream=True, decode=True)
    first, second = next(gen), next(gen)
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]


def test_lifecycle_calls(client: Any, made: list[Any]) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, labels={"suite": "sdk"})
    made.append(c)
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    new = uniq("sdk-renamed")
    c.rename(new)
    c.reload()
    assert c.name == new
    assert [x.id for x in client.containers.list(filters={"label": "suite=sdk"})] == [c.id]
    top = c.top()
    assert "PID" in top["Titles"] and len(top["Processes"]) == 1
    c.restart(timeout=1)
    c.reload()
    assert c.status == "running"
    c.kill()
    assert client.api.wait(c.id)["StatusCode"] == 137
    pruned = client.containers.prune(filters={"label": "suite=sdk"})
    assert pruned["ContainersDeleted"] == [c.id]


def test_attach_websocket(client: Any, docker_host: str, made: list[Any]) -> None:
    """GET /containers/{id}/attach/ws (docker-py's ws=True needs websocket-client; this speaks
    RFC 6455 by hand): stdin in, raw output out, a close frame at the exit."""
    import base64
    import os
    import struct

    c = client.containers.create("busybox", ["sh", "-c", "read l; echo got:$l; echo bye >&2"], stdin_open=True)
    made.append(c)
    s = socket.socket(socket.AF_UNIX)
    s.connect(docker_host.removeprefix("unix://"))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /v1.45/containers/{c.id}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              f"Host: docker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    import hashlib

    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B65").encode()).digest())
    assert head.startswith(b"HTTP/1.1 101 ") and accept in head
    c.start()
    mask, payload = os.urandom(4), b"hello\n"
    s.sendall(struct.pack(">BB", 0x82, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if b"\x88\x02\x03\xe8" in data:  # the close frame (1000)
            break
    s.close()
    assert b"\x82\x0agot:hello\n" in data and b"\x82\x04bye\n" in data
