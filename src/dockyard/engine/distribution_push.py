"""`push`: an image's layers, config and manifest to a registry, as Docker does.

For each layer, in parallel (``max_concurrent_uploads``): a blob the registry already has
(by the digests Docker's v2metadata records for the layer, or the cached compressed blob)
is skipped (``Layer already exists``); one recorded in another repository of the same
registry is mounted from there (``Mounted from <repo>``); otherwise the layer's tar
(rebuilt byte for byte by `images.archive.write_layer`, so it hashes to the diffID) is
compressed once, kept under ``distribution/blobs`` with its digest, and uploaded. Then the
config blob and a Docker schema 2 manifest (an OCI manifest for zstd layers).
"""

from __future__ import annotations

import io

from .. import _json
from ..errors import DockyardError, InvalidArgument, NotFound, Unsupported
from ..images.layers import Layer
from ..images.refs import Reference, parse_reference
from ..images.store import Image
from .core import Engine
from .distmeta import (
    DistributionStore, Event, Progress, Throttled, moving_data, registry_session, run_parallel,
)
from .._record import dataclass
from ..registry.manifest import sha256_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import Any


MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


@dataclass(frozen=True)
class Pushed:
    digest: str
    size: int


def push(engine: Engine, ref: str, all_tags: bool, progress: Progress, compression: str = "gzip") -> str:
    """Push `ref` (every tag of its repository with `all_tags`); return the manifest digest
    (of the last tag)."""
    if compression not in ("gzip", "zstd"):
        raise InvalidArgument(f"unsupported compression {compression!r}: gzip or zstd")
    if compression == "zstd":
        import importlib.util

        if importlib.util.find_spec("zstandard") is None:
            raise Unsupported("zstd compression needs the 'zstandard' Python module, which is not installed")
    named = parse_reference(ref, default_tag=False)
    if named.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {named.familiar()}")
    if all_tags:
        if named.tag is not None:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        tags = sorted((t for t in (parse_reference(k, default_tag=False) for k in engine.images.refs.all())
                       if t.name == named.name and t.tag is not None and t.digest is None),
                      key=lambda t: t.tag or "")
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {named.familiar_name()}")
    else:
        if named.tag is None:
            progress.emit(Event("Using default tag: latest"))
            named = named.with_tag("latest")
        tags = [named]
    images: list[tuple[Reference, Image]] = []
    for t in tags:
        image_id = engine.images.refs.get(t)
        if image_id is None or not engine.images.exists(image_id):
            raise NotFound(f"An image does not exist locally with the tag: {t.familiar_name()}")
        images.append((t, engine.images.get(image_id)))
    try:  # the cache follows the layer store
        DistributionStore(engine.paths).prune_compressed(
            lambda: {l.diff_id for l in engine.layers.list_layers()},
            {d for _t, image in images for d in image.diff_ids})
    except OSError:
        pass
    progress.emit(Event(f"The push refers to repository [{named.name}]"))
    client = registry_session(named.domain, named.path, "pull,push")
    digest = ""
    for t, image in images:
        digest = _push_one(engine, client, t, image, compression, progress)
    return digest


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _push_one(engine: Engine, client: Any, named: Reference, image: Image, compression: str,
               progress: Progress) -> str:
    chain = engine.layers.chain(image.top_chain_id) if image.top_chain_id else []
    dist = DistributionStore(engine.paths)
    limit = max(1, int(getattr(client.config, "max_concurrent_uploads", 5) or 5))
    for layer in reversed(chain):
        progress.emit(Event("Preparing", _short(layer.diff_id)))
    for n, layer in enumerate(chain):
        if n >= limit:
            progress.emit(Event("Waiting", _short(layer.diff_id)))
    config = engine.images.raw_config(image.id)
    zstd = compression == "zstd"
    media_type = MEDIA_OCI_MANIFEST if zstd else MEDIA_DOCKER_MANIFEST
    here = named.name
    plans = [_Plan(dist, named, layer, compression) for layer in chain]
    # one round trip tells what the registry has: every blob a layer may already be there
    # as, the config, and the manifest the tag points to (Docker asks blob by blob)
    sizes, current = client.check_push([image.id] + [d for p in plans for d in p.candidates],
                                       named.tag or "latest", media_type)
    blobs: list[Pushed | None] = []
    for plan in plans:
        found = next(((d, sizes[d]) for d in plan.candidates if sizes.get(d) is not None), None)
        if found is None:
            blobs.append(None)
            continue
        progress.emit(Event("Layer already exists", _short(plan.layer.diff_id)))
        dist.record(plan.layer.diff_id, found[0], here)
        blobs.append(Pushed(found[0], int(found[1] or 0)))
    todo = [plan for plan, got in zip(plans, blobs) if got is None]
    if todo or sizes.get(image.id) is None:
        import threading

        moving_data()
        stop = threading.Event()

        def job(plan: _Plan | None) -> Pushed | None:
            if plan is not None:
                return _push_layer(engine, client, dist, named, plan, compression, progress, stop)
            client.upload_blob(image.id, len(config), io.BytesIO(config))
            return None

        jobs: list[_Plan | None] = list(todo)
        if sizes.get(image.id) is None:
            jobs.append(None)  # the config, uploaded beside the layers
        done = iter(run_parallel(job, jobs, limit + 1, stop, "push"))
        blobs = [got if got is not None else next(done) for got in blobs]
    layers = [b for b in blobs if b is not None]
    raw = _manifest(config, image.id, layers, zstd)
    digest = sha256_digest(raw)
    if current != digest:  # else the tag already points to this very manifest
        pushed = str(client.put_manifest(named.tag or "latest", media_type, raw))
        assert pushed == digest
    progress.emit(Event(f"{named.tag}: digest: {digest} size: {len(raw)}"))
    by_digest = named.with_digest(digest)
    if engine.images.refs.get(by_digest) != image.id:
        engine.images.add_digest(by_digest, image.id)
    return digest


