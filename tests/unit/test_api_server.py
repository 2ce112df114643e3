"""The API server's own machinery, without containers: the listing's record cache (it must
follow every change another process makes), the encoded container list, the request parser
and the router."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from dockyard import _util
from dockyard.api import router, server, shapes
from dockyard.engine import query, recordwatch
from dockyard.engine.core import Engine
from dockyard.engine.records import Container, new_state
from dockyard.paths import Paths

router.load_handlers()


def _engine(tmp_path: Path) -> Engine:
    return Engine(Paths(tmp_path / "root", tmp_path / "run"))


def _record(eng: Engine, name: str, created: str, **state: object) -> Container:
    cid = _util.new_id()
    st = new_state()
    st.update(state)
    doc = {"ID": cid, "Name": "/" + name, "Created": created, "Path": "true", "Args": [], "Image": "sha256:" + "1" * 64,
           "Config": {"Image": "busybox", "Labels": {"n": name}}, "State": st}
    c = Container(doc, {"NetworkMode": "bridge"})
    os.makedirs(eng.containers.path(cid))
    eng.containers.save(c, host_config=True)
    return c


def _age(eng: Engine, c: Container, seconds: float = 60) -> None:
    """Make a record's file old enough to be trusted by the cache (see query._RACY_NS)."""
    p = eng.containers.path(c.id) / "config.v2.json"
    t = time.time() - seconds
    os.utime(p, (t, t))


def _states(eng: Engine) -> dict[str, str]:
    return {c.name: query.state_word(c) for c in query.records(eng)}


