"""Container endpoints: create, list, inspect, start/stop/restart/kill/pause/unpause, wait,
remove, rename, top, changes, update, prune. Streams (logs, attach, archive, export, stats)
are in `containers_io.py`."""

from __future__ import annotations

import contextlib
import json

from ..engine import control, files, lifecycle, query
from ..engine.records import Container
from ..errors import DockyardError, NotModified
from . import shapes, streams
from .router import Empty, HTTPError, Json, Raw, Request, Response, Stream, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator


def container(req: Request) -> Container:
    return req.engine.containers.resolve(req.params["id"])


# ---- create / list / inspect --------------------------------------------------------------

@route("POST", "/containers/create")
def create(req: Request) -> Response:
    from ..runtime.cgroups import warm

    warm.start()  # a start usually follows within ms: its cgroup move then skips an RCU grace period
    body = req.json_object()
    host_config = body.pop("HostConfig", None) or {}
    networking = body.pop("NetworkingConfig", None)
    if not isinstance(host_config, dict):
        raise HTTPError(400, "invalid HostConfig: expected an object")
    if not body.get("Image"):
        raise HTTPError(400, "No image specified")  # Docker: "config cannot be empty" / no image
    eps = (networking or {}).get("EndpointsConfig") if isinstance(networking, dict) else None
    if isinstance(eps, dict) and "default" in eps and host_config.get("NetworkMode") in (None, "", "default"):
        eps["bridge"] = eps.pop("default")  # the docker CLI names the default network "default"
    name = req.q("name") or None
    platform = req.q("platform") or ""
    if platform and not platform.startswith("linux"):
        raise HTTPError(400, f"image platform {platform!r} is not supported: this is a linux engine")
    c = lifecycle.create(req.engine, body, host_config, name, networking)
    return Json({"Id": c.id, "Warnings": []}, status=201)


_LIST_FILTERS = ("name", "status", "label", "ancestor", "exited", "id", "before", "since", "network", "volume",
                 "publish", "expose", "health", "isolation", "is-task")
#: filters Docker has that the engine's ps does not: applied to the records here
_RECORD_FILTERS = ("before", "since", "network", "volume", "publish", "expose", "health", "isolation", "is-task")
_HEALTH = ("starting", "healthy", "unhealthy", "none")


