"""`save`: images as a tar that Docker's `load` and OCI tools both read (Docker 25+ layout).

::

    blobs/sha256/<image id>      the image config, byte for byte as stored (digest = ID)
    blobs/sha256/<diff id>       each layer as an uncompressed tar (digest = diffID)
    blobs/sha256/<manifest>      an OCI image manifest per image
    index.json                   OCI index: one descriptor per tag (or per untagged image)
    manifest.json                Docker's: [{"Config", "RepoTags", "Layers"}]
    oci-layout, repositories

A layer's tar is rebuilt from its tree: from the tar-split record kept at register time
when there is one (`tarsplit`), else by `tarfs.write_diff_tar` (which reproduces the
layers that ``commit`` and ``build`` wrote). Whatever is written must hash to the diffID
the image config names, or the archive would not load; otherwise `save` fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from typing import IO, Any, BinaryIO, cast

from .._record import dataclass
from ..errors import FailedPrecondition, NotFound
from .layers import Layer
from .refs import Reference, parse_any, parse_reference
from .store import Image, ImageStore
from .tarsplit import NotReproducible, reassemble

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_NAME = "io.containerd.image.name"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
_DOCKER_LAYERS = ("application/vnd.docker.image.rootfs.diff.tar.gzip",
                  "application/vnd.docker.image.rootfs.diff.tar")


@dataclass(frozen=True)
class SaveItem:
    """One image to save and the tags to record for it."""

    image_id: str
    config: bytes
    diff_ids: tuple[str, ...]
    tags: tuple[Reference, ...]
    parent: str = ""  # the parent image (commit/build), if any


@dataclass(frozen=True)
class Blob:
    digest: str  # "sha256:<hex>"
    size: int


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def select(store: ImageStore, names: list[str]) -> list[SaveItem]:
    """Resolve `save`'s arguments, as Docker does: a name with a tag saves that tag, a
    name without one every tag of that repository, an ID the image without tags."""
    order: list[str] = []
    tags: dict[str, list[Reference]] = {}
    for name in names:
        ref = parse_any(name)
        found: list[tuple[str, Reference | None]] = []
        if isinstance(ref, Reference) and ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
            bare = parse_reference(name, default_tag=False)
            for key, image_id in sorted(store.refs.all().items()):
                r = parse_reference(key, default_tag=False)
                if r.name == bare.name and r.tag is not None and store.exists(image_id):
                    found.append((image_id, r))
        if not found:
            resolved = store.resolve(name)
            tagged = isinstance(ref, Reference) and ref.digest is None and store.refs.get(ref) == resolved.id
            found.append((resolved.id, ref if tagged and isinstance(ref, Reference) else None))
        for image_id, tag in found:
            if image_id not in tags:
                order.append(image_id)
                tags[image_id] = []
            if tag is not None and tag not in tags[image_id]:
                tags[image_id].append(tag)
    out = []
    for image_id in order:
        image: Image = store.get(image_id)
        out.append(SaveItem(image.id, store.raw_config(image.id), image.diff_ids, tuple(tags[image_id]),
                            image.parent))
    return out


def write_layer(store: ImageStore, layer: Layer, out: BinaryIO) -> Blob:
    """Write `layer`'s tar to the seekable `out`, which must hash to its diffID."""
    reason = ""
    start = out.tell()
    try:
        digest = reassemble(store.layers, layer, out)
        if digest == layer.diff_id:
            return Blob(digest, out.tell() - start)
        if digest is not None:
            reason = f"the tar-split record gives {digest}"
    except NotReproducible as e:
        reason = str(e)
    from .tarfs import write_diff_tar

    out.seek(start)
    out.truncate()
    digest = write_diff_tar(store.layers.layer_dir(layer) / "diff", [], out)
    if digest != layer.diff_id:
        raise FailedPrecondition(
            f"cannot reproduce layer {layer.diff_id}: its tree tars to {digest}"
            + (f" ({reason})" if reason else
               " and no tar-split record was kept for it (a layer stored before Dockyard kept them:"
               " importing or loading its tar again records it)")
        )
    return Blob(digest, out.tell() - start)


