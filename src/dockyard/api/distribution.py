"""Pull (`POST /images/create?fromImage=`), push (`POST /images/{name}/push`) and
`GET /distribution/{name}/json`, over `engine.distribution` and `engine.distribution_push`.

Progress events go out as Docker's JSON messages ({"status", "id", "progressDetail",
"progress"}); a failure before the first message is an error status (404 for an unknown
image, as Docker), a later one an {"errorDetail", "error"} message that ends the stream.
"""

from __future__ import annotations

import hashlib
import json

from ..errors import DockyardError, InvalidArgument, NotFound, Unsupported
from . import jsonstream
from .router import Json, Request, Stream, route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


def _available() -> bool:
    try:
        from ..engine import distribution  # noqa: F401
    except ImportError:
        return False
    return True


class _JsonProgress:
    """`engine.distmeta.Progress` that writes each event as one JSON message."""

    def __init__(self, emit: jsonstream.Emit) -> None:
        self._emit = emit

    def emit(self, event: Any) -> None:
        if event.status == "Using default tag: latest":
            return  # the docker CLI prints that itself
        self._emit(jsonstream.message(**event.to_json()))


def _on_error(e: BaseException) -> bytes:
    if not isinstance(e, DockyardError):
        jsonstream.log.exception("distribution failed", exc_info=e)
    return jsonstream.error(str(e))


def _credentials(req: Request) -> tuple[str, str] | None:
    """(username, password) from X-Registry-Auth, if it carries any."""
    auth = req.auth_header() or {}
    user, password = str(auth.get("username") or ""), str(auth.get("password") or "")
    return (user, password) if user else None


def _with_credentials(creds: tuple[str, str] | None, call: Callable[[], object]) -> None:
    from ..engine.distmeta import REQUEST_CREDENTIALS

    token = REQUEST_CREDENTIALS.set(creds)
    try:
        call()
    finally:
        REQUEST_CREDENTIALS.reset(token)


def _ref(name: str, tag: str) -> str:
    if not tag:
        return name
    return f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"


def _has_tag(name: str) -> bool:
    from ..images.refs import parse_reference

    named = parse_reference(name, default_tag=False)
    return named.tag is not None or named.digest is not None


def pull(req: Request) -> Stream:
    """`POST /images/create?fromImage=NAME&tag=TAG[&platform=]`: an empty tag with a bare
    name pulls every tag of the repository, as Docker's API does."""
    if not _available():
        raise Unsupported("pulling images is not available in this build of Dockyard")
    from ..engine.distribution import pull as engine_pull

    name, tag = req.q("fromImage", "") or "", req.q("tag", "") or ""
    all_tags = not tag and not _has_tag(name)
    ref = _ref(name, tag)
    platform = req.q("platform", "") or None
    eng = req.engine
    creds = _credentials(req)

    def work(emit: jsonstream.Emit) -> None:
        _with_credentials(creds, lambda: engine_pull(eng, ref, platform, all_tags, _JsonProgress(emit)))

    return Stream(jsonstream.produce(work, _on_error, early_errors=True), "application/json")


@route("POST", "/images/{name:path}/push")
def push(req: Request) -> Stream:
    if not _available():
        raise Unsupported("pushing images is not available in this build of Dockyard")
    from ..engine.distribution_push import push as engine_push

    name, tag = req.params["name"], req.q("tag", "") or ""
    ref = _ref(name, tag)
    all_tags = not tag and not _has_tag(name)
    eng = req.engine
    creds = _credentials(req)

    def work(emit: jsonstream.Emit) -> None:
        progress = _JsonProgress(emit)
        pushed: list[str] = []
        _with_credentials(creds, lambda: pushed.append(engine_push(eng, ref, all_tags, progress)))
        digest = pushed[0] if pushed else ""
        if digest and not all_tags:
            emit(jsonstream.message(progressDetail={}, aux={"Tag": tag or "latest", "Digest": digest}))

    return Stream(jsonstream.produce(work, _on_error, early_errors=True), "application/json")


@route("GET", "/distribution/{name:path}/json")
def distribution_info(req: Request) -> Json:
    if not _available():
        raise NotFound("registry access is not available in this build of Dockyard")
    from ..engine.distribution import manifest_json

    got: list[bytes] = []
    _with_credentials(_credentials(req), lambda: got.append(manifest_json(req.engine, req.params["name"])))
    raw = got[0]
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument("the registry answered with a manifest that is not JSON") from None
    media = str(doc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json")
    platforms: list[dict[str, Any]] = []
    for m in doc.get("manifests") or []:
        p = m.get("platform") or {}
        if p:
            platforms.append({k: v for k, v in p.items() if k in ("architecture", "os", "variant", "os.version")})
    if not platforms:
        from ..images.config import host_architecture

        platforms = [{"architecture": host_architecture(), "os": "linux"}]
    return Json({"Descriptor": {"mediaType": media, "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                                "size": len(raw)},
                 "Platforms": platforms})
