"""COPY/ADD sources: the build context (with .dockerignore) or another image's rootfs,
resolved with Docker's rules into `CopyEntry` lists, plus their content digests.

Rules: sources are relative to the context root (a leading "/" is ignored); wildcards
(``*``, ``?``, ``[...]``) match per path component; a directory source copies its
contents, not itself; several sources (or a wildcard) need a destination ending in "/";
a destination ending in "/" is a directory (a file goes in as dest/NAME), otherwise a
single file source is written at the destination itself (or into it, if the image has a
directory there). A relative destination is relative to WORKDIR. With ADD, a local tar
archive (plain or compressed) is extracted into the destination; URLs are refused.

Digests cover each copied path's name, type, mode and content (or link target), never
mtimes or owners, so a touched but unchanged file keeps the cache.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import posixpath
import stat
import time
from .._path import Path

from .._record import dataclass, field
from ..errors import InvalidArgument, NotFound
from .backend import CopyEntry, EntryKind
from .ignore import Matcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

_WILD = set("*?[")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceRoot:
    """Where sources are read: the context (with its ignore rules) or an image's rootfs."""

    path: Path
    matcher: Matcher | None = None
    chroot: bool = False  # symlinks resolve inside `path` (an image rootfs)

    def excluded(self, rel: str) -> bool:
        return self.matcher is not None and rel not in ("", ".") and self.matcher.excluded(rel)


@dataclass(frozen=True)
class Plan:
    entries: tuple[CopyEntry, ...]
    #: per copied path: "kind mode sha" (the cache's view; no mtimes)
    files: dict[str, str] = field(default_factory=dict)
    digest: str = ""      # sha256 hex of `files` and the destinations
    source_hash: str = ""  # Docker's history form: file:<hex>, dir:<hex>, multi:<hex>


def resolve_in(root: Path, rel: str) -> str:
    """Host path of `rel` under `root`, following symlinks as if `root` were "/"."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    cur = ""
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            cur = posixpath.dirname(cur)
            continue
        nxt = f"{cur}/{name}" if cur else name
        host = os.path.join(root, nxt)
        if os.path.islink(host):
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"too many levels of symbolic links: {rel}")
            target = os.readlink(host)
            if target.startswith("/"):
                cur = ""
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        cur = nxt
    return os.path.join(root, cur) if cur else str(root)


def _host(src: SourceRoot, rel: str) -> str:
    """Host path of `rel`: its parents resolved inside the root (a symlink in the context
    or the image never leads outside it), the last component not followed."""
    if not rel:
        return str(src.path)
    parent, name = posixpath.split(rel)
    return os.path.join(resolve_in(src.path, parent), name)


def _glob(src: SourceRoot, pattern: str) -> list[str]:
    """Context-relative paths matching `pattern` (filepath.Match per component)."""
    found = [""]
    for comp in pattern.split("/"):
        nxt: list[str] = []
        for base in found:
            if not set(comp) & _WILD:
                cand = f"{base}/{comp}" if base else comp
                if os.path.lexists(_host(src, cand)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(resolve_in(src.path, base)))
            except OSError:
                continue
            for name in names:
                if fnmatch.fnmatchcase(name, comp):
                    nxt.append(f"{base}/{name}" if base else name)
        found = nxt
    return [p for p in found if not src.excluded(p)]


def _clean_src(s: str) -> str:
    rel = posixpath.normpath("/" + s).lstrip("/")
    return "" if rel in (".", "") else rel


#: content digests of context files, path -> [inode, size, mtime_ns, ctime_ns, sha256], kept
#: between builds (`remembered_hashes`); an entry holds while the file's stat data does
_known: dict[str, list[Any]] | None = None
_known_root = "/"
#: a file changed this recently may change again within the same clock tick: not remembered
_RACY_NS = 100_000_000  # ten ticks at HZ=100: ctime comes from the coarse clock
_MAX_KNOWN = 200_000
_dirty: list[str] = []


def _file_sha(path: str, st: os.stat_result | None = None) -> str:
    known = _known if st is not None and _known is not None and path.startswith(_known_root) else None
    sig: list[Any] = []
    if known is not None and st is not None:
        sig = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        rec = known.get(path)
        if rec is not None and rec[:4] == sig:
            return str(rec[4])
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if known is not None and st is not None and time.time_ns() - st.st_ctime_ns > _RACY_NS:
        known[path] = [*sig, digest]
        _dirty.append(path)
    return digest


@contextlib.contextmanager
def remembered_hashes(cache_file: Path, context: Path) -> Iterator[None]:
    """Within the block, context files (under `context`) whose inode, size, mtime and
    ctime are as when they were last hashed keep that digest (as BuildKit's content-hash
    cache does), so a --no-cache rebuild does not read the whole context again. The table
    lives in `cache_file`."""
    global _known, _known_root
    import json

    try:
        with open(cache_file) as f:
            table = json.load(f)
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    _dirty.clear()
    _known, _known_root = table, str(context).rstrip("/") + "/"
    try:
        yield
    finally:
        _known, _known_root = None, "/"
        if _dirty:
            if len(table) > _MAX_KNOWN:
                table = {}
            from .._util import atomic_write

            with contextlib.suppress(OSError):
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(cache_file, json.dumps(table, separators=(",", ":")), durable=False)


def is_archive(path: str) -> bool:
    """A tar archive, plain or gzip/bzip2/xz-compressed (ADD extracts those)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if len(head) >= 262 and head[257:262] == b"ustar":
        return True
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        import tarfile

        try:
            with tarfile.open(path, "r:*") as tf:
                return tf.next() is not None
        except (tarfile.TarError, OSError, EOFError):
            return False
    return False


