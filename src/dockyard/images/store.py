"""The image store: Docker's imagedb, the reference store and the layer store together.

On disk (under ``image/overlay2/``)::

    imagedb/content/sha256/<hex>               the image config bytes; sha256(bytes) = ID
    imagedb/metadata/sha256/<hex>/parent       "sha256:<parent image id>" (commit)
    imagedb/metadata/sha256/<hex>/lastUpdated  when it was last tagged
    repositories.json                          see `repositories`

Mutations run under the store lock (`_lock.store_lock`, re-entrant per thread). Callbacks
passed in (``containers_using``) run under it too and must not take ``paths.lock`` with
``_util.locked`` (use `store_lock`, or nothing).
"""

from __future__ import annotations

from .._lean import suppress
from .._path import Path

from .. import _json
from .._record import dataclass, field
from .._util import ZERO_TIME, atomic_write, now_rfc3339, parse_rfc3339, rmtree
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..paths import Paths
from ._lock import store_lock
from .config import container_config, host_architecture, host_variant
from .layers import LayerStore, chain_ids
from .refs import Reference, is_hex_prefix, parse_any, parse_reference
from .repositories import ReferenceStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable

#: Docker's layer.EmptyLayer (a tar of two zero blocks) and Python tarfile's empty
#: archive (padded to a 10 KiB record): a diff with nothing in it adds no layer.
EMPTY_DIFF_IDS = frozenset((
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",  # 1024 zero bytes
    "sha256:84ff92691f909a05b224e1c56abb4864f01b4f8e3c854e4bb4c7baf1d3f6d652",  # 10240 zero bytes
))

#: containers_using(image_id) -> [(container_id, running), ...]
if TYPE_CHECKING:
    ContainersUsing = Callable[[str], list[tuple[str, bool]]]


@dataclass(frozen=True)
class Image:
    id: str
    config: dict[str, Any] = field(compare=False, hash=False, repr=False)
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    top_chain_id: str | None
    diff_ids: tuple[str, ...]
    created: str
    size: int
    parent: str
    last_tag_time: str = ""

    @property
    def container_config(self) -> dict[str, Any]:
        """The image's "config" in Docker's full container.Config shape."""
        return container_config(self.config.get("config"))


def _hex(image_id: str) -> str:
    return image_id[7:] if image_id.startswith("sha256:") else image_id