def _manifest(config: bytes, config_digest: str, layers: list[Pushed], zstd: bool) -> bytes:
    """The image's manifest, spelt as Docker's json.MarshalIndent(m, "", "   ")."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST if zstd else MEDIA_DOCKER_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG if zstd else MEDIA_DOCKER_CONFIG,
                   "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": MEDIA_OCI_LAYER_ZSTD if zstd else MEDIA_DOCKER_LAYER_GZIP,
                    "size": b.size, "digest": b.digest} for b in layers],
    }
    return _json.dumps_indented(doc, 3).encode()


class _Plan:
    """One layer to push: the blobs it may already be in the registry as (those recorded for
    this repository, then the cached compressed blob), and the other repositories of the
    registry recorded as holding it (to mount from)."""

    __slots__ = ("layer", "meta", "cached", "candidates")

    def __init__(self, dist: DistributionStore, named: Reference, layer: Layer, compression: str) -> None:
        self.layer = layer
        meta = [m for m in dist.v2metadata(layer.diff_id) if _domain(m.source_repository) == named.domain]
        if compression != "gzip":
            meta = []  # recorded blobs are gzip (Docker's and most registries')
        self.meta = meta
        self.cached = dist.compressed(layer.diff_id, compression)
        candidates = [m.digest for m in meta if m.source_repository == named.name]
        if self.cached is not None:
            candidates.append(self.cached.digest)
        self.candidates = list(dict.fromkeys(candidates))


def _domain(name: str) -> str:
    return name.split("/", 1)[0]


def _push_layer(engine: Engine, client: Any, dist: DistributionStore, named: Reference, plan: _Plan,
                compression: str, progress: Progress, stop: threading.Event) -> Pushed:
    """A layer the registry lacks under every candidate digest: mounted, else uploaded."""
    layer = plan.layer
    lid = _short(layer.diff_id)
    if stop.is_set():
        raise InterruptedError("push cancelled")
    here = named.name
    for m in reversed(plan.meta):
        if m.source_repository == here:
            continue
        source = m.source_repository.split("/", 1)[1]
        try:
            mounted = client.mount_blob(m.digest, source)
        except DockyardError:
            mounted = False  # no pull access there, or the registry refuses mounts: upload
        if mounted:
            size = client.blob_exists(m.digest)
            if size is not None:
                progress.emit(Event(f"Mounted from {source}", lid))
                dist.record(layer.diff_id, m.digest, here)
                return Pushed(m.digest, int(size))
    cached = plan.cached
    if cached is None:
        from .distribution_compress import compress_layer
    blob = cached or compress_layer(engine, dist, layer, compression)
    progress.emit(Event("Pushing", lid, 0, blob.size))
    client.upload_blob(blob.digest, blob.size, blob.path,
                       on_progress=Throttled(progress, lid, "Pushing", blob.size, stop))
    progress.emit(Event("Pushed", lid))
    dist.record(layer.diff_id, blob.digest, here)
    return Pushed(blob.digest, blob.size)
