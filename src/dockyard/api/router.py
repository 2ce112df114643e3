"""Routes, the request object, response values and the one error table of the Engine API.

Handlers are plain sync functions `(Request) -> Response` registered with `@route`; they only
translate (query/JSON in, engine call, Docker's JSON out). The server (`server.py`) owns the
sockets; this module owns what a request means and how an error becomes a status.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json as _json
import re
import socket
from typing import Any, BinaryIO, Callable, Iterator, Union

from .._record import dataclass
from .. import errors

#: handler modules the server imports; those not written yet are skipped
HANDLER_MODULES: tuple[str, ...] = (
    "dockyard.api.system", "dockyard.api.containers", "dockyard.api.containers_io", "dockyard.api.execs",
    "dockyard.api.images", "dockyard.api.build", "dockyard.api.volumes", "dockyard.api.networks",
    "dockyard.api.distribution",
)
#: modules that must exist (the server core's own)
REQUIRED_MODULES = ("dockyard.api.system", "dockyard.api.containers", "dockyard.api.containers_io",
                    "dockyard.api.execs")

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"


class HTTPError(Exception):
    """A response decided by the router or a handler directly: status + Docker's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---- the request -------------------------------------------------------------------

_FALSE = ("", "0", "no", "false", "none")


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    api_version: str
    engine: Any
    body: bytes = b""
    rfile: BinaryIO | None = None

    def q(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def qbool(self, name: str, default: bool = False) -> bool:
        """Docker's BoolValue: absent → `default`; "", "0", "no", "false", "none" → False;
        anything else ("1", "true", "True", …) → True."""
        v = self.q(name)
        if v is None:
            return default
        return v.strip().lower() not in _FALSE

    def qint(self, name: str, default: int | None) -> int | None:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise HTTPError(400, f"invalid value for {name}: {v!r}: not an integer") from None

    def json(self) -> Any:
        data = self.body
        if not data.strip():
            return None
        try:
            return _json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"invalid JSON: {e}") from None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object ({} when empty)."""
        got = self.json()
        if got is None:
            return {}
        if not isinstance(got, dict):
            raise HTTPError(400, "invalid JSON: expected an object")
        return got

    def filters(self) -> dict[str, list[str]]:
        raw = self.q("filters")
        if not raw:
            return {}
        try:
            obj = _json.loads(raw)
        except ValueError as e:
            raise HTTPError(400, f"invalid filter: {e}") from None
        if not isinstance(obj, dict):
            raise HTTPError(400, "invalid filter: expected an object")
        out: dict[str, list[str]] = {}
        for k, v in obj.items():
            if isinstance(v, dict):  # legacy {"k": {"v": true}}
                out[k] = [str(x) for x, on in v.items() if on]
            elif isinstance(v, list):
                out[k] = [str(x) for x in v]
            else:
                out[k] = [str(v)]
        return out

    def auth_header(self) -> dict[str, Any] | None:
        raw = self.headers.get("x-registry-auth")
        if not raw:
            return None
        try:
            pad = "=" * (-len(raw) % 4)
            got = _json.loads(base64.urlsafe_b64decode(raw + pad))
        except (ValueError, binascii.Error):
            return None
        return got if isinstance(got, dict) else None


# ---- responses ------------------------------------------------------------------------

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Json:
    obj: Any
    status: int = 200
    headers: Headers = ()


@dataclass(frozen=True)
class Empty:
    status: int = 204
    headers: Headers = ()


@dataclass(frozen=True)
class Raw:
    data: bytes
    content_type: str
    status: int = 200
    headers: Headers = ()


@dataclass(frozen=True)
class Stream:
    chunks: Iterator[bytes]
    content_type: str
    status: int = 200
    headers: Headers = ()


@dataclass(frozen=True)
class Hijack:
    run: Callable[[socket.socket, BinaryIO], None]
    content_type: str = "application/vnd.docker.raw-stream"
    #: answer 101 UPGRADED when the client asked for `Upgrade: tcp` (else 200 OK)
    upgrade: bool = True
    headers: Headers = ()
    #: a fixed status line instead (e.g. 101 "Switching Protocols" for a websocket)
    status: int = 0
    reason: str = ""
    #: called instead of `run` when the connection could not be handed over (client gone)
    abort: Callable[[], None] | None = None


Response = Union[Json, Empty, Raw, Stream, Hijack]
Handler = Callable[[Request], Response]


# ---- routing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    stream_body: bool = False
    #: literal characters in the pattern: more is a better match
    literal: int = 0


_ROUTES: list[Route] = []
#: the routes by their pattern's first path segment ("" for a pattern that starts with a parameter)
_BY_SEGMENT: dict[str, list[Route]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    out = ""
    pos = 0
    for m in re.finditer(r"\{(\w+)(?::(path))?\}", pattern):
        out += re.escape(pattern[pos:m.start()])
        out += f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    out += re.escape(pattern[pos:])
    return re.compile("^" + out + "/?$")


def _first_segment(path: str) -> str:
    return path[1:].partition("/")[0]


def route(method: str, pattern: str, *, stream_body: bool = False) -> Callable[[Handler], Handler]:
    """Register a sync handler for METHOD PATTERN ("/containers/{id}/json", "{name:path}")."""

    def register(fn: Handler) -> Handler:
        r = Route(method.upper(), pattern, _compile(pattern), fn, stream_body,
                  len(re.sub(r"\{[^}]*\}", "", pattern)))
        _ROUTES.append(r)
        first = _first_segment(pattern)
        _BY_SEGMENT.setdefault("" if "{" in first else first, []).append(r)
        return fn
    return register


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for a request, or HTTPError 404 (no path) / 405 (path, not method).
    A literal segment beats a parameter ("/containers/json" is not container "json")."""
    found: list[tuple[Route, dict[str, str]]] = []
    path_known = False
    candidates = _BY_SEGMENT.get(_first_segment(path), [])
    if "" in _BY_SEGMENT:
        candidates = candidates + _BY_SEGMENT[""]
    for r in candidates:
        m = r.regex.match(path)
        if not m:
            continue
        path_known = True
        if r.method == method or (method == "HEAD" and r.method == "GET"):
            found.append((r, m.groupdict()))
    if found:
        # most literal characters first; then exact method over HEAD-as-GET
        found.sort(key=lambda rp: (-rp[0].literal, rp[0].method != method))
        return found[0]
    if path_known:
        raise HTTPError(405, f"method {method} not allowed for {path}")
    raise HTTPError(404, "page not found")


