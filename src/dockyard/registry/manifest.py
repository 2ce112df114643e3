"""Manifests and descriptors: media types, parsing, and platform selection in an index.

Docker schema 2 and OCI image manifests, Docker manifest lists and OCI indexes. Schema 1 is
refused. Platform matching normalises architectures and variants as containerd does
(`aarch64` → arm64, arm64's default variant v8, arm's v7; an arm/v7 host can run v6 and v5).
"""

from __future__ import annotations

import os as _os

from .. import _json
from .._record import dataclass
from ..errors import InvalidArgument, NotFound, Unsupported
from .errors import DigestMismatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
ALL_MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MAX_MANIFEST_SIZE = 4 << 20


def sha256_digest(data: bytes) -> str:
    """The digest of a small document (a manifest, a config)."""
    return "sha256:" + _sha256(data).hexdigest()


def _sha256(data: bytes) -> Any:
    from ..paths import sha256  # CPython's own: these are a few KiB, OpenSSL does not pay off

    return sha256(data)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return s + (f"/{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, spec: str) -> "Platform":
        """`linux/arm64/v8`, `linux/amd64`, `arm64` (os defaults to linux)."""
        parts = [p for p in spec.strip().lower().split("/")]
        if not spec.strip() or any(not p for p in parts) or len(parts) > 3:
            raise InvalidArgument(f"invalid platform {spec!r}: use os/arch[/variant]")
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        return normalize_platform(cls(parts[0], parts[1], parts[2] if len(parts) > 2 else None))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.platform is not None:
            p: dict[str, Any] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            d["platform"] = p
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry sent it; `digest` is sha256 of `raw`."""

    media_type: str
    raw: bytes
    digest: str

    def json(self) -> dict[str, Any]:
        doc = _json.loads(self.raw)
        if not isinstance(doc, dict):
            raise InvalidArgument(f"manifest {self.digest} is not a JSON object")
        return doc

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ManifestIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]


def detect_media_type(raw: bytes, content_type: str | None) -> str:
    """The manifest's media type from Content-Type, else from its JSON (mediaType, shape)."""
    ct = (content_type or "").split(";")[0].strip()
    if ct in ALL_MANIFEST_TYPES or ct in SCHEMA1_TYPES:
        return ct
    try:
        doc = _json.loads(raw)
    except ValueError:
        raise InvalidArgument("registry sent a manifest that is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("registry sent a manifest that is not a JSON object")
    if doc.get("schemaVersion") == 1:
        return SCHEMA1_TYPES[1]
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def check_supported(media_type: str, what: str) -> None:
    if media_type in SCHEMA1_TYPES:
        raise Unsupported(
            f"{what}: Docker Image manifest schema 1 is not supported (the image is too old:"
            " push it again with a current client to convert it to schema 2)")
    if media_type not in ALL_MANIFEST_TYPES:
        raise Unsupported(f"{what}: unsupported manifest media type {media_type}")


def _descriptor(d: Any, where: str) -> Descriptor:
    if not isinstance(d, dict):
        raise InvalidArgument(f"{where}: descriptor is not an object")
    try:
        digest, size = str(d["digest"]), int(d["size"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"{where}: descriptor needs digest and size") from None
    if not digest.startswith("sha256:") or len(digest) != 71 or size < 0:
        raise InvalidArgument(f"{where}: unsupported or invalid digest {digest!r}")
    plat = None
    p = d.get("platform")
    if isinstance(p, dict):
        plat = Platform(str(p.get("os", "")), str(p.get("architecture", "")),
                        str(p["variant"]) if p.get("variant") else None,
                        str(p["os.version"]) if p.get("os.version") else None)
    ann = d.get("annotations") if isinstance(d.get("annotations"), dict) else {}
    return Descriptor(str(d.get("mediaType", "")), digest, size,
                      tuple(str(u) for u in d.get("urls") or ()), plat,
                      tuple(sorted((str(k), str(v)) for k, v in (ann or {}).items())))


def parse_image_manifest(m: Manifest) -> ImageManifest:
    if m.media_type not in IMAGE_TYPES:
        raise InvalidArgument(f"manifest {m.digest} is a {m.media_type}, not an image manifest")
    doc = m.json()
    where = f"manifest {m.digest}"
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"{where}: no layers list")
    return ImageManifest(m.media_type, _descriptor(doc.get("config"), where),
                         tuple(_descriptor(x, where) for x in layers))


def parse_index(m: Manifest) -> ManifestIndex:
    if m.media_type not in INDEX_TYPES:
        raise InvalidArgument(f"manifest {m.digest} is a {m.media_type}, not an index")
    entries = m.json().get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"index {m.digest}: no manifests list")
    return ManifestIndex(m.media_type, tuple(_descriptor(x, f"index {m.digest}") for x in entries))


# --- platforms ----------------------------------------------------------------------------

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
                 "i686": "386", "armhf": "arm", "armel": "arm", "armv7l": "arm", "armv6l": "arm",
                 "ppc64el": "ppc64le"}
