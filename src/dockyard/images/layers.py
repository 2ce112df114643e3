"""The layer store: Docker's overlay2 directories and layerdb, keyed by chain ID.

On disk (under the data root)::

    overlay2/<cache-id>/{diff/, link, lower, work/}    one read-only layer
    overlay2/l/<LINK>  -> ../<cache-id>/diff           26-character short names for lowerdir
    image/overlay2/layerdb/sha256/<chain>/{diff, size, cache-id, parent}

A layer is applied into ``overlay2/.tmp-<cache-id>`` outside the store lock; committing it
(rename, short link, then the layerdb entry via a temp dir + rename, last) happens under
the lock, so a crash leaves at worst an unreferenced directory that `gc()` removes.
Container read-write layers live in `rwlayers`; this class is their entry point too.
"""

from __future__ import annotations

import os
import time
from .._lean import suppress
from .._path import Path

from .._record import dataclass
from .._util import atomic_write, new_id
from ..errors import InvalidArgument, NotFound
from ..paths import Paths
from ._lock import store_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Mapping, Sequence

    from .rwlayers import RWLayer, RWPaths


def __getattr__(name: str) -> Any:
    """RWLayer and RWPaths, re-exported lazily: `rwlayers` (and ctypes, for mounts) loads
    only when a command touches containers' layers, not for pull/push/images."""
    if name in ("RWLayer", "RWPaths"):
        from . import rwlayers

        return getattr(rwlayers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Layer", "LayerStore", "PreparedLayer", "RWLayer", "RWPaths", "chain_id_of", "chain_ids"]

LINK_DIR = "l"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_HEX_DIGITS = "0123456789abcdef"


def _chain_hex(chain_id: str) -> str | None:
    """The hex of `sha256:<64 lowercase hex>`, else None."""
    if len(chain_id) == 71 and chain_id.startswith("sha256:") and not chain_id[7:].strip(_HEX_DIGITS):
        return chain_id[7:]
    return None
#: unfinished layer directories older than this are left-overs of a crash
_STALE_TMP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    cache_id: str
    size: int


@dataclass(frozen=True)
class PreparedLayer:
    """A layer applied into ``overlay2/.tmp-<cache_id>``, not yet in the store."""

    tmp: Path
    cache_id: str
    diff_id: str
    size: int


def chain_id_of(parent_chain: str | None, diff_id: str) -> str:
    """Docker's chain ID: the diff ID for a base layer, else sha256("<parent> <diff>")."""
    if parent_chain is None:
        return diff_id
    from ..paths import sha256_hex

    return "sha256:" + sha256_hex(f"{parent_chain} {diff_id}")


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of every prefix of `diff_ids` (base first)."""
    out: list[str] = []
    parent: str | None = None
    for diff_id in diff_ids:
        parent = chain_id_of(parent, diff_id)
        out.append(parent)
    return out


def _hex(chain_id: str) -> str:
    h = _chain_hex(chain_id)
    if h is None:
        raise InvalidArgument(f"invalid layer chain ID: {chain_id!r}")
    return h


def new_link_id() -> str:
    """Docker's overlay2 short link name: 26 upper-case base32 characters."""
    # base32 of 20 random bytes, as base64.b32encode (which imports binascii) would spell it
    n = int.from_bytes(os.urandom(20), "big")
    return "".join(_B32[(n >> (155 - 5 * i)) & 31] for i in range(26))


def _rmtree(path: str | os.PathLike[str]) -> None:
    import shutil  # not at module level: shutil imports bz2, lzma and zlib (~2 ms of every run)

    shutil.rmtree(path, ignore_errors=True)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


class LayerStore:
    """Read-only image layers, and containers' read-write layers (see `rwlayers`)."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.home = paths.overlay
        self.db = paths.layerdb / "sha256"
        self.mounts_db = paths.layerdb / "mounts"
        self._db_s = str(self.db)
        #: chain ID -> (identity of its cache-id file, Layer): a layer's files never change
        #: in place, so one stat replaces four reads; a removed and re-registered layer has a
        #: new cache-id file (another inode), which invalidates the entry.
        self._cache: dict[str, tuple[tuple[int, int], Layer]] = {}

    # ---- queries ---------------------------------------------------------------------

    def exists(self, chain_id: str) -> bool:
        h = _chain_hex(chain_id)
        return h is not None and (self.db / h).is_dir()

    def get(self, chain_id: str) -> Layer:
        d = f"{self._db_s}/{_hex(chain_id)}/"
        try:
            st = os.stat(d + "cache-id")
        except FileNotFoundError:
            raise NotFound(f"layer does not exist: {chain_id}") from None
        key = (st.st_ino, st.st_mtime_ns)
        hit = self._cache.get(chain_id)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            diff_id = _read_text(d + "diff")
            cache_id = _read_text(d + "cache-id")
            size = int(_read_text(d + "size") or "0")
        except FileNotFoundError:
            raise NotFound(f"layer does not exist: {chain_id}") from None
        try:
            parent: str | None = _read_text(d + "parent") or None
        except FileNotFoundError:
            parent = None
        layer = Layer(chain_id, diff_id, parent, cache_id, size)
        self._cache[chain_id] = (key, layer)
        return layer

    def list_layers(self) -> list[Layer]:
        out: list[Layer] = []
        if not self.db.is_dir():
            return out
        for entry in sorted(self.db.iterdir()):
            if len(entry.name) == 64 and not entry.name.startswith("."):
                with suppress(NotFound):
                    out.append(self.get("sha256:" + entry.name))
        return out

    def chain(self, chain_id: str) -> list[Layer]:
        """The layer and all its parents, base first."""
        out: list[Layer] = []
        cur: str | None = chain_id
        while cur is not None:
            layer = self.get(cur)
            out.append(layer)
            cur = layer.parent
        out.reverse()
        return out

    def layer_dir(self, layer: Layer) -> Path:
        return self.home / layer.cache_id

    def diff_dirs(self, chain_id: str) -> list[Path]:
        """Diff directories of the chain, top first (the order of overlay's lowerdir)."""
        return [self.home / l.cache_id / "diff" for l in reversed(self.chain(chain_id))]

    def graph_data(self, chain_id: str) -> dict[str, str]:
        """Docker's overlay2 GetMetadata for an image's top layer (GraphDriver.Data)."""
        layer = self.get(chain_id)
        top = self.home / layer.cache_id
        data: dict[str, str] = {}
        lowers = self.diff_dirs(chain_id)[1:]
        if lowers:
            data["LowerDir"] = ":".join(str(p) for p in lowers)
        data["MergedDir"] = str(top / "merged")
        data["UpperDir"] = str(top / "diff")
        data["WorkDir"] = str(top / "work")
        return data

    # ---- register --------------------------------------------------------------------

    def register(self, stream: BinaryIO, parent: str | None = None) -> Layer:
        """Apply an (optionally compressed) layer tar on top of `parent`; return its layer.

        If a layer with the same chain ID is already stored, the new copy is discarded and
        the stored one returned: a shared layer is kept once.
        """
        if parent is not None:
            self.get(parent)
        return self.commit_prepared(self.prepare(stream), parent)

    def prepare(self, stream: BinaryIO) -> PreparedLayer:
        """Apply a layer tar into an unlinked ``overlay2/.tmp-<cache-id>`` (no parent needed:
        a layer's diff directory does not depend on the layers under it), so that pull can
        extract several layers at once; `commit_prepared` then adds them in chain order."""
        from .tarfs import apply_layer

        self.home.mkdir(parents=True, exist_ok=True, mode=0o710)
        cache_id = new_id()
        tmp = self.home / f".tmp-{cache_id}"
        try:
            (tmp / "diff").mkdir(parents=True, mode=0o755)
            os.chmod(tmp, 0o710)
            result = apply_layer(stream, tmp / "diff")
        except BaseException:
            _rmtree(tmp)
            raise
        return PreparedLayer(tmp, cache_id, result.diff_id, int(result.size))

    def commit_prepared(self, prepared: PreparedLayer, parent: str | None) -> Layer:
        """Store a prepared layer on top of `parent` (the stored copy if the chain exists)."""
        chain_id = chain_id_of(parent, prepared.diff_id)
        try:
            with store_lock(self.paths):
                if self.exists(chain_id):
                    return self.get(chain_id)
                if parent is not None:
                    self.get(parent)  # it may have been released meanwhile
                layer = Layer(chain_id, prepared.diff_id, parent, prepared.cache_id, prepared.size)
                self._commit(prepared.tmp, layer)
                return layer
        finally:
            self.discard_prepared(prepared)

    def discard_prepared(self, prepared: PreparedLayer) -> None:
        """Remove a prepared layer that will not be committed (a no-op once committed)."""
        if prepared.tmp.exists():
            _rmtree(prepared.tmp)

    def lower_string(self, chain_id: str) -> str:
        """The ``lower`` file content of a layer whose parent is `chain_id`:
        ``l/<parent link>:l/<grandparent link>…`` (Docker's getLower)."""
        parent_dir = self.home / self.get(chain_id).cache_id
        lowers = [f"{LINK_DIR}/{(parent_dir / 'link').read_text().strip()}"]
        with suppress(FileNotFoundError):
            above = (parent_dir / "lower").read_text().strip()
            if above:
                lowers.extend(above.split(":"))
        return ":".join(lowers)

    def prepare_dir(self, d: Path, lower: str | None, durable: bool = True) -> str:
        """Write link (+ lower and work/ when there is a parent) into an unlinked layer dir."""
        short = new_link_id()
        atomic_write(d / "link", short, durable=durable)
        if lower is not None:
            (d / "work").mkdir(mode=0o700, exist_ok=True)
            if lower:
                atomic_write(d / "lower", lower, mode=0o666, durable=durable)
        return short

    def link(self, short: str, name: str) -> Path:
        links = self.home / LINK_DIR
        links.mkdir(mode=0o700, exist_ok=True)
        link = links / short
        os.symlink(f"../{name}/diff", link)
        return link

    def _commit(self, tmp: Path, layer: Layer) -> None:
        lower = self.lower_string(layer.parent) if layer.parent else None
        short = self.prepare_dir(tmp, lower)
        final = self.home / layer.cache_id
        os.rename(tmp, final)
        link: Path | None = None
        try:
            link = self.link(short, layer.cache_id)
            from ._mount import syncfs

            syncfs(final)
            self._write_db(layer)
        except BaseException:
            if link is not None:
                with suppress(OSError):
                    link.unlink()
            _rmtree(final)
            raise

    def _write_db(self, layer: Layer) -> None:
        self.db.mkdir(parents=True, exist_ok=True)
        hexid = _hex(layer.chain_id)
        tmp = self.db / f".tmp-{hexid}-{os.urandom(4).hex()}"
        tmp.mkdir()
        try:
            atomic_write(tmp / "diff", layer.diff_id)
            atomic_write(tmp / "size", str(layer.size))
            atomic_write(tmp / "cache-id", layer.cache_id)
            if layer.parent:
                atomic_write(tmp / "parent", layer.parent)
            os.rename(tmp, self.db / hexid)
        except BaseException:
            _rmtree(tmp)
            raise

    # ---- release / gc ----------------------------------------------------------------

    def release(self, chain_id: str, in_use: set[str]) -> list[Layer]:
        """Delete `chain_id`, then its parents, while nothing references them.

        `in_use` holds the chain IDs still referenced by remaining images (their top
        layers). A layer that is the parent of another stored layer, or of a container's
        read-write layer, is kept as well. Returns the deleted layers, top first.
        """
        removed: list[Layer] = []
        with store_lock(self.paths):
            parents = {l.chain_id: l.parent for l in self.list_layers()}
            used = set(in_use) | self.mount_parents()
            cur: str | None = chain_id
            while cur is not None and cur in parents:
                if cur in used or any(p == cur for p in parents.values()):
                    break
                layer = self.get(cur)
                self._delete(layer)
                removed.append(layer)
                del parents[cur]
                cur = layer.parent
        return removed

    def _delete(self, layer: Layer) -> None:
        hexid = _hex(layer.chain_id)
        tomb = self.db / f".del-{hexid}-{os.urandom(4).hex()}"
        os.rename(self.db / hexid, tomb)
        self.remove_layer_dir(layer.cache_id)
        _rmtree(tomb)

    def remove_layer_dir(self, name: str | list[str], later: bool = False) -> None:
        """Remove overlay2/<name> (or each of a list) and its l/ short link (`later`: the
        directories are renamed away now and deleted by one detached process)."""
        names = [name] if isinstance(name, str) else name
        for n in names:
            with suppress(FileNotFoundError, NotADirectoryError):
                short = (self.home / n / "link").read_text().strip()
                if short:
                    with suppress(FileNotFoundError):
                        (self.home / LINK_DIR / short).unlink()
        if later:
            from .._util import remove_later

            remove_later([self.home / n for n in names], self.trash)
        else:
            for n in names:
                _rmtree(self.home / n)

    @property
    def trash(self) -> Path:
        return self.paths.tmp / "trash"

    def gc(self) -> list[str]:
        """Remove what a crash can leave behind: layer directories that no layerdb or
        mounts entry names, stale temp directories and dangling short links."""
        removed: list[str] = []
        with store_lock(self.paths):
            referenced = {l.cache_id for l in self.list_layers()} | self.mount_dir_names()
            for db in (self.db, self.mounts_db):
                if db.is_dir():
                    for entry in db.iterdir():
                        if entry.name.startswith((".tmp-", ".del-")):
                            _rmtree(entry)
                            removed.append(str(entry))
            now = time.time()
            if self.trash.is_dir():  # deletions a crash interrupted (remove_layer_dir later=True)
                for entry in self.trash.iterdir():
                    if now - entry.lstat().st_mtime > _STALE_TMP_SECONDS:
                        _rmtree(entry)
                        removed.append(str(entry))
            if not self.home.is_dir():
                return removed
            for entry in self.home.iterdir():
                if entry.name == LINK_DIR:
                    continue
                if entry.name.startswith(".tmp-"):
                    if now - entry.lstat().st_mtime < _STALE_TMP_SECONDS:
                        continue
                elif entry.name in referenced:
                    continue
                self.remove_layer_dir(entry.name)
                removed.append(str(entry))
            links = self.home / LINK_DIR
            if links.is_dir():
                for link in links.iterdir():
                    if link.is_symlink() and not link.exists():
                        link.unlink()
                        removed.append(str(link))
        return removed

    # ---- container read-write layers (implemented in rwlayers) -------------------------

    def create_rw(self, container_id: str, parent: str | None,
                  init_files: Mapping[str, tuple[bytes, int]]) -> RWLayer:
        """Create the init layer (Docker's skeleton + `init_files`: path -> (data, mode))
        and the container layer on top of image layer `parent` (None: no image layers)."""
        from . import rwlayers

        return rwlayers.create_rw(self, container_id, parent, init_files)

    def get_rw(self, container_id: str) -> RWLayer:
        from . import rwlayers

        return rwlayers.get_rw(self, container_id)

    def list_rw(self) -> list[RWLayer]:
        from . import rwlayers

        return rwlayers.list_rw(self)

    def rw_paths(self, container_id: str) -> RWPaths:
        from . import rwlayers

        return rwlayers.rw_paths(self, container_id)

    def mount_rw(self, container_id: str, volatile: bool = False) -> Path:
        from . import rwlayers

        return rwlayers.mount_rw(self, container_id, volatile)

    def unmount_rw(self, container_id: str) -> None:
        from . import rwlayers

        rwlayers.unmount_rw(self, container_id)

    def remove_rw(self, container_id: str) -> None:
        from . import rwlayers

        rwlayers.remove_rw(self, container_id)

    def graph_driver(self, container_id: str) -> dict[str, Any]:
        from . import rwlayers

        return rwlayers.graph_driver(self, container_id)

    def rw_size(self, container_id: str) -> int:
        from . import rwlayers

        return rwlayers.rw_size(self, container_id)

    def mount_parents(self) -> set[str]:
        """Chain IDs that containers' read-write layers are built on."""
        return {rw.parent for rw in self.list_rw() if rw.parent}

    def mount_dir_names(self) -> set[str]:
        names: set[str] = set()
        for rw in self.list_rw():
            names.update((rw.mount_id, rw.init_id))
        return names
