"""Network endpoints: list (filters), inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations


from ..engine import netattach, networks
from ..errors import Conflict, InvalidArgument, NotFound
from .router import Empty, HTTPError, Json, Request, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _body(req: Request) -> dict[str, Any]:
    body = req.json() if req.body else {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid request body: not a JSON object")
    return body


def _str_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {key}: not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


def _check_scope(body: dict[str, Any]) -> None:
    """Scope, Ingress, ConfigOnly and ConfigFrom as a Docker that is not in a swarm answers
    them: local networks only; config-only networks (a swarm/macvlan feature) are not made."""
    from .system import SWARM_MESSAGE

    if body.get("Ingress"):
        raise HTTPError(403, "Ingress network can only be global scope network")
    scope = str(body.get("Scope") or "local")
    if scope == "swarm":
        raise HTTPError(403, "cannot create a swarm scoped network when swarm is not active")
    if scope == "global":
        raise HTTPError(503, SWARM_MESSAGE)
    if scope != "local":
        raise InvalidArgument(f"invalid scope {scope!r}: local, global or swarm")
    config_from = body.get("ConfigFrom")
    if body.get("ConfigOnly") or (isinstance(config_from, dict) and config_from.get("Network")):
        raise InvalidArgument("config-only networks (ConfigOnly, ConfigFrom) are not supported: "
                              "create the network with its subnet and options directly")


@route("GET", "/networks")
def list_networks(req: Request) -> Json:
    eng = req.engine
    return Json([networks.inspect(eng, net) for net in networks.list_networks(eng, req.filters())])


@route("GET", "/networks/{id}")
def inspect_network(req: Request) -> Json:
    eng = req.engine
    return Json(networks.inspect(eng, networks.store(eng).get(req.params["id"])))


@route("POST", "/networks/create")
def create_network(req: Request) -> Json:
    body = _body(req)
    name = str(body.get("Name") or "")
    if not name:
        raise InvalidArgument("network name is required")
    _check_scope(body)
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported")
    ipam = body.get("IPAM") or {}
    configs = [c for c in (ipam.get("Config") or []) if isinstance(c, dict)] if isinstance(ipam, dict) else []
    v4 = [c for c in configs if ":" not in str(c.get("Subnet") or "")]
    if len(v4) > 1:
        raise InvalidArgument("only one IPv4 pool per network is supported")
    pool = v4[0] if v4 else {}
    net = networks.create(req.engine, name, str(body.get("Driver") or "bridge"), str(pool.get("Subnet") or ""),
                          str(pool.get("Gateway") or ""), str(pool.get("IPRange") or ""),
                          bool(body.get("Internal")), _str_map(body, "Labels"), _str_map(body, "Options"),
                          attachable=bool(body.get("Attachable")))
    return Json({"Id": net.id, "Warning": ""}, status=201)


@route("DELETE", "/networks/{id}")
def remove_network(req: Request) -> Empty:
    eng = req.engine
    net = networks.store(eng).get(req.params["id"])
    try:
        networks.remove(eng, net)
    except Conflict as e:  # predefined, or still in use: Docker answers 403 Forbidden
        raise HTTPError(403, str(e)) from None
    return Empty(204)


def _container(req: Request, ref: str) -> Any:
    if not ref:
        raise InvalidArgument("container is required")
    try:
        return req.engine.containers.resolve(ref)
    except NotFound:
        raise NotFound(f"No such container: {ref}") from None


@route("POST", "/networks/{id}/connect")
def connect(req: Request) -> Empty:
    eng = req.engine
    body = _body(req)
    net = networks.store(eng).get(req.params["id"])
    c = _container(req, str(body.get("Container") or ""))
    ep = body.get("EndpointConfig") or {}
    ipam = (ep.get("IPAMConfig") or {}) if isinstance(ep, dict) else {}
    aliases = [str(a) for a in (ep.get("Aliases") or [])] if isinstance(ep, dict) else []
    with eng.containers.lock(c.id):
        c = eng.containers.load(c.id)
        netattach.connect(eng, c, net, str(ipam.get("IPv4Address") or ""), aliases)
    return Empty(200)


@route("POST", "/networks/{id}/disconnect")
def disconnect(req: Request) -> Empty:
    eng = req.engine
    body = _body(req)
    net = networks.store(eng).get(req.params["id"])
    c = _container(req, str(body.get("Container") or ""))
    with eng.containers.lock(c.id):
        c = eng.containers.load(c.id)
        netattach.disconnect(eng, c, net, bool(body.get("Force")))
    return Empty(200)


@route("POST", "/networks/prune")
def prune_networks(req: Request) -> Json:
    filters = req.filters()
    unknown = set(filters) - {"label"}
    if unknown:
        raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
    removed = networks.prune(req.engine, filters.get("label"))
    return Json({"NetworksDeleted": removed or None})