@pytest.fixture(params=["stat", "inotify"])
def watching(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Both ways `records` tells what changed: a stat per record, or inotify (the server's)."""
    on = request.param == "inotify"
    query.watch_records(on)
    try:
        yield on
    finally:
        query.watch_records(False)


def test_record_cache_follows_other_writers(tmp_path: Path, watching: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = _engine(tmp_path)
    a = _record(eng, "a", "2024-01-01T00:00:00.000000001Z")
    b = _record(eng, "b", "2024-01-01T00:00:01.000000001Z")
    for c in (a, b):
        _age(eng, c)
    assert _states(eng) == {"a": "created", "b": "created"}
    first = {c.id: c for c in query.records(eng)}
    stats: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(query.os, "stat", lambda p, *a, **k: stats.append(str(p)) or real_stat(p, *a, **k))
    again = {c.id: c for c in query.records(eng)}
    assert all(first[k] is again[k] for k in first), "unchanged, old records are parsed once"
    assert len(stats) == (0 if watching else 2), "with inotify an unchanged listing stats nothing"
    if watching:
        assert query._watchers[eng.containers.dir_str] is not None

    # another process (another store) changes a record: the next listing shows it at once,
    # even a rewrite of the same size within the same clock tick
    other = Engine(eng.paths).containers
    c = other.load(a.id)
    c.state.update(Status="exited", FinishedAt="2024-01-01T00:00:05.000000001Z")
    other.save(c)
    assert _states(eng) == {"a": "exited", "b": "created"}
    for code in (1, 2, 3):  # same length each time, written back to back
        c.state["ExitCode"] = code
        other.save(c)
        assert [x.state["ExitCode"] for x in query.records(eng) if x.id == a.id] == [code]

    # a HostConfig change (always written before the record) shows too
    c = other.load(b.id)
    c.host_config["NetworkMode"] = "none"
    other.save(c, host_config=True)
    assert [x.host_config["NetworkMode"] for x in query.records(eng) if x.id == b.id] == ["none"]

    # removed and added records
    other.delete(a.id)
    d = _record(eng, "d", "2024-01-01T00:00:02.000000001Z")
    assert _states(eng) == {"b": "created", "d": "created"}
    assert query.memo(eng, eng.containers.load(d.id)) is None, "a container loaded afresh has no memo"
    assert query.memo(eng, next(x for x in query.records(eng) if x.id == d.id)) is not None
    # the whole containers dir replaced (a wiped data root): a full rescan
    import shutil

    shutil.rmtree(eng.containers.dir)
    assert query.records(eng) == []
    e = _record(eng, "e", "2024-01-01T00:00:03.000000001Z")
    assert _states(eng) == {"e": "created"}
    c = other.load(e.id)
    c.state["Status"] = "exited"
    other.save(c)
    assert _states(eng) == {"e": "exited"}


def test_list_order_filters_and_encoded_summaries(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    old = _record(eng, "old", "2024-01-01T00:00:00.000000001Z", Status="exited", ExitCode=3,
                  StartedAt="2024-01-01T00:00:01Z", FinishedAt="2024-01-01T00:00:02.5Z")
    new = _record(eng, "new", "2024-01-02T00:00:00.000000001Z")
    _age(eng, old)
    assert [c.name for c in query.list_containers(eng, all_=True)] == ["new", "old"]
    assert query.list_containers(eng) == []
    assert [c.name for c in query.list_containers(eng, filters=["status=exited"])] == ["old"]
    assert [c.name for c in query.list_containers(eng, filters=["exited=3"])] == ["old"]
    for _ in range(2):  # the second time from the memo
        cs = query.list_containers(eng, all_=True)
        got = json.loads(shapes.summaries_json(eng, cs))
        want = [shapes.container_summary(eng, c) for c in cs]
        assert got == json.loads(json.dumps(want))
    assert got[1]["Status"].startswith("Exited (3) ") and got[1]["Status"].endswith(" ago")
    assert got[0]["Status"] == "Created" and got[0]["Id"] == new.id
    assert got[1]["HostConfig"] == {"NetworkMode": "bridge"}


# ---- the request parser --------------------------------------------------------------------

class _FakeServer:
    engine = None
    debug = False


def _exchange(raw: bytes) -> bytes:
    """Feed `raw` to one connection handler; all it answered, once it closed."""
    a, b = socket.socketpair(socket.AF_UNIX)
    got: list[bytes] = []

    def client() -> None:
        b.sendall(raw)
        b.shutdown(socket.SHUT_WR)
        while data := b.recv(65536):
            got.append(data)
        b.close()

    t = threading.Thread(target=client)
    t.start()
    server._Handler(a, ("unix", 0), _FakeServer)
    a.close()
    t.join(10)
    return b"".join(got)


def _statuses(resp: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", resp)]


def test_request_parser_keep_alive_close_and_errors() -> None:
    ping = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
    # keep-alive by default in 1.1: three requests on one connection, the last one closes
    resp = _exchange(ping + b"HEAD /_ping HTTP/1.1\r\nHOST: x\r\nX-Folded: a\r\n b\r\n\r\n"
                     + b"GET /v1.45/_ping HTTP/1.1\r\nconnection: Close\r\n\r\n" + ping)
    assert _statuses(resp) == [200, 200, 200]
    assert resp.count(b"Api-Version: 1.45\r\n") == 3
    # HTTP/1.0 closes after one response unless it asks to keep the connection
    assert _statuses(_exchange(b"GET /_ping HTTP/1.0\r\n\r\n" + ping)) == [200]
    assert _statuses(_exchange(b"GET /_ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + ping)) == [200, 200]
    # a body is read by length and the next request starts after it
    body = b'{"x": 1}'
    assert _statuses(_exchange(b"POST /_ping HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                               + ping)) == [405, 200]
    # malformed: a status line and Docker's JSON error, then the connection closes
    resp = _exchange(b"GARBAGE\r\n\r\n" + ping)
    assert _statuses(resp) == [400] and resp.endswith(b'{"message": "Bad request syntax (\'GARBAGE\')"}\n')
    assert _statuses(_exchange(b"GET /_ping HTTP/2.0\r\n\r\n")) == [505]
    assert _statuses(_exchange(b"GET /_ping HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n")) == [431]
    assert _statuses(_exchange(b"GET /_ping HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n")) == [431]


def test_headers_are_case_insensitive() -> None:
    h = server._Headers()
    h["content-type"] = "application/json"
    assert h.get("Content-Type") == "application/json" and "CONTENT-TYPE" in h
    assert h["Content-type"] == "application/json" and h.get("Missing", "d") == "d"


# ---- the router ----------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,handler", [
    ("GET", "/containers/json", "list_"),
    ("GET", "/containers/abc/json", "inspect"),
    ("HEAD", "/_ping", "ping_head"),
    ("GET", "/images/localhost:5000/a/b:1/json", "inspect_image"),
    ("POST", "/containers/create", "create"),
    ("GET", "/exec/abc/json", "inspect"),
])
def test_router_picks_the_most_literal_route(method: str, path: str, handler: str) -> None:
    route, _ = router.match(method, path)
    assert route.handler.__name__ == handler


def test_router_404_and_405() -> None:
    with pytest.raises(router.HTTPError) as e:
        router.match("GET", "/nothing/here")
    assert e.value.status == 404
    with pytest.raises(router.HTTPError) as e:
        router.match("DELETE", "/_ping")
    assert e.value.status == 405


# ---- attach before start ---------------------------------------------------------------------

def test_attach_to_a_stopped_container_registers_before_the_response(tmp_path: Path) -> None:
    """The docker CLI starts the container the moment it reads the 101: the attach must wait
    for that start already when its handler returns, and be withdrawn if the 101 never went out."""
    from dockyard.api import containers_io, streams
    from dockyard.api.router import Hijack, Request

    eng = _engine(tmp_path)
    c = _record(eng, "att", "2024-01-01T00:00:00.000000001Z")

    def attach(query: str) -> Hijack:
        from urllib.parse import parse_qs

        req = Request("POST", f"/containers/{c.id}/attach", {"id": c.id}, parse_qs(query), {}, "1.45", eng)
        resp = containers_io.attach(req)
        assert isinstance(resp, Hijack)
        return resp

    resp = attach("stream=1&stdout=1&stderr=1")
    assert len(streams._pending.get(c.id, [])) == 1 and resp.abort is not None
    resp.abort()
    assert c.id not in streams._pending
    # a start that comes after the withdrawal connects nothing
    streams.connect_pending(c.id)(str(tmp_path / "no-shim-here"))
    # logs only (no stream): nothing waits for a start
    resp = attach("logs=1&stdout=1")
    assert c.id not in streams._pending and resp.abort is None


def test_record_watcher_out_of_watches_falls_back_to_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    eng = _engine(tmp_path)
    a = _record(eng, "a", "2024-01-01T00:00:00.000000001Z")
    query.watch_records(True)
    try:
        real_add = recordwatch.Watcher._add

        def add(self: object, path: str, mask: int) -> int:
            if path != eng.containers.dir_str:
                raise OSError(errno.ENOSPC, "no watches left")
            return real_add(self, path, mask)  # type: ignore[arg-type]

        monkeypatch.setattr(recordwatch.Watcher, "_add", add)
        assert _states(eng) == {"a": "created"}
        assert query._watchers[eng.containers.dir_str] is None, "stat from now on"
        c = eng.containers.load(a.id)
        c.state["Status"] = "exited"
        eng.containers.save(c)
        assert _states(eng) == {"a": "exited"}
    finally:
        query.watch_records(False)


# ---- logs ------------------------------------------------------------------------------------

def test_logs_follow_keeps_lines_written_between_the_read_and_the_follow(tmp_path: Path) -> None:
    """GET /containers/{id}/logs?follow=1 reads the log, then follows it: a line the container
    wrote in between (a quick `docker run` through the SDK) must come out once."""
    from dockyard.engine import logs

    eng = _engine(tmp_path)
    c = _record(eng, "logs", "2024-01-01T00:00:00.000000001Z", Status="running", Running=True, Pid=0)
    log = eng.containers.path(c.id) / f"{c.id}-json.log"
    c.doc["LogPath"] = str(log)
    eng.containers.save(c)

    def line(text: str) -> bytes:
        return json.dumps({"log": text + "\n", "stream": "stdout", "time": "2024-01-01T00:00:01Z"}).encode() + b"\n"

    log.write_bytes(line("one") + b'{"log": "par')  # and half a line, still being written
    gen = logs.read(eng, eng.containers.load(c.id), follow=True)
    assert next(gen).data == b"one\n"
    with open(log, "ab") as f:  # the rest of that line, and another, before the follow starts
        f.write(b'tial\\n", "stream": "stdout", "time": "2024-01-01T00:00:01Z"}\n' + line("two"))
    cur = eng.containers.load(c.id)
    cur.state.update(Running=False, Status="exited")
    eng.containers.save(cur)
    assert [e.data for e in gen] == [b"partial\n", b"two\n"]
