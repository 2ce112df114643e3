"""System endpoints: _ping, version, info, events, system/df, auth, plugins, and the swarm
endpoints that answer as a Docker that is not a swarm manager."""

from __future__ import annotations

import json
import time

from ..engine import events as ev_journal
from ..engine import logs as logtime
from ..engine import query, system
from . import shapes
from .router import HTTPError, Json, Raw, Request, Response, Stream, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

PING_HEADERS = (("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
                ("Pragma", "no-cache"), ("Swarm", "inactive"))


@route("GET", "/_ping")
def ping(req: Request) -> Response:
    return Raw(b"OK", "text/plain; charset=utf-8", headers=PING_HEADERS)


@route("HEAD", "/_ping")
def ping_head(req: Request) -> Response:
    return Raw(b"", "text/plain; charset=utf-8", headers=PING_HEADERS)


@route("GET", "/version")
def version(req: Request) -> Response:
    return Json(system.version())


@route("GET", "/info")
def info(req: Request) -> Response:
    return Json(system.info(req.engine))


def _time_param(req: Request, name: str) -> float | None:
    v = req.q(name)
    if not v:
        return None
    try:
        return logtime.parse_time(v)
    except Exception:
        raise HTTPError(400, f"invalid value for {name}: {v}") from None


@route("GET", "/events")
def events(req: Request) -> Response:
    since = _time_param(req, "since")
    until = _time_param(req, "until")
    flt = req.filters()
    for key in flt:
        if key not in ("type", "event", "container", "image", "label", "network", "volume", "scope",
                       "status", "daemon", "node", "service", "secret", "config", "plugin"):
            raise HTTPError(400, f"invalid filter '{key}'")
    engine = req.engine

    def gen() -> Iterator[bytes]:
        def out(e: ev_journal.Event) -> bytes:
            return json.dumps(e.doc).encode() + b"\n"

        now = time.time()
        # subscribe first, then replay: nothing is lost between the two
        live = ev_journal.follow(engine) if until is None or until > now else None
        last = 0
        if since is not None:
            for e in ev_journal.read(engine, since):
                if until is not None and e.time_nano > until * 1e9:
                    break
                if shapes.event_matches(e.doc, flt):
                    last = max(last, e.time_nano)
                    yield out(e)
        if live is None:
            return
        try:
            for e in live:
                if e is None:
                    if until is not None and time.time() > until:
                        return
                    yield b""  # a tick: the server checks the client is still there
                    continue
                if e.time_nano <= last:
                    continue  # already sent in the replay
                if until is not None and e.time_nano > until * 1e9:
                    return
                if shapes.event_matches(e.doc, flt):
                    yield out(e)
        finally:
            live.close()

    return Stream(gen(), "application/json")


@route("GET", "/system/df")
def system_df(req: Request) -> Response:
    engine = req.engine
    du = system.disk_usage(engine)
    sizes = du.pop("ContainerSizes")
    containers = []
    for c in query.list_containers(engine, all_=True):
        s = shapes.container_summary(engine, c)
        s["SizeRw"] = sizes.get(c.id, 0)
        s["SizeRootFs"] = 0
        containers.append(s)
    types = req.query.get("type") or []
    body: dict[str, Any] = {"LayersSize": du["LayersSize"], "Images": du["Images"], "Containers": containers,
                            "Volumes": du["Volumes"], "BuildCache": []}
    if types:
        keep = {"container": "Containers", "image": "Images", "volume": "Volumes", "build-cache": "BuildCache"}
        body = {k: v for k, v in body.items() if k == "LayersSize" or k in {keep.get(t) for t in types}}
    return Json(body)


@route("POST", "/auth")
def auth(req: Request) -> Response:
    cfg = req.json_object()
    system.check_login(str(cfg.get("serveraddress") or ""), str(cfg.get("username") or ""),
                       str(cfg.get("password") or ""))
    return Json({"Status": "Login Succeeded", "IdentityToken": ""})


@route("GET", "/plugins")
def plugins(req: Request) -> Response:
    return Json([])


SWARM_MESSAGE = ("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to "
          "connect this node to swarm and try again.")


def _not_swarm(req: Request) -> Response:
    raise HTTPError(503, SWARM_MESSAGE)


for _m, _p in (("GET", "/swarm"), ("POST", "/swarm/init"), ("POST", "/swarm/join"), ("POST", "/swarm/leave"),
               ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
               ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"), ("POST", "/nodes/{id}/update"),
               ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
               ("DELETE", "/services/{id}"), ("POST", "/services/{id}/update"), ("GET", "/services/{id}/logs"),
               ("GET", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"),
               ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
               ("DELETE", "/secrets/{id}"), ("POST", "/secrets/{id}/update"),
               ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"),
               ("DELETE", "/configs/{id}"), ("POST", "/configs/{id}/update")):
    route(_m, _p)(_not_swarm)

