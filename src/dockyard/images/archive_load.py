"""`load`: images from a Docker archive (old per-layer dirs or the 25+ blobs layout) or an
OCI image layout tar, with their IDs kept (the config bytes are stored as they are).

Every layer's diffID is checked against the config's ``rootfs.diff_ids`` before the image
is created; on a mismatch the load fails and the layers it registered for that image are
released again, so no image is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import re
import shutil
import tarfile
import tempfile

from .._record import dataclass
from ..errors import DockyardError, InvalidArgument, NotFound
from .config import host_architecture
from .layers import chain_id_of
from .refs import Reference, parse_reference
from .store import ImageStore
from .tarsplit import register_recorded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, BinaryIO, Callable

_MANIFESTS = ("application/vnd.oci.image.manifest.v1+json",
              "application/vnd.docker.distribution.manifest.v2+json")
_INDEXES = ("application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json")
_ANNOTATION_NAME = "io.containerd.image.name"
_ANNOTATION_REF = "org.opencontainers.image.ref.name"
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class ImageSpec:
    """One image found in an archive: its config, its layer members, and its tags."""

    config: bytes
    layers: tuple[str, ...]  # archive member names, base first
    tags: tuple[Reference, ...]
    config_digest: str | None  # what the archive says the config hashes to, if it says
    parent: str = ""  # Docker's manifest.json "Parent" (set when the parent was saved too)


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


class Archive:
    """Random access to the members of a (seekable) tar by normalised name."""

    def __init__(self, f: IO[bytes]) -> None:
        try:
            self.tar = tarfile.open(fileobj=f, mode="r:*")
            self.members = {_norm(m.name): m for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InvalidArgument(f"invalid archive: {e}") from None

    def has(self, name: str) -> bool:
        return _norm(name) in self.members

    def open(self, name: str) -> IO[bytes]:
        m = self.members.get(_norm(name))
        f = self.tar.extractfile(m) if m is not None else None
        if f is None:
            raise InvalidArgument(f"invalid archive: {name} is missing")
        return f

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as e:
            raise InvalidArgument(f"invalid archive: {name}: {e}") from None


def _tags(names: list[str]) -> tuple[Reference, ...]:
    out: list[Reference] = []
    for n in names:
        try:
            ref = parse_reference(n)
        except InvalidArgument:
            continue
        if ref.digest is None and ref not in out:
            out.append(ref)
    return tuple(out)


def docker_specs(ar: Archive) -> list[ImageSpec]:
    """Images named by Docker's manifest.json (old and new layouts alike)."""
    manifest = ar.json("manifest.json")
    if not isinstance(manifest, list):
        raise InvalidArgument("invalid archive: manifest.json is not a list")
    out = []
    for entry in manifest:
        config_name = str(entry.get("Config") or "")
        if not config_name:
            raise InvalidArgument("invalid archive: a manifest.json entry has no Config")
        base = posixpath.basename(config_name)
        digest = None
        if posixpath.dirname(_norm(config_name)) == "blobs/sha256":
            digest = "sha256:" + base
        out.append(ImageSpec(ar.read(config_name), tuple(str(l) for l in entry.get("Layers") or []),
                             _tags([str(t) for t in entry.get("RepoTags") or []]), digest,
                             str(entry.get("Parent") or "")))
    return out


Platform = tuple[str, str, "str | None"]  # (os, architecture, variant or None: any)


def platform_matches(doc: dict[str, Any], want: Platform | None) -> bool:
    """Whether an index descriptor's ``platform`` (or an image config's os/architecture/
    variant) is `want`; None wants this host's (linux, its architecture, any variant).
    A document that names no platform matches anything."""
    os_, arch, variant = want if want is not None else ("linux", host_architecture(), None)
    if not any(k in doc for k in ("os", "architecture")):
        return True
    if str(doc.get("os") or "linux") != os_ or str(doc.get("architecture") or arch) != arch:
        return False
    return variant is None or not doc.get("variant") or str(doc.get("variant")) == variant


def _platform_ok(desc: dict[str, Any], want: Platform | None = None) -> bool:
    platform = desc.get("platform")
    return platform_matches(platform, want) if isinstance(platform, dict) else True


def _desc_tags(desc: dict[str, Any]) -> list[str]:
    ann = desc.get("annotations") or {}
    if ann.get(_ANNOTATION_NAME):
        return [str(ann[_ANNOTATION_NAME])]
    ref = str(ann.get(_ANNOTATION_REF) or "")
    return [ref] if ref and (":" in ref or "/" in ref) else []