class ImageStore:
    def __init__(self, paths: Paths, layers: LayerStore) -> None:
        self.paths = paths
        self.layers = layers
        self.refs = ReferenceStore(paths)
        self.content = paths.imagedb / "content" / "sha256"
        self.metadata = paths.imagedb / "metadata" / "sha256"

    # ---- imagedb -----------------------------------------------------------------------

    def create_image(self, config: dict[str, Any], durable: bool = True) -> str:
        """Store an image config (serialised compactly, in the dict's order); return its ID.
        `durable=False` skips the fsync (the builder syncs the file system once at the end)."""
        return self.create_image_raw(_json.dumps(config).encode(), durable)

    def create_image_raw(self, data: bytes, durable: bool = True) -> str:
        """Store image config bytes exactly as given (pull/load); return "sha256:<hex>".

        The layers named by rootfs.diff_ids must already be registered.
        """
        try:
            config = _json.loads(data)
        except ValueError as e:
            raise InvalidArgument(f"invalid image config: {e}") from None
        if not isinstance(config, dict):
            raise InvalidArgument("invalid image config: not a JSON object")
        diff_ids = _diff_ids(config)
        if diff_ids and not self.layers.exists(chain_ids(diff_ids)[-1]):
            raise FailedPrecondition(
                f"failed to create image: layer {chain_ids(diff_ids)[-1]} does not exist"
            )
        import hashlib

        hexid = hashlib.sha256(data).hexdigest()
        path = self.content / hexid
        if not path.exists():
            atomic_write(path, data, mode=0o600, durable=durable)
        return "sha256:" + hexid

    def exists(self, image_id: str) -> bool:
        return (self.content / _hex(image_id)).is_file()

    def ids(self) -> list[str]:
        if not self.content.is_dir():
            return []
        return ["sha256:" + p.name for p in self.content.iterdir() if len(p.name) == 64]

    def raw_config(self, image_id: str) -> bytes:
        try:
            return (self.content / _hex(image_id)).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None

    def get(self, image_id: str) -> Image:
        """The image with this exact ID (NotFound otherwise)."""
        config = _json.loads(self.raw_config(image_id))
        image_id = "sha256:" + _hex(image_id)
        refs = self.refs.references(image_id)
        diff_ids = _diff_ids(config)
        top = chain_ids(diff_ids)[-1] if diff_ids else None
        size = 0
        if top is not None and self.layers.exists(top):
            size = sum(layer.size for layer in self.layers.chain(top))
        return Image(
            id=image_id,
            config=config,
            repo_tags=tuple(r.familiar() for r in refs if r.digest is None),
            repo_digests=tuple(r.familiar() for r in refs if r.digest is not None),
            top_chain_id=top,
            diff_ids=tuple(diff_ids),
            created=str(config.get("created") or ""),
            size=size,
            parent=self._meta(image_id, "parent"),
            last_tag_time=self._meta(image_id, "lastUpdated"),
        )

    def _meta(self, image_id: str, key: str) -> str:
        try:
            return (self.metadata / _hex(image_id) / key).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return ""

    def set_parent(self, image_id: str, parent_id: str, durable: bool = True) -> None:
        atomic_write(self.metadata / _hex(image_id) / "parent", parent_id, durable=durable)

    def set_last_updated(self, image_id: str) -> None:
        atomic_write(self.metadata / _hex(image_id) / "lastUpdated", now_rfc3339())

    def children(self, image_id: str) -> list[str]:
        """IDs of images whose parent is `image_id`."""
        if not self.metadata.is_dir():
            return []
        out = []
        for d in self.metadata.iterdir():
            with suppress(FileNotFoundError, NotADirectoryError):
                if (d / "parent").read_text().strip() == image_id and self.exists(d.name):
                    out.append("sha256:" + d.name)
        return out

    def delete_image(self, image_id: str) -> None:
        """Remove the config and metadata of `image_id` (not its tags or layers)."""
        with suppress(FileNotFoundError):
            (self.content / _hex(image_id)).unlink()
        rmtree(self.metadata / _hex(image_id))

    # ---- lookup ------------------------------------------------------------------------

    def resolve(self, name_or_id: str) -> Image:
        """Find an image by reference (tag defaults to latest), digest, or ID / ID prefix."""
        ref = parse_any(name_or_id)
        if isinstance(ref, str):
            if self.exists(ref):
                return self.get(ref)
            raise NotFound(f"No such image: {ref}")
        image_id = self.refs.get(ref)
        if image_id is not None and self.exists(image_id):
            return self.get(image_id)
        found = self.search_id(name_or_id)
        if found is not None:
            return self.get(found)
        raise NotFound(f"No such image: {ref.familiar()}")

    def search_id(self, prefix: str) -> str | None:
        """The one image ID starting with `prefix` ([sha256:]hex), None if none or several."""
        if not is_hex_prefix(prefix):
            return None
        hexp = _hex(prefix)
        matches = [i for i in self.ids() if i[7:].startswith(hexp)]
        return matches[0] if len(matches) == 1 else None

    def list_images(self) -> list[Image]:
        """All images, newest first."""
        images = []
        for image_id in self.ids():
            with suppress(NotFound, ValueError):
                images.append(self.get(image_id))
        images.sort(key=lambda i: (_timestamp(i.created), i.id), reverse=True)
        return images

    # ---- tags --------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> Reference:
        """`docker tag`: point `target` (tag defaults to latest) at the image `source` names."""
        ref = parse_reference(target)
        if ref.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        with store_lock(self.paths):
            image = self.resolve(source)
            self.refs.add(ref, image.id)
            self.set_last_updated(image.id)
        return ref

    def add_digest(self, ref: Reference, image_id: str) -> None:
        """Record ``name@digest`` for a pulled image (shown in RepoDigests)."""
        if ref.digest is None:
            raise InvalidArgument(f"reference {ref.familiar()} has no digest")
        with store_lock(self.paths):
            if not self.exists(image_id):
                raise NotFound(f"No such image: {image_id}")
            self.refs.add(ref.with_digest(ref.digest), image_id)

    def untag(self, ref: str) -> str:
        """Remove one tag or digest reference; return the image ID it pointed to."""
        parsed = parse_reference(ref)
        with store_lock(self.paths):
            image_id = self.refs.get(parsed)
            if image_id is None or not self.refs.delete(parsed):
                raise NotFound(f"No such image: {parsed.familiar()}")
        return image_id

    def remove(self, name_or_id: str, force: bool, containers_using: ContainersUsing,
               prune: bool = True) -> list[tuple[str, str]]:
        """`docker rmi`: returns Docker's lines, [("Untagged", "busybox:latest"),
        ("Deleted", "sha256:<image>"), ("Deleted", "sha256:<layer chain id>"), ...].

        `containers_using(image_id)` lists the containers created from that image as
        (container_id, running) pairs. Running containers block removal even with force;
        stopped ones block it unless force. Layers still used by other images or by
        containers' read-write layers are kept. With `prune`, untagged parent images
        left without children are removed too (as Docker does).
        """
        with store_lock(self.paths):
            from . import removal

            return removal.remove_image(self, name_or_id, force, prune, containers_using)

    # ---- create ------------------------------------------------------------------------

    def import_tar(self, stream: BinaryIO, ref: str | None, changes: list[str],
                   message: str = "", src: str = "-") -> str:
        """`docker import`: one layer from `stream`, config from `changes`; returns the ID."""
        target = parse_reference(ref) if ref else None
        if target is not None and target.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        from .changes import apply_changes

        from .tarsplit import register_recorded

        config = container_config(apply_changes({}, changes))
        layer = register_recorded(self.layers, stream, None)  # keeps the tar's layout for save
        created = now_rfc3339()
        comment = message or f"Imported from {src}"
        image: dict[str, Any] = {
            "architecture": host_architecture(),
            "comment": comment,
            "config": config,
            "created": created,
            "history": [{"created": created, "comment": comment}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        variant = host_variant()
        if variant:
            image["variant"] = variant
        with store_lock(self.paths):
            try:
                image_id = self.create_image(image)
            except BaseException:
                self.release_unused(layer.chain_id)
                raise
            if target is not None:
                self.refs.add(target, image_id)
                self.set_last_updated(image_id)
        return image_id

    def commit_layer(self, upper: Path, lowers: list[Path], parent_image: Image | None,
                     config: dict[str, Any], author: str = "", comment: str = "",
                     created_by: str = "") -> str:
        """`docker commit`: the changes in `upper` (over `lowers`, top first) become a new
        layer on `parent_image`; `config` is the new image's container config."""
        from .tarfs import write_diff_tar

        self.paths.tmp.mkdir(parents=True, exist_ok=True)
        base = parent_image.config if parent_image else {}
        parent_top = parent_image.top_chain_id if parent_image else None
        import tempfile

        with tempfile.TemporaryFile(dir=self.paths.tmp) as f:
            diff_id = write_diff_tar(upper, lowers, f)
            empty = diff_id in EMPTY_DIFF_IDS
            layer = None
            if not empty:
                f.seek(0)
                layer = self.layers.register(f, parent_top)
        created = now_rfc3339()
        history_item: dict[str, Any] = {"created": created}
        for key, value in (("author", author), ("created_by", created_by),
                           ("comment", comment)):
            if value:
                history_item[key] = value
        if empty:
            history_item["empty_layer"] = True
        diff_ids = list(_diff_ids(base)) + ([layer.diff_id] if layer else [])
        image: dict[str, Any] = {}
        if comment:
            image["comment"] = comment
        image["created"] = created
        if author:
            image["author"] = author
        image["config"] = container_config(config)
        image["architecture"] = base.get("architecture") or host_architecture()
        if base.get("variant") or (not parent_image and host_variant()):
            image["variant"] = base.get("variant") or host_variant()
        image["os"] = base.get("os") or "linux"
        image["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        image["history"] = [*(base.get("history") or []), history_item]
        with store_lock(self.paths):
            try:
                image_id = self.create_image(image)
            except BaseException:
                if layer is not None:
                    self.release_unused(layer.chain_id)
                raise
            if parent_image is not None:
                self.set_parent(image_id, parent_image.id)
        return image_id

    def remove_container_layer(self, container_id: str, image_id: str | None = None) -> list[str]:
        """`LayerStore.remove_rw`, then release the image layers under it if no image uses
        them any more (an image force-removed while the container existed). Returns the
        deleted layers' chain IDs; a container without a layer is not an error. `image_id`,
        the container's image: while it exists and ends in that layer, no other image needs
        to be read (the usual case, and O(1) instead of O(images))."""
        with store_lock(self.paths):
            try:
                parent = self.layers.get_rw(container_id).parent
            except NotFound:
                return []
            self.layers.remove_rw(container_id)
            if not parent or (image_id and self._top_chain(image_id) == parent):
                return []
            return self.release_unused(parent)

    def _top_chain(self, image_id: str) -> str | None:
        """The image's top layer from its config alone (not `get`: no sizes, no refs)."""
        try:
            diff_ids = _diff_ids(_json.loads(self.raw_config(image_id)))
        except (NotFound, ValueError, AttributeError):
            return None
        return chain_ids(diff_ids)[-1] if diff_ids else None

    def release_unused(self, chain_id: str) -> list[str]:
        """Release `chain_id` unless an image uses it; returns deleted chain IDs."""
        in_use = {top for top in map(self._top_chain, self.ids()) if top}
        return [l.chain_id for l in self.layers.release(chain_id, in_use)]

    # ---- inspect -----------------------------------------------------------------------

    def inspect(self, image: Image) -> dict[str, Any]:
        """`docker image inspect` JSON (Engine API 1.45 shape)."""
        cfg = image.config
        out: dict[str, Any] = {
            "Id": image.id,
            "RepoTags": list(image.repo_tags),
            "RepoDigests": list(image.repo_digests),
            "Parent": image.parent,
            "Comment": cfg.get("comment", ""),
            "Created": image.created,
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": container_config(cfg["config"]) if cfg.get("config") else None,
            "Architecture": cfg.get("architecture", ""),
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        out["Os"] = cfg.get("os", "")
        if cfg.get("os.version"):
            out["OsVersion"] = cfg["os.version"]
        out["Size"] = image.size
        data: dict[str, str] = {}
        if image.top_chain_id and self.layers.exists(image.top_chain_id):
            data = self.layers.graph_data(image.top_chain_id)
        out["GraphDriver"] = {"Data": data or None, "Name": "overlay2"}
        rootfs: dict[str, Any] = {"Type": "layers"}
        if image.diff_ids:
            rootfs["Layers"] = list(image.diff_ids)
        out["RootFS"] = rootfs
        out["Metadata"] = {"LastTagTime": image.last_tag_time or ZERO_TIME}
        return out


def _diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs") or {}
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []



def _timestamp(value: str) -> float:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return 0.0
