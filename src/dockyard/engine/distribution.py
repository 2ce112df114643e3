"""`pull`: an image from a registry into the stores, as Docker does, but faster and resumable.

* The reference is normalised (``busybox`` → docker.io/library/busybox:latest); a manifest
  list / OCI index is resolved to this host's platform (or ``--platform``).
* Layers whose chain is already stored are not fetched (``Already exists``); the others go
  through `distribution_layers`: parallel, resumable downloads, extraction while they
  stream, commits in chain order, each checked against the config's diffID.
* Only then is the config stored (image ID = its digest), tagged and its RepoDigest
  recorded. A failure leaves no image, tag or half-applied layer (layers fully registered
  stay, as Docker's do, for the next pull).
"""

from __future__ import annotations


from .. import _json
from ..errors import FailedPrecondition, InvalidArgument, NotFound, Unsupported
from ..images._lock import store_lock
from ..images.refs import Reference, parse_reference
from . import events
from .core import Engine
from .distmeta import DistributionStore, Event, Progress, moving_data, parse_platform, registry_session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    events.emit(engine, "image", "pull", named.familiar(), {"name": named.familiar()})
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
        config = _json.loads(config_bytes)
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
    target = named if named.digest else named.with_tag(named.tag or "latest")
    by_digest = named.with_digest(named.digest or top.digest)
    if images.exists(image.config.digest) and images.refs.get(target) == image.config.digest \
            and images.refs.get(by_digest) == image.config.digest:  # up to date: nothing to write
        progress.emit(Event(f"Digest: {top.digest}"))
        return image.config.digest, False
    with store_lock(engine.paths):
        existed = images.exists(image.config.digest)
        image_id = images.create_image_raw(config_bytes)
        try:
            if image_id != image.config.digest:
                raise FailedPrecondition(f"image config digest mismatch: {image_id} != {image.config.digest}")
            updated = images.refs.get(target) != image_id
            if updated:
                images.refs.add(target, image_id)
                images.set_last_updated(image_id)
            images.add_digest(by_digest, image_id)
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
    """Make the chain of `diff_ids` present; when it already is (the common "up to date"
    pull) without loading the download pipeline."""
    from ..images.layers import chain_ids

    chains = chain_ids(diff_ids)
    if not all(engine.layers.exists(c) for c in chains):
        from .distribution_layers import fetch_layers

        moving_data()
        fetch_layers(engine, client, named, layers, diff_ids, progress)
        return
    dist = DistributionStore(engine.paths)
    for desc, diff_id in zip(layers, diff_ids):
        progress.emit(Event("Already exists", _short(desc.digest)))
        dist.record(diff_id, desc.digest, named.name)


def manifest_json(engine: Engine, ref: str) -> bytes:
    """`manifest inspect`: the raw manifest (or index) of `ref` from its registry."""
    named = parse_reference(ref)
    client = registry_session(named.domain, named.path, "pull")
    return bytes(client.get_manifest(named.digest or named.tag or "latest").raw)