_ARCH_VARIANT = {"armhf": "v7", "armel": "v6", "armv7l": "v7", "armv6l": "v6"}


def normalize_platform(p: Platform) -> Platform:
    arch = p.architecture.lower()
    variant = (p.variant or "").lower() or None
    variant = variant or _ARCH_VARIANT.get(arch)
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64":
        variant = {"8": None, "v8": None, "v8.0": None, "9": "v9", "9.0": "v9", "v9.0": "v9"}.get(
            variant or "", variant)
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant or "", variant)
    os_ = p.os.lower() or "linux"
    return Platform(os_, arch, variant, p.os_version)


def host_platform() -> Platform:
    return normalize_platform(Platform("linux", _os.uname().machine or "amd64"))


def _variant_rank(want: Platform, have: Platform) -> int | None:
    """0 for an exact match; higher for a compatible older variant; None if incompatible."""
    if want.variant == have.variant:
        return 0
    if want.architecture == "arm" and want.variant and have.variant:
        order = ["v8", "v7", "v6", "v5"]
        if want.variant in order and have.variant in order:
            diff = order.index(have.variant) - order.index(want.variant)
            return diff if diff > 0 else None
    return None


def choose_platform(index: ManifestIndex, want: Platform) -> Descriptor:
    """The entry of `index` best matching `want` (first in order among the best)."""
    want = normalize_platform(want)
    best: tuple[int, Descriptor] | None = None
    for d in index.manifests:
        if d.platform is None or d.media_type not in IMAGE_TYPES + ("",):
            continue
        have = normalize_platform(d.platform)
        if have.os != want.os or have.architecture != want.architecture:
            continue
        rank = _variant_rank(want, have)
        if rank is None and want.variant is None:
            rank = 1  # no variant asked: any will do, the default preferred
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, d)
    if best is None:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    return best[1]


def verified_manifest(media_type: str, raw: bytes, reference: str, header: str | None,
                      what: str) -> Manifest:
    """A Manifest of `raw`, checked against the registry's Docker-Content-Digest `header` and
    against `reference` when that is a digest."""
    digest = sha256_digest(raw)
    if header and header.startswith("sha256:") and header != digest:
        raise DigestMismatch(f"{what}: the registry says {header} but the content hashes to {digest}",
                             header)
    if ":" in reference and reference.startswith("sha256:"):
        h = _sha256(raw)
        if h.hexdigest() != reference.partition(":")[2]:
            raise DigestMismatch(f"{what}: the content does not match the digest", reference)
    elif ":" in reference:
        import hashlib

        try:
            h = hashlib.new(reference.partition(":")[0])
        except ValueError:
            raise InvalidArgument(f"{what}: unsupported digest algorithm") from None
        h.update(raw)
        if h.hexdigest() != reference.partition(":")[2]:
            raise DigestMismatch(f"{what}: the content does not match the digest", reference)
    return Manifest(media_type, raw, digest)
