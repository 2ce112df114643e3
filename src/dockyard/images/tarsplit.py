"""Keep what a layer tar looked like, so that `save` can give back the very same bytes.

A layer's diffID is the sha256 of its uncompressed tar; the store keeps only the applied
tree (``overlay2/<cache-id>/diff``). Re-tarring the tree gives the original bytes only if
the original was written the way `tarfs.write_diff_tar` writes (true for ``commit`` and
``build`` layers), not for a tar made by another tool (entry order, header formats,
owner names, record padding all differ). So while a layer is registered the tar's
layout is recorded, as Docker does with tar-split: every byte that is not regular-file
content, and for each regular file its name and size. `reassemble` reads the contents
back from the diff dir; the result is checked against the diffID by the caller.

The record is ``layerdb/sha256/<chain>/tar-split.json.gz`` (Docker's file name), gzip'd
JSON lines in tar-split's shape: ``{"type":2,"payload":"<base64>"}`` for raw bytes,
``{"type":1,"name":"etc/passwd","size":123}`` for file content.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import posixpath

from .._util import atomic_write
from ..errors import DockyardError
from .layers import Layer, LayerStore
from .tarfs_stream import _BZIP2_MAGIC, _GZIP_MAGIC, _XZ_MAGIC, _ZSTD_MAGIC, Gunzip, _Prefixed, read_head

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterable, Iterator

SIDECAR = "tar-split.json.gz"
_BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_HEADER_ONLY = (b"1", b"2", b"3", b"4", b"5", b"6")
_META = (b"x", b"g", b"L", b"K")
_SEGMENT_MAX = 1 << 20
_CHUNK = 1 << 20


class NotReproducible(DockyardError):
    """The recorded layout cannot be filled from the layer's tree."""