_loaded = False


def load_handlers() -> list[str]:
    """Import the handler modules (once); returns the names of those that exist."""
    global _loaded
    got = []
    for name in HANDLER_MODULES:
        try:
            importlib.import_module(name)
            got.append(name)
        except ModuleNotFoundError as e:
            if name in REQUIRED_MODULES or e.name != name:
                raise
    _loaded = True
    return got


# ---- versions -------------------------------------------------------------------------

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def _vtuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


def split_version(path: str) -> tuple[str, str]:
    """(api version, path without the /vX.Y prefix); HTTPError 400 outside 1.24-1.45."""
    m = _VERSION_PREFIX.match(path)
    if not m:
        return API_VERSION, path
    version = f"{int(m.group(1))}.{int(m.group(2))}"
    if _vtuple(version) < _vtuple(MIN_API_VERSION):
        raise HTTPError(400, f"client version {version} is too old. Minimum supported API version is "
                             f"{MIN_API_VERSION}, please upgrade your client to a newer version")
    if _vtuple(version) > _vtuple(API_VERSION):
        raise HTTPError(400, f"client version {version} is too new. Maximum supported API version is "
                             f"{API_VERSION}")
    return version, m.group(3)


# ---- the one error table ----------------------------------------------------------------

_STATUS: dict[type[errors.DockyardError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidArgument: 400,
    errors.AlreadyExists: 409,
    errors.NotModified: 304,
    errors.Unsupported: 501,
    # Docker: a command that cannot be executed fails the start with 400 ("executable file
    # not found", "permission denied"), not a server fault
    errors.ExecFailed: 400,
    errors.FailedPrecondition: 409,
}
if hasattr(errors, "Unauthorized"):  # registry credentials refused
    _STATUS[errors.Unauthorized] = 401


def status_for(err: BaseException) -> int | None:
    """HTTP status for an error a handler raised; None means a server fault (500)."""
    if isinstance(err, HTTPError):
        return err.status
    for cls in type(err).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]  # type: ignore[index]
    if isinstance(err, errors.DockyardError):
        return 500
    return None


def error_body(message: str) -> bytes:
    return _json.dumps({"message": message}).encode() + b"\n"

