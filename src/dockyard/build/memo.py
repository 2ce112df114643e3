"""The build's fast path: a build whose every step was a cache hit is remembered, and the
same build again, with nothing changed, is answered from that record without parsing the
Dockerfile, hashing the context or loading the builder.

A record (``<root>/build/cache/memo/<key>.json``) is written after a build in which every
step was a cache hit. Its key covers the Dockerfile's bytes and path, the context's path,
the ignore file beside an outside Dockerfile, and every option that reaches the build
(build args with their values, target, labels, network, SOURCE_DATE_EPOCH). It holds:

* a fingerprint of the whole context tree: for every entry its path, type, mode, owner,
  size, inode, mtime and ctime (ctime changes on any write, rename or chmod and cannot
  be set back), so any change anywhere in the context, .dockerignore included, misses;
* the step cache entries the build used and the image each gave: every entry must still
  be there and name the same image, and every image must exist (``builder prune``,
  ``rmi`` or a ``--no-cache`` rebuild of a step all make it miss);
* each image reference the build resolved (FROM, ``--from``), with the repositories.json
  key it was found under and the image ID: a retag of the base misses;
* the builder's log lines, replayed as they were (all "Using cache");
* the familiar form of the tags given then and the image's labels: when every ``-t``
  already names the image, tagging is only the "tag" event Docker emits.

Builds with remote sources (ADD of a URL or Git repository), --secret, --ssh, --pull or a
context or Dockerfile on stdin are never recorded or answered here. Anything unexpected
is a miss: the full builder runs, and gives the same result the record would have.
"""

from __future__ import annotations

import json
import os
import re
import stat
from .._path import Path

from ..paths import sha256

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = 2
_HEXID = re.compile(r"^(sha256:)?[0-9a-f]{1,64}$")


def build_key(dockerfile: bytes, dockerfile_path: str, context: str, options: dict[str, Any],
              extra_files: list[str]) -> str:
    h = sha256()
    h.update(json.dumps([VERSION, dockerfile_path, context, options], sort_keys=True).encode())
    h.update(b"\0")
    h.update(dockerfile)
    for path in extra_files:
        h.update(b"\0" + path.encode() + b"\0")
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except OSError:
            h.update(b"-")
    return h.hexdigest()


#: a context entry changed this recently may change again within the same clock tick
#: without its ctime moving: such a context is not recorded
RACY_NS = 100_000_000  # ten clock ticks at HZ=100; ctime comes from the coarse clock


def fingerprint(root: str) -> str:
    """A digest of the stat data of every entry under `root` (see the module doc); ""
    when an entry changed too recently to be told apart from a later change."""
    h = sha256()
    newest = [0]

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            newest[0] = max(newest[0], st.st_ctime_ns)
            h.update(f"{rel}{e.name}\0{st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_size} {st.st_ino} "
                     f"{st.st_mtime_ns} {st.st_ctime_ns}\n".encode("utf-8", "surrogateescape"))
            if stat.S_ISDIR(st.st_mode):
                walk(e.path, f"{rel}{e.name}/")

    st = os.stat(root)
    h.update(f"{st.st_ino} {st.st_mode:o} {st.st_mtime_ns} {st.st_ctime_ns}\n".encode())
    walk(root, "")
    import time

    return "" if time.time_ns() - max(newest[0], st.st_ctime_ns) < RACY_NS else h.hexdigest()


def _read(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def lookup(data_root: Path, key: str, context: str) -> dict[str, Any] | None:
    """The record for `key` if it still holds (see the module doc), else None."""
    cache = data_root / "build" / "cache"
    rec = _read(cache / "memo" / f"{key}.json")
    if not isinstance(rec, dict) or rec.get("version") != VERSION or not isinstance(rec.get("log"), list):
        return None
    try:
        content = data_root / "image" / "overlay2" / "imagedb" / "content" / "sha256"
        for step, image in rec["steps"]:
            entry = _read(cache / "steps" / f"{step}.json")
            if not isinstance(entry, dict) or entry.get("image") != image:
                return None
            if not (content / image.split(":", 1)[-1]).is_file():
                return None
        if rec["refs"]:
            repos = (_read(data_root / "image" / "overlay2" / "repositories.json") or {}).get("Repositories") or {}
            for repo, tag, image in rec["refs"]:
                if repo and (repos.get(repo) or {}).get(tag) != image:
                    return None
                if not (content / image.split(":", 1)[-1]).is_file():
                    return None
        fp = fingerprint(context)
        if not fp or fp != rec["context"]:
            return None
    except (KeyError, TypeError, ValueError, OSError):
        return None
    return rec


def resolved_ref(ref: str, image_id: str, repos: dict[str, dict[str, str]]) -> tuple[str, str, str] | None:
    """How `ref` resolved to `image_id`, as a record entry; None if it cannot be checked
    without the resolver (an ID prefix, which a new image could make ambiguous)."""
    if _HEXID.match(ref):
        return ("", "", image_id) if ref.split(":", 1)[-1] == image_id.split(":", 1)[-1] else None
    from ..images.refs import parse_reference

    r = parse_reference(ref)
    if r.tag is not None and r.digest is not None:
        r = r.with_digest(r.digest)
    repo, tag = r.familiar_name(), r.familiar()
    return (repo, tag, image_id) if (repos.get(repo) or {}).get(tag) == image_id else None


def tagged(data_root: Path, rec: dict[str, Any], tags: list[str]) -> dict[str, str] | None:
    """For each of `tags` its familiar form, if every one already names the record's
    image (so tagging again changes nothing); else None."""
    repos = (_read(data_root / "image" / "overlay2" / "repositories.json") or {}).get("Repositories") or {}
    out = {}
    for t in tags:
        norm = (rec.get("tags") or {}).get(t)
        if not norm or (repos.get(norm[0]) or {}).get(norm[1]) != rec["image"]:
            return None
        out[t] = str(norm[1])
    return out


def record(data_root: Path, key: str, context_fingerprint: str, image_id: str, steps: list[tuple[str, str]],
           refs: dict[str, str], log: list[str], tags: list[str], labels: dict[str, str]) -> None:
    """Remember a fully cached build whose context had `context_fingerprint` when it
    started, tagged `tags`, its image labelled `labels` (best effort: any failure just
    skips it)."""
    from .._util import atomic_write
    from ..images.refs import parse_reference

    if not context_fingerprint:
        return
    try:
        repos = (_read(data_root / "image" / "overlay2" / "repositories.json") or {}).get("Repositories") or {}
        norm = {}
        for t in tags:
            r = parse_reference(t)
            norm[t] = [r.familiar_name(), r.familiar()]
        checked = []
        for ref, rid in sorted(refs.items()):
            entry = resolved_ref(ref, rid, repos)
            if entry is None:
                return
            checked.append(entry)
        doc = {"version": VERSION, "image": image_id, "steps": steps, "refs": checked,
               "context": context_fingerprint, "log": log, "tags": norm, "labels": labels}
        memo = data_root / "build" / "cache" / "memo"
        memo.mkdir(parents=True, exist_ok=True)
        atomic_write(memo / f"{key}.json", json.dumps(doc), durable=False)
    except Exception:  # noqa: BLE001 - a missing record only costs the next build time
        return