def oci_specs(ar: Archive, want: Platform | None = None) -> list[ImageSpec]:
    """Images of an OCI layout: index.json → (nested indexes →) manifests → config + layers."""
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}  # manifest digest -> (manifest, tags)

    def blob(digest: str) -> str:
        alg, _, hexpart = digest.partition(":")
        return f"blobs/{alg}/{hexpart}"

    def walk(descs: list[dict[str, Any]], tags: list[str], depth: int) -> None:
        if depth > 4:
            raise InvalidArgument("invalid archive: indexes nested too deep")
        for desc in descs:
            media = desc.get("mediaType")
            doc = ar.json(blob(str(desc.get("digest"))))
            media = media or doc.get("mediaType")
            names = _desc_tags(desc) or tags
            if media in _INDEXES or (media is None and "manifests" in doc):
                walk([d for d in doc.get("manifests") or [] if _platform_ok(d, want)], names, depth + 1)
            elif media in _MANIFESTS or "config" in doc:
                entry = found.setdefault(str(desc["digest"]), (doc, []))
                entry[1].extend(n for n in names if n not in entry[1])

    index = ar.json("index.json")
    walk(list(index.get("manifests") or []), [], 0)
    out = []
    for doc, tags in found.values():
        config = doc.get("config") or {}
        layers = tuple(blob(str(l["digest"])) for l in doc.get("layers") or [])
        out.append(ImageSpec(ar.read(blob(str(config.get("digest")))), layers, _tags(tags),
                             str(config.get("digest"))))
    return out


def _spool(stream: BinaryIO, tmpdir: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    """`stream` itself if it can seek (a file), else a temporary copy of it."""
    with contextlib.suppress(AttributeError, OSError):
        if stream.seekable():
            stream.seek(stream.tell())
            return contextlib.nullcontext(stream)
    f = tempfile.TemporaryFile(dir=tmpdir)
    shutil.copyfileobj(stream, f, 1 << 20)
    f.seek(0)
    return f


def _config_doc(spec: ImageSpec) -> dict[str, Any]:
    try:
        doc = json.loads(spec.config)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def load_image(store: ImageStore, ar: Archive, spec: ImageSpec) -> str:
    """Register `spec`'s layers (checking each diffID) and create the image; its ID."""
    if spec.config_digest is not None:
        actual = "sha256:" + hashlib.sha256(spec.config).hexdigest()
        if actual != spec.config_digest:
            raise InvalidArgument(f"invalid archive: config {spec.config_digest} has digest {actual}")
    try:
        config = json.loads(spec.config)
        diff_ids = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
    except (ValueError, AttributeError) as e:
        raise InvalidArgument(f"invalid image config: {e}") from None
    bad = [d for d in diff_ids if not _DIGEST_RE.match(d)]
    if bad:
        raise InvalidArgument(f"invalid image config: bad diffID {bad[0]!r}")
    if len(diff_ids) != len(spec.layers):
        raise InvalidArgument(
            f"invalid archive: the config names {len(diff_ids)} layers, the manifest {len(spec.layers)}")
    parent: str | None = None
    top: str | None = None
    try:
        for i, (name, want) in enumerate(zip(spec.layers, diff_ids)):
            chain = chain_id_of(parent, want)
            if store.layers.exists(chain):  # already here: as Docker, not unpacked again
                parent = chain
                continue
            with ar.open(name) as f:
                layer = register_recorded(store.layers, f, parent)  # type: ignore[arg-type]
            top = layer.chain_id
            if layer.diff_id != want:
                raise InvalidArgument(
                    f"invalid diffID for layer {i}: expected {want}, got {layer.diff_id}")
            parent = layer.chain_id
        return store.create_image_raw(spec.config)
    except BaseException:
        if top is not None:
            with contextlib.suppress(DockyardError, OSError):
                store.release_unused(top)
        raise


def load(store: ImageStore, stream: BinaryIO, say: Callable[[str], None],
         platform: Platform | None = None) -> list[str]:
    """`docker load`: every image in the archive on `stream`; returns their IDs. With
    `platform` (``load --platform``), only the images for it: index entries for other
    platforms are skipped, and so are images whose config names another; none left is
    an error."""
    store.paths.tmp.mkdir(parents=True, exist_ok=True)
    with _spool(stream, str(store.paths.tmp)) as f:
        ar = Archive(f)
        if ar.has("manifest.json"):
            specs = docker_specs(ar)
        elif ar.has("index.json"):
            specs = oci_specs(ar, platform)
        else:
            raise InvalidArgument("invalid archive: it has neither manifest.json nor index.json")
        if platform is not None:
            specs = [s for s in specs if platform_matches(_config_doc(s), platform)]
            if not specs:
                want = "/".join(p for p in platform if p)
                raise NotFound(f"the archive has no image for the specified platform ({want})")
        ids: list[str] = []
        for spec in specs:
            image_id = load_image(store, ar, spec)
            ids.append(image_id)
            if spec.parent and store.exists(spec.parent) and spec.parent != image_id:
                store.set_parent(image_id, spec.parent)
            for ref in spec.tags:
                old = store.refs.get(ref)
                if old is not None and old != image_id:
                    say(f"The image {ref.familiar()} already exists, renaming the old one with ID "
                        f"{old} to empty string")
                store.tag(image_id, ref.familiar())
                say(f"Loaded image: {ref.familiar()}")
            if not spec.tags:
                say(f"Loaded image ID: {image_id}")
        return ids
