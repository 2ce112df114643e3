"""What pull and push share: progress events, the registry session, distribution metadata.

Progress is a stream of Docker's JSONMessage-like `Event`s handed to a `Progress` (the CLI
renders them as Docker does; the API server can send them as JSON). The metadata is
Docker's, under ``image/overlay2/distribution/``::

    diffid-by-digest/sha256/<blob hex>         "sha256:<diffID>" of a pulled/pushed blob
    v2metadata-by-diffid/sha256/<diffID hex>   [{"Digest", "SourceRepository", "HMAC"}]

plus Dockyard's compressed-layer cache, so a layer is compressed once for every push::

    blobs/sha256/<hex>                                   a compressed layer
    compressed-by-diffid/<gzip|zstd>/sha256/<diff hex>   {"Digest", "Size"}
"""

from __future__ import annotations

import contextvars
import os
import time
from .. import _json
from .._path import Path

from .._record import dataclass
from .._util import atomic_write
from ..errors import FailedPrecondition, InvalidArgument
from ..images._lock import store_lock
from ..paths import Paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import Any, Callable, Collection, Protocol, Sequence, TypeVar

    T = TypeVar("T")
    R = TypeVar("R")
else:
    Protocol = object  # Progress: a structural interface for type checkers


#: Docker keeps at most this many v2metadata entries per diffID
_MAX_V2METADATA = 50
#: seconds between two "Downloading"/"Pushing"/"Extracting" updates of one layer
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class Event:
    """One progress message (Docker's JSONMessage: status, id, progressDetail)."""

    status: str
    id: str = ""
    current: int | None = None
    total: int | None = None

    @property
    def has_counts(self) -> bool:
        return self.current is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.current is not None:
            detail: dict[str, int] = {"current": self.current}
            if self.total:
                detail["total"] = self.total
            out["progressDetail"] = detail
            out["progress"] = progress_bar(self.current, self.total or 0, 200)
        elif self.id:
            out["progressDetail"] = {}
        if self.id:
            out["id"] = self.id
        return out


class Progress(Protocol):
    def emit(self, event: Event) -> None: ...


class NullProgress:
    def emit(self, event: Event) -> None:
        pass


def human(n: float) -> str:
    """units.HumanSize (4 significant digits, decimal units)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int, width: int) -> str:
    """Docker's JSONProgress.String: ``[=====>     ] 1.2MB/3.4MB`` (the bar only on a
    terminal wider than 110 columns)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    box = ""
    if width > 110:
        box = f"[{'=' * pct}>{' ' * max(50 - pct, 0)}] "
    numbers = f"{human(current):>8}/{human(total)}" if current <= total else f"{human(current):>8}"
    return box + numbers


class Throttled:
    """Calls `emit` for counted events at most every PROGRESS_INTERVAL (and at the end)."""

    def __init__(self, progress: Progress, lid: str, status: str, total: int,
                 stop: threading.Event | None = None) -> None:
        self.progress, self.lid, self.status, self.total = progress, lid, status, total
        self.stop = stop
        self._last = 0.0

    def __call__(self, current: int) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Cancelled()
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL or current >= self.total:
            self._last = now
            self.progress.emit(Event(self.status, self.lid, current, self.total))


class Cancelled(Exception):
    """Another layer failed: this worker stops."""


def moving_data() -> None:
    """Pull and push start with the cyclic garbage collector off, as short CLI commands do (an
    up-to-date one is over in tens of ms, and the collector's passes over what the imports
    made cost it several); it is turned back on here, once layers move."""
    import gc

    gc.enable()