def _parse_size(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            break
        if length <= 0:
            break
        rec = data[sp + 1:pos + length - 1]
        key, _, value = rec.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _clean(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return name


class Recorder:
    """A reader over an uncompressed tar stream that records its layout as it passes."""

    def __init__(self, plain: BinaryIO, digest: bool = True) -> None:
        """`digest=False`: no hash of its own (the reader applying the tar computes the
        diffID anyway; `digest()` is then unavailable)."""
        self._src = plain
        self._sha = hashlib.sha256() if digest else None
        self.items: list[dict[str, Any]] = []
        self._seg = bytearray()
        self._pending = bytearray()  # bytes not yet classified
        self._state = "header"
        self._left = 0  # bytes left in the current data / meta / padding run
        self._meta_type = b""
        self._meta = bytearray()
        self._pad = 0
        self._longname: str | None = None
        self._pax: dict[str, str] = {}
        self.eof = False

    def digest(self) -> str:
        if self._sha is None:
            raise ValueError("Recorder made with digest=False")
        return "sha256:" + self._sha.hexdigest()

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n if n is not None and n >= 0 else _CHUNK)
        if data:
            if self._sha is not None:
                self._sha.update(data)
            self._feed(data)
        else:
            self.eof = True
        return data

    def finish(self) -> list[dict[str, Any]]:
        while self.read(_CHUNK):
            pass
        self._seg += self._pending
        self._pending.clear()
        self._flush_seg()
        return self.items

    def _flush_seg(self) -> None:
        if self._seg:
            self.items.append({"type": 2, "payload": base64.b64encode(bytes(self._seg)).decode()})
            self._seg.clear()

    def _feed(self, data: bytes) -> None:
        self._pending += data
        buf = self._pending
        pos = 0
        while pos < len(buf):
            if self._state == "raw":
                self._seg += buf[pos:]
                pos = len(buf)
            elif self._state == "data":
                take = min(self._left, len(buf) - pos)
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state = "pad"
                    self._left = self._pad
            elif self._state in ("pad", "meta"):
                take = min(self._left, len(buf) - pos)
                chunk = buf[pos:pos + take]
                self._seg += chunk
                if self._state == "meta":
                    self._meta += chunk
                pos += take
                self._left -= take
                if self._left == 0:
                    if self._state == "meta":
                        self._end_meta()
                    self._state = "header"
            else:  # header
                if len(buf) - pos < _BLOCK:
                    break
                self._header(bytes(buf[pos:pos + _BLOCK]))
                pos += _BLOCK
            if len(self._seg) >= _SEGMENT_MAX:
                self._flush_seg()
        del buf[:pos]

    def _header(self, block: bytes) -> None:
        self._seg += block
        if block == b"\0" * _BLOCK:
            self._state = "raw"
            return
        typeflag = block[156:157]
        size = _parse_size(block[124:136])
        padded = -size % _BLOCK
        if typeflag in _META:
            self._meta_type, self._meta = typeflag, bytearray()
            self._state, self._left = "meta", size + padded
            if self._left == 0:
                self._end_meta()
                self._state = "header"
            return
        pax, self._pax = self._pax, {}
        longname, self._longname = self._longname, None
        if "size" in pax:
            with contextlib.suppress(ValueError):
                size = int(pax["size"])
                padded = -size % _BLOCK
        if typeflag in _HEADER_ONLY:
            return
        if typeflag in _REGULAR and size > 0:
            name = pax.get("path") or longname
            if name is None:
                raw = block[0:100].split(b"\0", 1)[0]
                if block[257:262] == b"ustar":
                    prefix = block[345:500].split(b"\0", 1)[0]
                    if prefix:
                        raw = prefix + b"/" + raw
                name = raw.decode("utf-8", "surrogateescape")
            self._flush_seg()
            self.items.append({"type": 1, "name": _clean(name), "size": size})
            self._state, self._left, self._pad = "data", size, padded
            return
        if size + padded:  # an unknown entry type with data: keep its bytes as they are
            self._state, self._left = "pad", size + padded

    def _end_meta(self) -> None:
        data = bytes(self._meta)
        if self._meta_type == b"x":
            self._pax = _pax_records(data)
        elif self._meta_type == b"L":
            self._longname = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


# ---- decompression ------------------------------------------------------------------


def plain_stream(stream: BinaryIO) -> BinaryIO | None:
    """The uncompressed view of a layer stream; None for a compression we cannot undo."""
    head = read_head(stream, 6)
    raw: Any = _Prefixed(head, stream)
    if head.startswith(_GZIP_MAGIC):
        return Gunzip(raw)  # type: ignore[return-value]
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    if head.startswith(_ZSTD_MAGIC):
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            return None
        return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[no-any-return]
    return raw  # type: ignore[no-any-return]


# ---- register / save ----------------------------------------------------------------


def sidecar_path(layers: LayerStore, chain_id: str) -> str:
    return os.path.join(layers.db, chain_id.split(":", 1)[1], SIDECAR)


def register_recorded(layers: LayerStore, stream: BinaryIO, parent: str | None) -> Layer:
    """`LayerStore.register`, keeping the tar's layout beside the layer (see module doc)."""
    head = stream.read(6)
    plain = plain_stream(_Prefixed(head, stream))  # type: ignore[arg-type]
    if plain is None:  # e.g. zstd without the module: register says why
        return layers.register(_Prefixed(head, stream), parent)  # type: ignore[arg-type]
    rec = Recorder(plain)
    layer = layers.register(rec, parent)  # type: ignore[arg-type]
    items = rec.finish()
    path = sidecar_path(layers, layer.chain_id)
    if rec.digest() == layer.diff_id and not os.path.exists(path):
        lines = b"".join(json.dumps(i, separators=(",", ":")).encode() + b"\n" for i in items)
        with contextlib.suppress(OSError):
            atomic_write(path, gzip.compress(lines, mtime=0), mode=0o600)
    return layer


def _open_in(root: str, name: str) -> BinaryIO:
    """Open `name` below `root` without following any symlink."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise NotReproducible(f"bad name {name!r}")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    except OSError as e:
        raise NotReproducible(f"{name}: {e.strerror}") from None
    finally:
        os.close(fd)
    return open(ffd, "rb")


def _items(path: str) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def fill(items: Iterable[dict[str, Any]], root: str, out: BinaryIO) -> str:
    """Write a recorded tar, its file contents read from the tree at `root`; return the
    sha256 of what was written. Raises `NotReproducible`."""
    sha = hashlib.sha256()
    try:
        for item in items:
            if item.get("type") == 2:
                data = base64.b64decode(item["payload"])
                sha.update(data)
                out.write(data)
                continue
            left = int(item["size"])
            with _open_in(root, str(item["name"])) as f:
                while left:
                    chunk = f.read(min(left, _CHUNK))
                    if not chunk:
                        raise NotReproducible(f"{item['name']}: shorter than recorded")
                    sha.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
    except (OSError, EOFError, ValueError, KeyError) as e:
        raise NotReproducible(f"reading a tar-split record: {e}") from None
    return "sha256:" + sha.hexdigest()


def reassemble(layers: LayerStore, layer: Layer, out: BinaryIO) -> str | None:
    """Write the layer's original tar from its record and tree; return the sha256 of what
    was written, or None when there is no record. Raises `NotReproducible`."""
    path = sidecar_path(layers, layer.chain_id)
    if not os.path.exists(path):
        return None
    return fill(_items(path), os.fspath(layers.layer_dir(layer) / "diff"), out)
