"""POST /build (the classic builder's JSON stream) and POST /build/prune.

Parameters as Docker's: dockerfile, t, buildargs, target, nocache, labels, q, networkmode,
pull (the FROM images are pulled again first), platform (this host's only: another is a
400), cachefrom (images whose steps answer the build's, as the classic builder), rm/forcerm (build containers are
always removed), remote (refused: no remote contexts offline).

The request body is the context as a tar; it is unpacked into a temporary directory
before the response starts, so a bad context or Dockerfile is a plain 400. The build then
runs in a producer thread (`jsonstream.produce`): the builder's log lines become
``{"stream": "...\\n"}``, RUN output ``{"stream": ...}``, the result ``{"aux": {"ID": ...}}``
and "Successfully built/tagged", a failure ``{"errorDetail": ..., "error": ...}``.
"""

from __future__ import annotations

import codecs
import io
import json
import shutil
import tempfile
from .._path import Path
from typing import IO, Any, cast

from ..errors import DockyardError, InvalidArgument
from ..images.tarfs_stream import read_head
from . import jsonstream
from .router import HTTPError, Json, Request, Stream, route

_NETWORK_MODES = {"": "default", "default": "default", "bridge": "default", "host": "host", "none": "none"}


def _json_map(req: Request, name: str) -> dict[str, str]:
    raw = req.q(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: not JSON: {raw!r}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name}: not a JSON object")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _registry_config(req: Request) -> dict[str, tuple[str, str]]:
    """X-Registry-Config: base64url JSON {registry: {"username", "password"}} that the docker
    CLI and SDK send with a build, for the pulls of its base images."""
    raw = req.headers.get("x-registry-config")
    if not raw:
        return {}
    import base64
    import binascii

    from ..registry.auth import server_key

    try:
        got = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise HTTPError(400, "invalid X-Registry-Config header") from None
    out: dict[str, tuple[str, str]] = {}
    for key, entry in (got.items() if isinstance(got, dict) else ()):
        if isinstance(entry, dict) and entry.get("username"):
            out[server_key(str(key))] = (str(entry["username"]), str(entry.get("password") or ""))
    return out


def _tags(req: Request) -> list[str]:
    from ..images.refs import parse_reference

    tags = [t for t in req.query.get("t") or [] if t]
    for t in tags:
        if parse_reference(t).digest is not None:
            raise InvalidArgument(f"invalid reference format: {t}: a tag cannot name a digest")
    return tags


def _options(req: Request) -> Any:
    from ..build.executor import BuildOptions

    build_args = _json_map(req, "buildargs")
    epoch: int | None = None
    if build_args.get("SOURCE_DATE_EPOCH"):
        try:
            epoch = int(build_args["SOURCE_DATE_EPOCH"])
        except ValueError:
            raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {build_args['SOURCE_DATE_EPOCH']!r}") from None
    mode = req.q("networkmode", "") or ""
    if mode.startswith("container:"):
        raise InvalidArgument(f"network mode {mode!r} is not supported for build")
    network = _NETWORK_MODES.get(mode, mode)  # else a user network by name
    return BuildOptions(build_args=build_args, target=req.q("target", ""), no_cache=req.qbool("nocache", False),
                        labels=_json_map(req, "labels"), network=network, source_date_epoch=epoch,
                        quiet=req.qbool("q", False), cache_from=tuple(_cache_from(req)))


def _check_platform(req: Request) -> None:
    """`platform`: this host's own is fine (Docker's default); another one would need images
    and an emulator for that architecture, so it is refused up front with a 400."""
    from ..engine.distmeta import parse_platform

    spec = req.q("platform", "") or ""
    if not spec:
        return
    want, host = parse_platform(spec), parse_platform(None)
    if want != host:
        name = "/".join(x for x in host if x)
        raise InvalidArgument(f'platform "{spec}" is not supported: this engine builds for its own platform '
                              f"({name}) only")


def _cache_from(req: Request) -> list[str]:
    """`cachefrom`: a JSON array of image references, the images whose steps may answer the
    build's (build/cachefrom.py); checked as Docker does."""
    raw = req.q("cachefrom", "") or ""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid cachefrom: not JSON: {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument("invalid cachefrom: expected a JSON array of image references")
    return value


def _is_archive(head: bytes) -> bool:
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar" or not head


class _Prefixed(io.RawIOBase):
    """`head` (already read) and then the rest of `f`."""

    def __init__(self, head: bytes, f: IO[bytes]) -> None:
        self._head, self._f = head, f

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._f.read(len(b))
        b[:len(data)] = data
        return len(data)


@route("POST", "/build", stream_body=True)
def build(req: Request) -> Stream:
    from ..engine import buildrun

    if req.q("remote", ""):
        raise InvalidArgument("remote build contexts are not supported offline: send the context as a tar")
    tags = _tags(req)
    opts = _options(req)
    _check_platform(req)
    pull = req.qbool("pull", False)
    eng = req.engine
    eng.paths.tmp.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=eng.paths.tmp))
    try:
        name = req.q("dockerfile", "") or "Dockerfile"
        body = cast(IO[bytes], req.rfile)
        head = read_head(body, 512)
        if _is_archive(head):
            buildrun.extract_context(cast(IO[bytes], _Prefixed(head, body)), tmp)
        else:  # `docker build - < Dockerfile`: the body is the Dockerfile, the context empty
            (tmp / "Dockerfile").write_bytes(head + body.read())
            name = "Dockerfile"
        text = buildrun.read_dockerfile(tmp, name)
        from ..build.parser import parse

        df = parse(text)
        matcher = buildrun.ignore_matcher(tmp, tmp / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    auths = _registry_config(req)

    def work(emit: jsonstream.Emit) -> None:
        from ..engine.distmeta import REQUEST_CREDENTIALS

        if auths:  # this producer thread's context: FROM pulls use the client's credentials
            REQUEST_CREDENTIALS.set(auths)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def log(line: str) -> None:
            if not opts.quiet:
                emit(jsonstream.stream_line(line + "\n"))

        def output(data: bytes) -> None:
            text = decoder.decode(data)
            if text and not opts.quiet:
                emit(jsonstream.stream_line(text))

        try:
            image_id = buildrun.build(eng, tmp, df, opts, matcher, log, output, tags, pull=pull)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        emit(jsonstream.message(aux={"ID": image_id}))
        if opts.quiet:
            emit(jsonstream.stream_line(image_id + "\n"))
            return
        emit(jsonstream.stream_line(f"Successfully built {image_id.split(':', 1)[-1][:12]}\n"))
        from ..images.refs import parse_reference

        for t in tags:
            emit(jsonstream.stream_line(f"Successfully tagged {parse_reference(t).familiar()}\n"))

    def on_error(e: BaseException) -> bytes:
        code = getattr(e, "code", 0)
        if isinstance(e, DockyardError) and isinstance(code, int) and code:
            # a failed RUN: its exit code, which `docker build` exits with, as Docker's
            return jsonstream.message(errorDetail={"code": code, "message": str(e)}, error=str(e))
        if isinstance(e, DockyardError):
            return jsonstream.error(str(e))
        jsonstream.log.exception("build failed", exc_info=e)
        return jsonstream.error(f"internal error: {e}")

    return Stream(jsonstream.produce(work, on_error), "application/json")


@route("POST", "/build/prune")
def prune_build_cache(req: Request) -> Json:
    from ..build.prune import prune_build_cache

    eng = req.engine
    report = prune_build_cache(eng.paths.root / "build", req.qbool("all", False), eng.images.exists)
    return Json({"CachesDeleted": report.deleted, "SpaceReclaimed": report.reclaimed})