def run_parallel(fn: Callable[[T], R], items: Sequence[T], limit: int, stop: threading.Event,
                 name: str = "worker") -> list[R]:
    """`fn` on every item, on up to `limit` threads; the results in the items' order. The
    first failure sets `stop` (workers take no new item; running ones may look at it) and,
    once every thread has ended, the failure of the earliest item is raised. (Plain threads:
    concurrent.futures costs more to import than a warm push takes.)"""
    import threading  # here: an up-to-date push runs nothing in parallel

    results: list[Any] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()
    pending = iter(range(len(items)))

    def worker() -> None:
        while not stop.is_set():
            with lock:
                i = next(pending, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # noqa: B902 - handed to the caller's thread
                with lock:
                    errors[i] = e
                stop.set()

    threads = [threading.Thread(target=worker, name=f"{name}-{n}", daemon=True)
               for n in range(min(max(limit, 1), len(items)))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except BaseException:
        stop.set()
        for t in threads:
            if t.ident is not None:
                t.join()
        raise
    if errors:
        raise errors[min(errors)]
    return results


def parse_platform(spec: str | None) -> tuple[str, str, str | None]:
    """``os/arch[/variant]`` (or this host's platform for None)."""
    from ..images.config import host_architecture, host_variant

    if not spec:
        return "linux", host_architecture(), host_variant()
    parts = spec.lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f'"{spec}": unknown operating system or architecture: invalid argument')
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else None
    if arch == "arm64" and variant == "v8":
        variant = None
    return parts[0], arch, variant


#: when set, only registries on this host are contacted (the test suite sets it)
LOOPBACK_ONLY_ENV = "DOCKYARD_REGISTRY_LOOPBACK_ONLY"


def check_reachable(domain: str) -> None:
    """Refuse a registry off this host while LOOPBACK_ONLY_ENV is set."""
    if not os.environ.get(LOOPBACK_ONLY_ENV):
        return
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    host = host.strip("[]")
    if host == "localhost" or host == "::1" or host.startswith("127."):
        return
    raise FailedPrecondition(f"registry {domain} is not on this host and {LOOPBACK_ONLY_ENV} is set")


#: credentials a caller gives for its own calls, used instead of the stored ones while set:
#: (username, password) for whichever registry (the Engine API's X-Registry-Auth header), or
#: {registry host: (username, password)} (a build's X-Registry-Config, one pair per registry)
REQUEST_CREDENTIALS: contextvars.ContextVar[tuple[str, str] | dict[str, tuple[str, str]] | None] = \
    contextvars.ContextVar("dockyard_registry_credentials", default=None)


def _given_credentials(domain: str) -> tuple[str, str] | None:
    given = REQUEST_CREDENTIALS.get()
    if not isinstance(given, dict):
        return given
    from ..registry.auth import server_key

    return given.get(server_key(domain))


def registry_session(domain: str, repository: str, actions: str) -> Any:
    """A RegistryClient for `domain/repository` with the daemon's settings and the user's
    credentials (or those of REQUEST_CREDENTIALS)."""
    check_reachable(domain)
    from ..registry.auth import StaticCredentials, load_credentials
    from ..registry.client import RegistryClient

    config = registry_config()
    given = _given_credentials(domain)
    creds: Any = StaticCredentials(*given) if given else load_credentials(config)
    return RegistryClient(domain, repository, config, creds, actions=actions,
                          hints_dir=str(Paths.from_env().runroot / "registry"))


def registry_config() -> Any:
    from .._util import daemon_config
    from ..registry.config import RegistryConfig

    return RegistryConfig.from_daemon_json(daemon_config())


def _hex(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    if alg != "sha256" or len(hexpart) != 64:
        raise InvalidArgument(f"unsupported digest: {digest}")
    return hexpart


@dataclass(frozen=True)
class V2Metadata:
    digest: str
    source_repository: str  # full name: "localhost:5000/x", "docker.io/library/busybox"


@dataclass(frozen=True)
class CompressedBlob:
    digest: str
    size: int
    path: Path


class DistributionStore:
    """Docker's distribution metadata and Dockyard's compressed-layer cache."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.root = paths.image_root / "distribution"
        self.blobs = self.root / "blobs" / "sha256"

    def diff_id_of(self, blob_digest: str) -> str | None:
        try:
            return (self.root / "diffid-by-digest" / "sha256" / _hex(blob_digest)).read_text().strip()
        except OSError:
            return None

    def v2metadata(self, diff_id: str) -> list[V2Metadata]:
        try:
            raw = _json.loads((self.root / "v2metadata-by-diffid" / "sha256" / _hex(diff_id)).read_bytes())
        except (OSError, ValueError):
            return []
        out = []
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, dict) and item.get("Digest") and item.get("SourceRepository"):
                out.append(V2Metadata(str(item["Digest"]), str(item["SourceRepository"])))
        return out

    def record(self, diff_id: str, blob_digest: str, source_repository: str) -> None:
        """Remember that `blob_digest` (a compressed form of `diff_id`) is in that repository
        (no write when it is already the latest entry: warm pulls and pushes stay read-only)."""
        if self.diff_id_of(blob_digest) == diff_id:
            last = self.v2metadata(diff_id)[-1:]
            if last and last[0] == V2Metadata(blob_digest, source_repository):
                return
        atomic_write(self.root / "diffid-by-digest" / "sha256" / _hex(blob_digest), diff_id,
                     durable=False)
        with store_lock(self.paths):
            items = [m for m in self.v2metadata(diff_id)
                     if not (m.digest == blob_digest and m.source_repository == source_repository)]
            items.append(V2Metadata(blob_digest, source_repository))
            items = items[-_MAX_V2METADATA:]
            doc = [{"Digest": m.digest, "SourceRepository": m.source_repository, "HMAC": ""} for m in items]
            atomic_write(self.root / "v2metadata-by-diffid" / "sha256" / _hex(diff_id),
                         _json.dumps(doc), durable=False)

    def compressed(self, diff_id: str, compression: str) -> CompressedBlob | None:
        """The cached compressed blob of `diff_id`, if it is still whole."""
        try:
            doc = _json.loads(self._map(diff_id, compression).read_bytes())
            digest, size = str(doc["Digest"]), int(doc["Size"])
            path = self.blobs / _hex(digest)
            if path.stat().st_size == size:
                return CompressedBlob(digest, size, path)
        except (OSError, ValueError, KeyError, TypeError, InvalidArgument):
            pass
        return None

    def keep_compressed(self, diff_id: str, compression: str, digest: str, size: int) -> None:
        atomic_write(self._map(diff_id, compression),
                     _json.dumps({"Digest": digest, "Size": size}), durable=False)

    def prune_compressed(self, live_diff_ids: Callable[[], set[str]],
                         known_live: Collection[str] = ()) -> int:
        """Drop cached compressed blobs whose layer is gone from the store; returns how many.
        `live_diff_ids` (the store's layers: a read of each) is called only if the cache has
        an entry that is not for one of `known_live` (the layers being pushed, say)."""
        removed = 0
        maps = os.path.join(self.root, "compressed-by-diffid")
        entries: list[tuple[str, str]] = []  # (path, diff ID)
        try:
            kinds = os.listdir(maps)
        except OSError:
            kinds = []
        for kind in kinds:
            d = os.path.join(maps, kind, "sha256")
            try:
                entries.extend((os.path.join(d, n), "sha256:" + n) for n in os.listdir(d))
            except OSError:
                continue
        if all(diff_id in known_live for _p, diff_id in entries):
            return 0
        live = live_diff_ids()
        for path, diff_id in entries:
            if diff_id in live:
                continue
            try:
                with open(path, "rb") as f:
                    digest = str(_json.loads(f.read())["Digest"])
                os.unlink(os.path.join(self.blobs, _hex(digest)))
            except (OSError, ValueError, KeyError, TypeError, InvalidArgument):
                pass
            try:
                os.unlink(path)
                removed += 1
            except OSError:
                pass
        return removed

    def _map(self, diff_id: str, compression: str) -> Path:
        return self.root / "compressed-by-diffid" / compression / "sha256" / _hex(diff_id)


def login(host: str, user: str, password: str) -> str:
    """Check the credentials against `host`'s registry, then save them; returns the file
    they went into when stored in it unencrypted ('' when a credential helper keeps them)."""
    from ..registry.auth import StaticCredentials, load_credentials
    from ..registry.client import RegistryClient

    check_reachable(host)
    config = registry_config()
    RegistryClient(host, "", config, StaticCredentials(user, password), actions="pull").check_login()
    store = load_credentials(config)
    store.save(host, user, password)
    try:  # Docker warns when the password went into the file (not to a credential helper)
        saved = _json.loads(Path(config.credentials_path).read_bytes())["auths"][_server_key(host)]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return str(config.credentials_path) if isinstance(saved, dict) and saved.get("auth") else ""


def logout(host: str) -> bool:
    """Forget `host`'s credentials; False when there were none."""
    from ..registry.auth import load_credentials

    return bool(load_credentials(registry_config()).erase(host))


def _server_key(host: str) -> str:
    from ..registry.auth import server_key

    return server_key(host)