def plan_copy(src: SourceRoot, sources: list[str], dest: str, workdir: str, cmd: str = "COPY",
              extract_archives: bool = False) -> Plan:
    """Resolve `sources` into entries under `dest` (see the module rules)."""
    for s in sources:
        if "://" in s:
            if cmd == "ADD":
                raise InvalidArgument(f"ADD {s}: cannot download a remote URL: this build has no network "
                                      "access to fetch it; download it into the build context and COPY it")
            raise InvalidArgument(f"COPY {s}: source can't be a URL for COPY")
    dest_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    full = posixpath.normpath(full)
    matches: list[str] = []
    for s in sources:
        rel = _clean_src(s)
        if set(rel) & _WILD:
            got = _glob(src, rel)
            if not got:
                raise NotFound(f"{cmd} failed: no source files were specified" if not rel else
                               f"{cmd} failed: no files match {s!r} in the build context "
                               "(or all are excluded by .dockerignore)")
            matches.extend(got)
        else:
            if not os.path.lexists(_host(src, rel)) or src.excluded(rel):
                where = "build context" if not src.chroot else "source image"
                raise NotFound(f"{cmd} failed: file not found in {where} or excluded by .dockerignore: "
                               f"stat {s}: file does not exist")
            matches.append(rel)
    several = len(matches) > 1 or any(set(s) & _WILD for s in sources)
    if several and not dest_dir:
        raise InvalidArgument(f"When using {cmd} with more than one source file, the destination must be a "
                              "directory and end with a /")
    entries: list[CopyEntry] = []
    files: dict[str, str] = {}
    kinds: list[str] = []
    for rel in matches:
        host = _host(src, rel)
        if os.path.islink(host):
            host = resolve_in(src.path, rel)  # a symlink named as a source is followed, inside
            if not os.path.lexists(host):
                raise NotFound(f"{cmd} failed: {rel}: symbolic link target does not exist in the "
                               f"{'source image' if src.chroot else 'build context'}")
        st = os.lstat(host)
        name = posixpath.basename(rel) if rel else ""
        if stat.S_ISDIR(st.st_mode):
            kinds.append("dir")
            entries.append(CopyEntry(EntryKind.DIR, full, mode=None))
            _walk_dir(src, rel, host, full, entries, files)
        elif extract_archives and stat.S_ISREG(st.st_mode) and is_archive(host):
            kinds.append("file")
            entries.append(CopyEntry(EntryKind.TAR, full, host))
            files[rel or "."] = f"tar {_file_sha(host, st)}"
        else:
            kinds.append("file")
            target = posixpath.join(full, name) if dest_dir else full
            entries.append(_entry(host, target, st, into=not dest_dir, keep_owner=src.chroot))
            files[rel] = _describe(host, st, src.chroot)
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(f"{k}\0{files[k]}\n".encode("utf-8", "surrogateescape"))
    h.update(f"dest {full}{'/' if dest_dir else ''}".encode())
    digest = h.hexdigest()
    if len(matches) == 1:
        source_hash = f"{kinds[0]}:{digest}"
    else:
        source_hash = f"multi:{digest}"
    return Plan(tuple(entries), files, digest, source_hash)