@route("GET", "/containers/json")
def list_(req: Request) -> Response:
    flt = req.filters()
    items = []
    for k, vals in flt.items():
        if k not in _LIST_FILTERS:
            raise HTTPError(400, f"invalid filter '{k}'")
        if k not in _RECORD_FILTERS:
            items += [f"{k}={v}" for v in vals]
    engine = req.engine
    limit = req.qint("limit", -1) or -1
    cs = query.list_containers(engine, req.qbool("all"), items, limit)
    if "before" in flt or "since" in flt:
        cs = _before_since(engine, cs, flt)
    for v in flt.get("health", []):
        if v not in _HEALTH:
            raise HTTPError(400, f"Unrecognised filter value for health: {v}")
    for v in flt.get("is-task", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise HTTPError(400, f"Invalid filter 'is-task={v}'")
    for key in ("network", "volume", "publish", "expose", "health", "isolation", "is-task"):
        if flt.get(key):
            cs = [c for c in cs if any(_has(c, key, v) for v in flt[key])]
    if req.qbool("size"):
        return Json([shapes.container_summary(engine, c, True) for c in cs])
    return Raw(shapes.summaries_json(engine, cs), "application/json")


def _before_since(engine: Any, cs: list[Container], flt: dict[str, list[str]]) -> list[Container]:
    out = cs
    for key in ("before", "since"):
        for ref in flt.get(key, []):
            pivot = engine.containers.resolve(ref)
            created = pivot.doc["Created"]
            out = [c for c in out if (c.doc["Created"] < created if key == "before" else c.doc["Created"] > created)]
    return out


def _has(c: Container, key: str, value: str) -> bool:
    """Docker's ps filters network=NAME|ID, volume=NAME|DEST, publish=PORT[/PROTO], expose=...,
    health (no health checks run here: every container is "none"), isolation ("default" on
    Linux) and is-task (swarm tasks: there are none)."""
    if key == "health":
        return value == str((c.state.get("Health") or {}).get("Status") or "none")
    if key == "isolation":
        return value == (c.host_config.get("Isolation") or "default")
    if key == "is-task":
        return value.lower() in ("false", "0")
    if key == "network":
        nets = (c.doc.get("NetworkSettings") or {}).get("Networks") or {}
        return any(value == name or (ep.get("NetworkID") or "").startswith(value) for name, ep in nets.items())
    if key == "volume":
        return any(value in (mp.get("Name"), mp.get("Destination"), mp.get("Source"))
                   for mp in (c.doc.get("MountPoints") or {}).values())
    port = value if "/" in value else value + "/tcp"
    if key == "expose":
        return port in (c.config.get("ExposedPorts") or {})
    ports = (c.doc.get("NetworkSettings") or {}).get("Ports") or {} if c.running else {}
    return any(b.get("HostPort") == port.split("/")[0] and k.endswith("/" + port.split("/")[1])
               for k, binds in ports.items() for b in binds or [])


@route("GET", "/containers/{id}/json")
def inspect(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    doc = query.inspect(engine, c)
    if req.qbool("size"):
        s = shapes.container_summary(engine, c, size=True)
        doc["SizeRw"], doc["SizeRootFs"] = s["SizeRw"], s["SizeRootFs"]
    return Json(doc)


# ---- state changes ----------------------------------------------------------------------------

@route("POST", "/containers/{id}/start")
def start(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    size = c.host_config.get("ConsoleSize")
    console = (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 and size[0] else None
    from ..runtime.cgroups import warm

    warm.start()
    try:
        lifecycle.start(engine, c, before_start=streams.connect_pending(c.id), console_size=console)
    except NotModified:
        return Empty(304)
    except BaseException as e:
        streams.fail_pending(c.id, str(e))
        if c.host_config.get("AutoRemove"):  # as Docker (and `dockyard run`): --rm cleans up a failed start
            with contextlib.suppress(DockyardError, OSError):
                lifecycle.remove(engine, engine.containers.load(c.id), force=True)
        raise
    finally:
        streams.notify()
    return Empty(204)


def _timeout(req: Request) -> int | None:
    return req.qint("t", None) if req.q("t") is not None else req.qint("timeout", None)


@route("POST", "/containers/{id}/stop")
def stop(req: Request) -> Response:
    engine = req.engine
    c = lifecycle.refresh(engine, container(req))
    if not c.running:
        return Empty(304)
    control.stop(engine, c, _timeout(req), req.q("signal") or None)
    streams.notify()
    return Empty(204)


@route("POST", "/containers/{id}/restart")
def restart(req: Request) -> Response:
    control.restart(req.engine, container(req), _timeout(req), req.q("signal") or None)
    streams.notify()
    return Empty(204)


@route("POST", "/containers/{id}/kill")
def kill(req: Request) -> Response:
    control.kill(req.engine, container(req), req.q("signal") or None)
    streams.notify()
    return Empty(204)


@route("POST", "/containers/{id}/pause")
def pause(req: Request) -> Response:
    control.pause(req.engine, container(req))
    return Empty(204)


@route("POST", "/containers/{id}/unpause")
def unpause(req: Request) -> Response:
    control.unpause(req.engine, container(req))
    return Empty(204)


@route("POST", "/containers/{id}/rename")
def rename(req: Request) -> Response:
    name = req.q("name")
    if not name:
        raise HTTPError(400, "Neither old nor new names may be empty")
    control.rename(req.engine, container(req), name)
    return Empty(204)


@route("DELETE", "/containers/{id}")
def remove(req: Request) -> Response:
    if req.qbool("link"):
        raise HTTPError(400, "Conflict, cannot remove the default link name of the container")
    lifecycle.remove(req.engine, container(req), force=req.qbool("force"), volumes=req.qbool("v"))
    streams.notify()
    return Empty(204)


@route("POST", "/containers/{id}/wait")
def wait(req: Request) -> Response:
    engine = req.engine
    c = container(req)
    condition = req.q("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HTTPError(400, f"invalid condition: {condition!r}")

    def gen() -> Iterator[bytes]:
        # headers go out first (the docker CLI waits for them before it starts the container)
        yield b""
        code = lifecycle.wait_condition(engine, c.id, condition, pause=streams.wait_change,
                                        exit_hint=streams.exit_seen)
        yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Stream(gen(), "application/json")


@route("POST", "/containers/prune")
def prune(req: Request) -> Response:
    flt = req.filters()
    until = None
    for k in flt:
        if k not in ("until", "label", "label!"):
            raise HTTPError(400, f"invalid filter '{k}'")
    if flt.get("until"):
        from ..engine.logs import parse_time

        until = parse_time(flt["until"][-1])
    removed, reclaimed = control.prune(req.engine, until, tuple(flt.get("label", [])),
                                         tuple(flt.get("label!", [])))
    return Json({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})


# ---- read-side -------------------------------------------------------------------------------

@route("GET", "/containers/{id}/top")
def top(req: Request) -> Response:
    args = (req.q("ps_args") or "").split()
    titles, rows = query.top(req.engine, container(req), args)
    return Json({"Titles": titles, "Processes": rows})


_KIND = {"C": 0, "A": 1, "D": 2}


@route("GET", "/containers/{id}/changes")
def changes(req: Request) -> Response:
    found = files.changes(req.engine, container(req))
    return Json([{"Path": ch.path, "Kind": _KIND[ch.kind.value]} for ch in found] or None)


@route("POST", "/containers/{id}/update")
def update(req: Request) -> Response:
    body = req.json_object()
    warnings = control.update(req.engine, container(req), body)
    return Json({"Warnings": warnings or []})
