"""`pull`: an image from a registry into the stores, as Docker does, but faster and resumable.

* The reference is normalised (``busybox`` → docker.io/library/busybox:latest); a manifest
  list / OCI index is resolved to this host's platform (or ``--platform``).
* Layers whose chain is already stored are not fetched (``Already exists``). The others
  download in parallel (``max_concurrent_downloads``) to ``<root>/tmp/blobs/<hex>.partial``,
  which a later pull continues with a Range request when this one is interrupted; a
  finished, verified blob is renamed ``<hex>.blob`` and reused until it is applied.
* Layers are applied in chain order as soon as a layer and its parents are there, while the
  rest are still downloading (`LayerStore.register` through `tarsplit.register_recorded`,
  so that push can give back the very same tar); each result must have the diffID the
  config names.
* Only then is the config stored (image ID = its digest), tagged and its RepoDigest
  recorded. A failure leaves no image, tag or half-applied layer (layers fully registered
  stay, as Docker's do, for the next pull).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import DockyardError, FailedPrecondition, InvalidArgument, NotFound, Unsupported
from ..images._lock import store_lock
from ..images.layers import chain_ids
from ..images.refs import Reference, parse_reference
from .core import Engine
from .distmeta import (
    Cancelled, DistributionStore, Event, Progress, Throttled, parse_platform, registry_session,
)

#: largest image config accepted (Docker: 8 MiB)
MAX_CONFIG_SIZE = 8 << 20
_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws")


def pull(engine: Engine, ref: str, platform: str | None, all_tags: bool, progress: Progress) -> str:
    """Pull `ref` (every tag of the repository with `all_tags`); return the image ID (of the
    last tag pulled with `all_tags`)."""
    named = parse_reference(ref, default_tag=False)
    plat = parse_platform(platform)
    if all_tags:
        if not named.is_name_only:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        client = registry_session(named.domain, named.path, "pull")
        tags = sorted(client.tags())
        if not tags:
            raise NotFound(f"no tags found for {named.familiar_name()}")
        image_id, updated = "", False
        for tag in tags:
            image_id, up = _pull_one(engine, client, named.with_tag(tag), plat, progress, bool(platform))
            updated = updated or up
        _status(progress, updated, named.familiar_name())
        return image_id
    if named.is_name_only:
        progress.emit(Event("Using default tag: latest"))
        named = named.with_tag("latest")
    client = registry_session(named.domain, named.path, "pull")
    image_id, updated = _pull_one(engine, client, named, plat, progress, bool(platform))
    _status(progress, updated, named.familiar())
    return image_id


def _status(progress: Progress, updated: bool, what: str) -> None:
    progress.emit(Event(f"Status: {'Downloaded newer image' if updated else 'Image is up to date'} for {what}"))


def _pull_one(engine: Engine, client: Any, named: Reference, plat: tuple[str, str, str | None],
              progress: Progress, strict: bool = False) -> tuple[str, bool]:
    reference = named.digest or named.tag or "latest"
    top = client.get_manifest(reference)
    progress.emit(Event(f"Pulling from {named.path}", reference))  # as Docker: once the manifest is in
    if top.media_type in _SCHEMA1:
        raise Unsupported(f"{named.familiar()}: Docker Image Format v1 and Docker Image manifest "
                          "version 2, schema 1 are not supported")
    manifest = client.resolve_platform(top, *plat)
    image = client.parse_image_manifest(manifest)
    if engine.images.exists(image.config.digest):  # the config is content-addressed: no need to fetch
        config_bytes = engine.images.raw_config(image.config.digest)
    else:
        config_bytes = client.get_blob_bytes(image.config.digest, MAX_CONFIG_SIZE)
    try:
        config = json.loads(config_bytes)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError):
        raise FailedPrecondition(f"{named.familiar()}: invalid image config {image.config.digest}") from None
    if strict and not top.is_index:
        _check_platform(named, config, plat)
    if len(diff_ids) != len(image.layers):
        raise FailedPrecondition(f"{named.familiar()}: the manifest names {len(image.layers)} layers "
                                 f"but the image config {len(diff_ids)}")
    _fetch_layers(engine, client, named, image.layers, diff_ids, progress)
    images = engine.images
    with store_lock(engine.paths):
        existed = images.exists(image.config.digest)
        image_id = images.create_image_raw(config_bytes)
        try:
            if image_id != image.config.digest:
                raise FailedPrecondition(f"image config digest mismatch: {image_id} != {image.config.digest}")
            target = named if named.digest else named.with_tag(named.tag or "latest")
            updated = images.refs.get(target) != image_id
            if updated:
                images.refs.add(target, image_id)
                images.set_last_updated(image_id)
            images.add_digest(named.with_digest(named.digest or top.digest), image_id)
        except BaseException:
            if not existed:
                images.delete_image(image_id)
            raise
    progress.emit(Event(f"Digest: {top.digest}"))
    return image_id, updated


def _check_platform(named: Reference, config: Any, plat: tuple[str, str, str | None]) -> None:
    """--platform with a single-platform image: the image must be for that platform."""
    have = (str(config.get("os") or ""), str(config.get("architecture") or ""))
    if have != plat[:2]:
        want = "/".join(p for p in plat if p)
        raise NotFound(f"image with reference {named.familiar()} was found but its platform "
                       f"({'/'.join(have)}) does not match the specified platform ({want})")


# ---- layers ---------------------------------------------------------------------------


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _fetch_layers(engine: Engine, client: Any, named: Reference, layers: tuple[Any, ...],
                  diff_ids: list[str], progress: Progress) -> None:
    chains = chain_ids(diff_ids)
    dist = DistributionStore(engine.paths)
    have = 0
    while have < len(chains) and engine.layers.exists(chains[have]):
        have += 1
    for desc, diff_id in zip(layers[:have], diff_ids):
        progress.emit(Event("Already exists", _short(desc.digest)))
    todo = list(range(have, len(chains)))
    if not todo:
        return
    blobs = engine.paths.tmp / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    _sweep(blobs)
    limit = max(1, int(getattr(client.config, "max_concurrent_downloads", 3) or 3))
    for n, i in enumerate(todo):
        progress.emit(Event("Pulling fs layer", _short(layers[i].digest)))
    for n, i in enumerate(todo):
        if n >= limit:
            progress.emit(Event("Waiting", _short(layers[i].digest)))
    stop = threading.Event()
    wake = threading.Condition()
    pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="pull")
    futures: dict[int, Future[IO[bytes]]] = {}
    try:
        for i in todo:
            futures[i] = pool.submit(_download, client, blobs, layers[i], progress, stop, wake)
        parent = chains[have - 1] if have else None
        for i in todo:
            lid = _short(layers[i].digest)
            layer = _apply_next(engine, futures.pop(i), blobs, layers[i], parent, lid, progress, wake)
            if layer.diff_id != diff_ids[i]:
                engine.images.release_unused(layer.chain_id)
                raise FailedPrecondition(f"layer {layers[i].digest} has diffID {layer.diff_id}, but the "
                                         f"image config says {diff_ids[i]}")
            _discard(blobs, layers[i].digest)
            dist.record(diff_ids[i], layers[i].digest, named.name)
            progress.emit(Event("Pull complete", lid))
            parent = layer.chain_id
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for fut in futures.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                fut.result().close()
        raise
    finally:
        pool.shutdown(wait=True)
    for desc, diff_id in zip(layers[:have], diff_ids):
        dist.record(diff_id, desc.digest, named.name)


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
                wake.notify_all()  # a streaming apply of this blob may wait for these bytes
            throttled(current)

        path = Path(client.fetch_blob(desc.digest, desc.size, blobs / f"{hexd}.partial", on_progress))
        progress.emit(Event("Verifying Checksum", lid))
        if path != done:
            os.replace(path, done)
        progress.emit(Event("Download complete", lid))
        return open(done, "rb")


#: downloads not continued for this long are dropped (an abandoned pull's left-overs)
STALE_DOWNLOAD_SECONDS = 7 * 24 * 3600


def _sweep(blobs: Path) -> None:
    import time

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


class _Fallback(Exception):
    """The partial file being followed was replaced: apply from the finished blob instead."""


class _Tail:
    """Reads a blob while its download writes it to the partial file: data as it arrives,
    end of file only once the download is verified and what was read hashes to the digest."""

    def __init__(self, path: Path, desc: Any, future: "Future[IO[bytes]]", wake: threading.Condition) -> None:
        import hashlib

        self.path, self.size, self.digest = path, int(desc.size), str(desc.digest)
        self.future, self.wake = future, wake
        self.f: IO[bytes] | None = None
        self.pos = 0
        self.sha = hashlib.sha256()

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
                self.future.result().close()  # raises the download's error, if any
                if "sha256:" + self.sha.hexdigest() != self.digest:
                    raise _Fallback()
                return b""
            left = self.size - self.pos
            data = self.f.read(left if n is None or n < 0 else min(n, left))
            if data:
                self.pos += len(data)
                self.sha.update(data)
                return data
            if self.future.done():
                self.future.result().close()
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


def _apply_next(engine: Engine, future: "Future[IO[bytes]]", blobs: Path, desc: Any, parent: str | None,
                lid: str, progress: Progress, wake: threading.Condition) -> Any:
    """Apply the next layer in chain order: while it still downloads, by following its partial
    file (decompressing and extracting as the bytes arrive); else from the finished blob."""
    if not future.done():
        tail = _Tail(blobs / f"{desc.digest.split(':', 1)[-1]}.partial", desc, future, wake)
        try:
            return _apply(engine, tail, parent, desc.size, lid, progress)
        except Exception as e:
            err = future.exception()  # waits: the download's own error names the digest
            if err is not None:
                raise err from None
            if not isinstance(e, (_Fallback, DockyardError, OSError, EOFError)):
                raise
        finally:
            tail.close()
    with future.result() as f:
        return _apply(engine, f, parent, desc.size, lid, progress)


class _Counting:
    """A reader reporting how much of the compressed blob has been consumed."""

    def __init__(self, f: Any, on_progress: Throttled) -> None:
        self.f, self.on_progress, self.n = f, on_progress, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.n += len(data)
        self.on_progress(self.n)
        return data


def _apply(engine: Engine, f: Any, parent: str | None, size: int, lid: str, progress: Progress) -> Any:
    from ..images.tarsplit import register_recorded

    progress.emit(Event("Extracting", lid, 0, size))
    reader = _Counting(f, Throttled(progress, lid, "Extracting", size))
    return register_recorded(engine.layers, reader, parent)  # type: ignore[arg-type]


def manifest_json(engine: Engine, ref: str) -> bytes:
    """`manifest inspect`: the raw manifest (or index) of `ref` from its registry."""
    named = parse_reference(ref)
    client = registry_session(named.domain, named.path, "pull")
    return bytes(client.get_manifest(named.digest or named.tag or "latest").raw)