def _describe(host: str, st: os.stat_result, keep_owner: bool = False) -> str:
    mode = stat.S_IMODE(st.st_mode)
    if keep_owner:
        return f"{_describe(host, st)} uid={st.st_uid} gid={st.st_gid}"
    if stat.S_ISLNK(st.st_mode):
        return f"link {mode:o} {os.readlink(host)}"
    if stat.S_ISDIR(st.st_mode):
        return f"dir {mode:o}"
    if stat.S_ISREG(st.st_mode):
        return f"file {mode:o} {_file_sha(host, st)}"
    return f"other {mode:o}"


def _entry(host: str, target: str, st: os.stat_result, into: bool = False,
           keep_owner: bool = False) -> CopyEntry:
    mode = stat.S_IMODE(st.st_mode)
    owner = (st.st_uid, st.st_gid) if keep_owner else None
    if stat.S_ISLNK(st.st_mode):
        return CopyEntry(EntryKind.SYMLINK, target, os.readlink(host), mtime=st.st_mtime, owner=owner)
    if stat.S_ISDIR(st.st_mode):
        return CopyEntry(EntryKind.DIR, target, mode=mode, mtime=st.st_mtime, owner=owner)
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"cannot copy {host}: not a regular file, directory or symlink")
    return CopyEntry(EntryKind.FILE, target, host, mode=mode, mtime=st.st_mtime, into_existing_dir=into,
                     owner=owner)


def _walk_dir(src: SourceRoot, rel: str, host: str, dest: str, entries: list[CopyEntry],
              files: dict[str, str]) -> None:
    for name in sorted(os.listdir(host)):
        crel = f"{rel}/{name}" if rel else name
        if src.excluded(crel) and not (src.matcher and src.matcher.has_exclusions):
            continue
        chost = os.path.join(host, name)
        st = os.lstat(chost)
        target = posixpath.join(dest, name)
        if stat.S_ISDIR(st.st_mode):
            before = len(entries)
            entries.append(_entry(chost, target, st, keep_owner=src.chroot))
            _walk_dir(src, crel, chost, target, entries, files)
            if src.excluded(crel):
                if len(entries) == before + 1:
                    entries.pop()  # excluded and nothing re-included below it
                    continue
            files[crel] = _describe(chost, st, src.chroot)
            continue
        if src.excluded(crel):
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            continue  # sockets, fifos and devices below a copied directory are left out
        entries.append(_entry(chost, target, st, keep_owner=src.chroot))
        files[crel] = _describe(chost, st, src.chroot)


def plan_copy_parents(src: SourceRoot, sources: list[str], dest: str, workdir: str, cmd: str = "COPY") -> Plan:
    """``COPY --parents``: every match keeps its path (below a ``/./`` pivot in the source,
    else from the root) under `dest`, which is a directory; wildcards match as usual."""
    full = posixpath.normpath(dest if dest.startswith("/") else posixpath.join(workdir or "/", dest))
    entries: list[CopyEntry] = []
    files: dict[str, str] = {}
    for s in sources:
        pivot = s.find("/./")
        prefix = _clean_src(s[:pivot]) if pivot >= 0 else ""
        rel = _clean_src(s)
        if set(rel) & _WILD:
            matches = _glob(src, rel)
            if not matches:
                raise NotFound(f"{cmd} failed: no files match {s!r} in the build context "
                               "(or all are excluded by .dockerignore)")
        else:
            matches = [rel]
        for m in matches:
            kept = m[len(prefix):].lstrip("/") if prefix and (m == prefix or m.startswith(prefix + "/")) else m
            host = _host(src, m)
            is_dir = os.path.isdir(host) if not os.path.islink(host) else os.path.isdir(resolve_in(src.path, m))
            target = posixpath.join(full, kept) if is_dir else posixpath.join(full, posixpath.dirname(kept))
            sub = plan_copy(src, [m], target.rstrip("/") + "/", "/", cmd)
            entries.extend(sub.entries)
            files.update({f"{k} -> {target}": v for k, v in sub.files.items()})
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(f"{k}\0{files[k]}\n".encode("utf-8", "surrogateescape"))
    h.update(f"dest {full}/ parents".encode())
    digest = h.hexdigest()
    return Plan(tuple(entries), files, digest, f"multi:{digest}")
