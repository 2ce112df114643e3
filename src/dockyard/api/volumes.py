"""Volume endpoints: list (filters), create, inspect, remove (409 while in use), prune."""

from __future__ import annotations


from ..engine import volumes
from ..errors import InvalidArgument
from .images import api_version
from .router import Empty, Json, Request, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def flat_filters(filters: dict[str, list[str]]) -> list[str]:
    """Docker's filter map as the engine's `key=value` items."""
    return [f"{k}={v}" for k, values in filters.items() for v in values]


def _str_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {key}: not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


@route("GET", "/volumes")
def list_volumes(req: Request) -> Json:
    vols = volumes.list_volumes(req.engine, flat_filters(req.filters()))
    return Json({"Volumes": [v.inspect() for v in vols], "Warnings": None})


@route("POST", "/volumes/create")
def create_volume(req: Request) -> Json:
    body = req.json() if req.body else {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid volume configuration: not a JSON object")
    v = volumes.create(req.engine, str(body.get("Name") or "") or None, str(body.get("Driver") or "local"),
                       _str_map(body, "DriverOpts"), _str_map(body, "Labels"))
    return Json(v.inspect(), status=201)


@route("GET", "/volumes/{name}")
def inspect_volume(req: Request) -> Json:
    return Json(volumes.get(req.engine, req.params["name"]).inspect())


@route("DELETE", "/volumes/{name}")
def remove_volume(req: Request) -> Empty:
    volumes.remove(req.engine, req.params["name"], req.qbool("force", False))
    return Empty(204)


@route("POST", "/volumes/prune")
def prune_volumes(req: Request) -> Json:
    # API < 1.42 (Docker < 23): all unused volumes; since, only anonymous ones unless all=true
    removed, size = volumes.prune(req.engine, api_version(req) < (1, 42), flat_filters(req.filters()))
    return Json({"VolumesDeleted": removed or None, "SpaceReclaimed": size})
