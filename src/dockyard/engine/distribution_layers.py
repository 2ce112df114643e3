"""Pull's layer pipeline: download, extract and commit layers, all three overlapping.

* Downloads run in parallel (``max_concurrent_downloads``) into
  ``<root>/tmp/blobs/<hex>.partial`` (continued with a Range request by a later pull when
  this one is interrupted), renamed ``<hex>.blob`` once verified; a per-blob flock keeps two
  pulls of one blob from writing the same file.
* Each layer is extracted while it downloads, by following its partial file
  (`_Tail`), into its own unlinked directory (`LayerStore.prepare`): a layer's diff
  directory does not depend on the layers under it, so layers extract in parallel (Docker
  extracts them one by one). The bytes followed must hash to the blob's digest and the
  download must have been verified before the extraction ends; if not (the partial file was
  replaced, or the download failed) the layer is extracted again from the verified blob, or
  the download's error (naming the digest) is raised.
* The main thread commits the prepared layers strictly in chain order
  (`LayerStore.commit_prepared`), each one only if its diffID is the one the image config
  names, and keeps a tar-split record of it so that push can rebuild the very same tar.
* On any failure every prepared, uncommitted layer is removed; the layers already committed
  stay (as Docker's do), and the partial files stay for the next pull.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from .._path import Path

from .._record import dataclass, field
from .._util import atomic_write
from ..errors import DockyardError, FailedPrecondition, Unsupported
from ..images.layers import PreparedLayer, chain_ids
from ..images.refs import Reference
from .core import Engine
from .distmeta import Cancelled, DistributionStore, Event, Progress, Throttled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Iterator

#: downloads not continued for this long are dropped (an abandoned pull's left-overs)
STALE_DOWNLOAD_SECONDS = 7 * 24 * 3600


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


@dataclass(frozen=True)
class _Extracted:
    prepared: PreparedLayer
    record: list[Any] = field(repr=False)  # the tar-split items
    record_digest: str  # sha256 of the tar the record describes


def fetch_layers(engine: Engine, client: Any, named: Reference, layers: tuple[Any, ...],
                 diff_ids: list[str], progress: Progress) -> None:
    """Make the chain of `diff_ids` present in the layer store (see the module doc)."""
    chains = chain_ids(diff_ids)
    dist = DistributionStore(engine.paths)
    have = 0
    while have < len(chains) and engine.layers.exists(chains[have]):
        have += 1
    for desc in layers[:have]:
        progress.emit(Event("Already exists", _short(desc.digest)))
    todo = list(range(have, len(chains)))
    if todo:
        _fetch(engine, client, named, layers, diff_ids, chains, todo, dist, progress)
    for desc, diff_id in zip(layers[:have], diff_ids):
        dist.record(diff_id, desc.digest, named.name)


def _fetch(engine: Engine, client: Any, named: Reference, layers: tuple[Any, ...], diff_ids: list[str],
           chains: list[str], todo: list[int], dist: DistributionStore, progress: Progress) -> None:
    blobs = engine.paths.tmp / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    _sweep(blobs)
    limit = max(1, int(getattr(client.config, "max_concurrent_downloads", 3) or 3))
    for i in todo:
        progress.emit(Event("Pulling fs layer", _short(layers[i].digest)))
    for i in todo[limit:]:
        progress.emit(Event("Waiting", _short(layers[i].digest)))
    stop = threading.Event()
    wake = threading.Condition()
    downloader = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="pull")
    extractor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="extract")
    downloads: dict[int, Future[IO[bytes]]] = {}
    extracts: dict[int, Future[_Extracted]] = {}
    try:
        for i in todo:
            downloads[i] = downloader.submit(_download, client, blobs, layers[i], progress, stop, wake)
        for i in todo:
            extracts[i] = extractor.submit(_extract, engine, downloads[i], blobs, layers[i], progress, wake)
        parent = chains[todo[0] - 1] if todo[0] else None
        for i in todo:
            done = extracts.pop(i).result()
            if done.prepared.diff_id != diff_ids[i]:
                engine.layers.discard_prepared(done.prepared)
                raise FailedPrecondition(f"layer {layers[i].digest} has diffID {done.prepared.diff_id}, but "
                                         f"the image config says {diff_ids[i]}")
            layer = engine.layers.commit_prepared(done.prepared, parent)
            _keep_record(engine, layer, done)
            _discard(blobs, layers[i].digest)
            dist.record(diff_ids[i], layers[i].digest, named.name)
            progress.emit(Event("Pull complete", _short(layers[i].digest)))
            parent = layer.chain_id
    except BaseException:
        stop.set()
        with wake:
            wake.notify_all()
        downloader.shutdown(wait=True, cancel_futures=True)
        extractor.shutdown(wait=True, cancel_futures=True)
        for fut in extracts.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                engine.layers.discard_prepared(fut.result().prepared)
        for dl in downloads.values():
            if dl.done() and not dl.cancelled() and dl.exception() is None:
                dl.result().close()
        raise
    finally:
        downloader.shutdown(wait=True)
        extractor.shutdown(wait=True)


def _keep_record(engine: Engine, layer: Any, done: _Extracted) -> None:
    """The tar-split record, beside the layer (as `tarsplit.register_recorded` keeps it)."""
    from ..images.tarsplit import sidecar_path

    path = sidecar_path(engine.layers, layer.chain_id)
    if done.record_digest == layer.diff_id and not os.path.exists(path):
        lines = b"".join(json.dumps(i, separators=(",", ":")).encode() + b"\n" for i in done.record)
        with contextlib.suppress(OSError):
            atomic_write(path, gzip.compress(lines, mtime=0), mode=0o600)


# ---- downloads ------------------------------------------------------------------------


@contextlib.contextmanager
def _blob_lock(blobs: Path, digest: str) -> Iterator[None]:
    """Serialise pulls of one blob across processes (the partial file is shared); one lock
    file per first byte of the digest, so lock files do not pile up."""
    locks = blobs / "locks"
    locks.mkdir(exist_ok=True)
    fd = os.open(locks / digest.split(":", 1)[-1][:2], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _download(client: Any, blobs: Path, desc: Any, progress: Progress, stop: threading.Event,
              wake: threading.Condition) -> IO[bytes]:
    """Fetch one blob (continuing a partial one) and return it opened for reading."""
    hexd = desc.digest.split(":", 1)[-1]
    lid = hexd[:12]
    done = blobs / f"{hexd}.blob"
    with _blob_lock(blobs, desc.digest):
        with contextlib.suppress(FileNotFoundError):
            f = open(done, "rb")
            if os.fstat(f.fileno()).st_size == desc.size:
                progress.emit(Event("Download complete", lid))
                return f
            f.close()
        if stop.is_set():
            raise Cancelled()
        throttled = Throttled(progress, lid, "Downloading", desc.size, stop)

        def on_progress(current: int) -> None:
            with wake:
                wake.notify_all()  # the extraction following this blob may wait for these bytes
            throttled(current)

        path = Path(client.fetch_blob(desc.digest, desc.size, blobs / f"{hexd}.partial", on_progress))
        progress.emit(Event("Verifying Checksum", lid))
        if path != done:
            os.replace(path, done)
        progress.emit(Event("Download complete", lid))
        return open(done, "rb")


def _sweep(blobs: Path) -> None:
    cutoff = time.time() - STALE_DOWNLOAD_SECONDS
    for entry in blobs.iterdir():
        if entry.suffix in (".partial", ".blob"):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    with _blob_lock(blobs, "sha256:" + entry.stem):
                        entry.unlink()


def _discard(blobs: Path, digest: str) -> None:
    with _blob_lock(blobs, digest):
        hexd = digest.split(":", 1)[-1]
        for name in (f"{hexd}.blob", f"{hexd}.partial"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blobs / name)


# ---- extraction -----------------------------------------------------------------------


class _Fallback(Exception):
    """The partial file being followed was replaced: extract from the finished blob instead."""


class _Tail:
    """Reads a blob while its download writes it to the partial file: data as it arrives,
    end of file only once the download is verified and its blob is the very file followed.

    The download only ever appends to a file (a restart from zero unlinks it and writes a
    new one; the verified partial file is renamed, not copied), so the bytes read from the
    file the download finished with are the bytes it verified: no second hash here."""

    def __init__(self, path: Path, desc: Any, future: "Future[IO[bytes]]", wake: threading.Condition) -> None:
        self.path, self.size, self.digest = path, int(desc.size), str(desc.digest)
        self.future, self.wake = future, wake
        self.f: IO[bytes] | None = None
        self.pos = 0
        self.verified = False  # read to the end, and the end is the download's verified blob

    def read(self, n: int = -1) -> bytes:
        while True:
            if self.f is None:
                try:
                    self.f = open(self.path, "rb")
                except FileNotFoundError:
                    if self.future.done():
                        raise _Fallback() from None
                    self._wait()
                    continue
            if self.pos >= self.size:
                done = self.future.result()  # raises the download's error, if any
                if os.fstat(done.fileno()).st_ino != os.fstat(self.f.fileno()).st_ino:
                    raise _Fallback()  # verified, but not the file followed
                self.verified = True
                return b""
            left = self.size - self.pos
            data = self.f.read(left if n is None or n < 0 else min(n, left))
            if data:
                self.pos += len(data)
                return data
            if self.future.done():
                self.future.result()  # raises the download's error, if any
                raise _Fallback()  # finished, but not in the file we follow
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino != os.fstat(self.f.fileno()).st_ino:
                    raise _Fallback()
            self._wait()

    def _wait(self) -> None:
        with self.wake:
            self.wake.wait(0.05)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def _extract(engine: Engine, future: "Future[IO[bytes]]", blobs: Path, desc: Any,
             progress: Progress, wake: threading.Condition) -> _Extracted:
    """Extract a layer: while it downloads, by following its partial file; else (or when
    that fails for a reason other than the download's) from the finished blob."""
    lid = _short(desc.digest)
    if not future.done():
        tail = _Tail(blobs / f"{desc.digest.split(':', 1)[-1]}.partial", desc, future, wake)
        try:
            done = _prepare(engine, tail, desc.size, lid, progress)
            if tail.verified:
                future.result().close()
                return done
            engine.layers.discard_prepared(done.prepared)  # not known to be the verified bytes
        except Exception as e:
            err = future.exception()  # waits: the download's own error names the digest
            if err is not None:
                raise err from None
            if not isinstance(e, (_Fallback, DockyardError, OSError, EOFError)):
                raise
        finally:
            tail.close()
    with future.result() as f:
        return _prepare(engine, f, desc.size, lid, progress)


class _Counting:
    """A reader reporting how much of the compressed blob has been consumed."""

    def __init__(self, f: Any, on_progress: Throttled) -> None:
        self.f, self.on_progress, self.n = f, on_progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.n += len(data)
        self.on_progress(self.n)
        return data


def _prepare(engine: Engine, f: Any, size: int, lid: str, progress: Progress) -> _Extracted:
    from ..images.tarsplit import Recorder, plain_stream

    progress.emit(Event("Extracting", lid, 0, size))
    plain = plain_stream(_Counting(f, Throttled(progress, lid, "Extracting", size)))  # type: ignore[arg-type]
    if plain is None:
        raise Unsupported("zstd-compressed layers need the 'zstandard' Python module, which is not installed")
    rec = Recorder(plain, digest=False)  # the extraction hashes the tar (the diffID)
    prepared = engine.layers.prepare(rec)  # type: ignore[arg-type]
    whole = rec.eof  # the extraction read the tar to its end: the record and diffID agree
    items = rec.finish()
    return _Extracted(prepared, items, prepared.diff_id if whole else "")
