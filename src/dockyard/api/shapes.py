"""Docker JSON shapes built from engine records (translation only): ContainerSummary,
event filters, stream framing."""

from __future__ import annotations

import json
import struct
import time

from ..engine import query
from ..engine.records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, uint32 BE length] + data."""
    return struct.pack(">BxxxI", stream, len(data)) + data


_quoted = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # str -> "json string"


def summaries_json(engine: Any, cs: list[Container]) -> bytes:
    """`[ContainerSummary, ...]` encoded, as `GET /containers/json` answers without `size`.
    A summary changes with its record except for its Status ("Exited (0) 5 minutes ago"), so
    the rest is encoded once per version of the record (`query.memo`) and Status appended."""
    now = time.time()
    memo = query.memos(engine)
    parts = []
    for c in cs:
        m = memo(c)
        head = m.get("summary") if m is not None else None
        if head is None:
            s = container_summary(engine, c)
            del s["Status"]
            head = json.dumps(s).encode()[:-1] + b', "Status": '
            if m is not None:
                m["summary"] = head
        parts.append(head + _quoted(query.status_text(c, now)).encode() + b"}")
    return b"[" + b", ".join(parts) + b"]\n"


def container_summary(engine: Any, c: Container, size: bool = False) -> dict[str, Any]:
    ns = c.doc.get("NetworkSettings") or {}
    ports: list[dict[str, Any]] = []
    if c.running:
        for key, binds in (ns.get("Ports") or {}).items():
            port, _, proto = key.partition("/")
            if not binds:
                ports.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            for b in binds or []:
                ports.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                              "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    hc = c.host_config
    out: dict[str, Any] = {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.config.get("Image") or c.doc["Image"],
        "ImageID": c.doc["Image"], "Command": query.command_text(c),
        "Created": int(query.epoch(c.doc["Created"])), "Ports": ports,
        "Labels": c.config.get("Labels") or {}, "State": query.state_word(c), "Status": query.status_text(c),
        "HostConfig": {"NetworkMode": hc.get("NetworkMode") or "bridge"},
        "NetworkSettings": {"Networks": ns.get("Networks") or {}},
        "Mounts": query._mounts(c),
    }
    if size:
        try:
            rw = engine.layers.rw_size(c.id)
        except Exception:
            rw = 0
        try:
            base = engine.images.resolve(c.doc["Image"]).size
        except Exception:
            base = 0
        out["SizeRw"], out["SizeRootFs"] = rw, rw + base
    return out


# ---- events -------------------------------------------------------------------------------

def event_matches(ev: dict[str, Any], flt: dict[str, list[str]]) -> bool:
    """Docker's events filters: type, event, container, image, label, network, volume, scope."""
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    typ = ev.get("Type", "")
    action = ev.get("Action", "")
    aid = actor.get("ID", "")
    for key, vals in flt.items():
        if not vals:
            continue
        if key == "type" and typ not in vals:
            return False
        if key in ("event", "status") and not any(action == v or action.split(":", 1)[0] == v for v in vals):
            return False
        if key == "container" and not (typ == "container" and any(
                aid.startswith(v) or attrs.get("name") == v.lstrip("/") for v in vals)):
            return False
        if key == "image" and not any(attrs.get("image") == v or (typ == "image" and (aid == v or attrs.get("name") == v))
                                      for v in vals):
            return False
        if key == "label" and not all(_label_ok(attrs, v) for v in vals):
            return False
        if key in ("network", "volume") and not (typ == key and any(aid.startswith(v) or attrs.get("name") == v
                                                                    for v in vals)):
            return False
        if key == "scope" and "local" not in vals:
            return False
    return True


def _label_ok(attrs: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    return k in attrs and (not sep or attrs[k] == v)