class _Out:
    """Adds entries to a streaming tar."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)

    def dir(self, name: str) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        self.tar.addfile(ti)

    def file(self, name: str, data: bytes | IO[bytes], size: int | None = None) -> None:
        ti = tarfile.TarInfo(name)
        ti.mode = 0o644
        if isinstance(data, bytes):
            ti.size = len(data)
            self.tar.addfile(ti, io.BytesIO(data))
        else:
            ti.size = size if size is not None else 0
            self.tar.addfile(ti, data)

    def close(self) -> None:
        self.tar.close()

    def abandon(self) -> None:
        """After an error: drop the half-written stream without flushing it (tarfile would
        otherwise try to finish it when garbage-collected, after the output is closed)."""
        stream = self.tar.fileobj
        self.tar.closed = True
        if hasattr(stream, "closed"):
            stream.closed = True  # type: ignore[union-attr]


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def oci_manifest(config: Blob, layers: list[Blob]) -> bytes:
    return _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": l.digest, "size": l.size} for l in layers],
    })


def index_entries(manifest: Blob, tags: tuple[Reference, ...]) -> list[dict[str, Any]]:
    """index.json descriptors for one image: one per tag, as Docker writes them."""
    desc: dict[str, Any] = {"mediaType": MEDIA_MANIFEST, "digest": manifest.digest, "size": manifest.size}
    if not tags:
        return [desc]
    return [{**desc, "annotations": {ANNOTATION_NAME: str(t), ANNOTATION_REF: t.tag or "latest"}}
            for t in tags]


def save(store: ImageStore, names: list[str], out: BinaryIO,
         platform: tuple[str, str, str | None] | None = None) -> None:
    """Write the images `names` resolve to as one tar on `out` (see the module doc).
    With `platform` (``save --platform``), every image must be for that platform (images
    here are single-platform), else NotFound names the first that is not."""
    items = select(store, names)
    if platform is not None:
        from .archive_load import platform_matches

        want = "/".join(p for p in platform if p)
        for item in items:
            doc = json.loads(item.config)
            if not platform_matches(doc, platform):
                have = "/".join(str(doc.get(k)) for k in ("os", "architecture", "variant") if doc.get(k))
                raise NotFound(f"image {item.image_id.split(':', 1)[-1][:12]} was found but its platform "
                               f"({have}) does not match the specified platform ({want})")
    w = _Out(out)
    try:
        _save(store, items, w)
    except BaseException:
        w.abandon()
        raise
    w.close()


def _save(store: ImageStore, items: list[Any], w: _Out) -> None:
    w.dir("blobs/")
    w.dir("blobs/sha256/")
    written: dict[str, Blob] = {}
    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    store.paths.tmp.mkdir(parents=True, exist_ok=True)
    for item in items:
        layers: list[Blob] = []
        chain = []
        if item.diff_ids:
            image = store.get(item.image_id)
            if image.top_chain_id is None or not store.layers.exists(image.top_chain_id):
                raise NotFound(f"the layers of image {item.image_id} are missing")
            chain = store.layers.chain(image.top_chain_id)
        for layer in chain:
            if layer.diff_id not in written:
                with tempfile.TemporaryFile(dir=store.paths.tmp) as f:
                    blob = write_layer(store, layer, cast(BinaryIO, f))
                    f.seek(0)
                    w.file(_blob_name(blob.digest), f, blob.size)
                written[layer.diff_id] = blob
            layers.append(written[layer.diff_id])
        config = Blob(item.image_id, len(item.config))
        if item.image_id not in written:
            w.file(_blob_name(item.image_id), item.config)
            written[item.image_id] = config
        mbytes = oci_manifest(config, layers)
        manifest = Blob("sha256:" + hashlib.sha256(mbytes).hexdigest(), len(mbytes))
        if manifest.digest not in written:
            w.file(_blob_name(manifest.digest), mbytes)
            written[manifest.digest] = manifest
        index.extend(index_entries(manifest, item.tags))
        entry: dict[str, Any] = {
            "Config": _blob_name(item.image_id),
            "RepoTags": [t.familiar() for t in item.tags] or None,
            "Layers": [_blob_name(l.digest) for l in layers],
        }
        if item.parent and any(other.image_id == item.parent for other in items):
            entry["Parent"] = item.parent  # as Docker: only when the parent is saved too
        manifest_json.append(entry)
        if layers:
            for t in item.tags:
                repositories.setdefault(t.familiar_name(), {})[t.tag or "latest"] = layers[-1].digest[7:]
    w.file("index.json", _json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index}))
    w.file("manifest.json", _json(manifest_json))
    w.file("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    if repositories:
        w.file("repositories", _json(repositories))
