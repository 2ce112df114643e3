"""RUN --mount for the executor: the step's mounts parsed (`mounts.parse_mount`), their part
of the cache key, and their sources resolved for the backend while the step runs.

Cache key (as BuildKit): every mount's options; a bind or cache ``from`` another stage or
image adds that image's ID; a bind (or cache seed) from the context adds the content digest
of its source (the same digest COPY uses). A secret adds only its id, never its content.

A bind from the context is read-only by default; with ``rw`` it gets a throw-away copy, so
the context is never written. A bind from a stage or image mounts that image's rootfs (a
scratch overlay, discarded after the step).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile

from .._record import replace
from ..errors import InvalidArgument, NotFound
from ..images.shellwords import process_word
from . import copystep
from .backend import MountRequest
from .context import SourceRoot, plan_copy, resolve_in
from .mounts import RunMount, absolute_target, parse_mount
from .state import StageState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

if TYPE_CHECKING:
    from .executor import Builder
    from .parser import Instruction


def parse_all(b: "Builder", state: StageState, ins: "Instruction", workdir: str) -> list[RunMount]:
    env = state.expand_env()
    out: list[RunMount] = []
    seen: set[str] = set()
    for k, v in ins.flags:
        if k != "mount":
            continue
        m = parse_mount(process_word(v, env, b.escape))
        if m.type == "ssh" and not m.target:
            m = replace(m, target=f"/run/buildkit/ssh_agent.{sum(1 for x in out if x.type == 'ssh')}")
        m = replace(m, target=absolute_target(m.target, workdir))
        if m.target in seen:
            raise InvalidArgument(f"duplicate mount target {m.target}")
        seen.add(m.target)
        if m.type == "secret" and m.id not in b.opts.secrets and m.required:
            raise InvalidArgument(f"secret {m.id} not found (pass it with --secret id={m.id},src=FILE)")
        if m.type == "ssh" and m.id not in b.opts.ssh and m.required:
            raise InvalidArgument(f"no SSH key {m.id!r} forwarded from the client (pass it with --ssh {m.id})")
        out.append(m)
    return out


def ssh_auth_sock(b: "Builder", mounts: list[RunMount]) -> str | None:
    """The target of the step's first forwarded ssh mount (BuildKit's SSH_AUTH_SOCK)."""
    for m in mounts:
        if m.type == "ssh" and m.id in b.opts.ssh:
            return m.target
    return None


def _from_image_id(b: "Builder", state: StageState, ref: str) -> str:
    assert b.df is not None
    j = b.df.stage_index(ref)
    if j is not None and j in b.stage_images:
        img = b.stage_images[j]
        return img.id if img is not None else "scratch"
    return b.backend.base(ref).id


def cache_key(b: "Builder", state: StageState, mounts: list[RunMount]) -> str:
    """The mounts' part of the RUN step's cache key."""
    parts: list[str] = []
    for m in mounts:
        part = m.key
        if m.type in ("bind", "cache") and (m.from_ or m.type == "bind"):
            if m.from_:
                part += f":image={_from_image_id(b, state, m.from_)}"
            else:
                part += f":content={_context_digest(b.context, m.source)}"
        parts.append(part)
    return ";".join(parts)


def _context_digest(root: SourceRoot, source: str) -> str:
    try:
        return plan_copy(root, [source or "."], "/mnt/", "/").digest
    except NotFound:
        raise NotFound(f"failed to compute cache key: mount source {source or '.'} not found in the "
                       "build context") from None


@contextlib.contextmanager
def resolved(b: "Builder", state: StageState, mounts: list[RunMount]) -> Iterator[tuple[MountRequest, ...]]:
    """The mounts with host sources, valid inside the block."""
    with contextlib.ExitStack() as stack:
        out: list[MountRequest] = []
        for m in mounts:
            if m.type == "tmpfs":
                out.append(MountRequest("tmpfs", m.target, read_only=False, size=m.size))
            elif m.type == "ssh":
                if m.id in b.opts.ssh:  # not required and not forwarded: no mount, as BuildKit
                    out.append(MountRequest("ssh", m.target, b.opts.ssh[m.id], True, m.id, mode=m.mode,
                                            uid=m.uid, gid=m.gid))
            elif m.type == "secret":
                src = b.opts.secrets.get(m.id)
                if src is None:
                    continue  # not required: no mount, as BuildKit
                if not os.path.isfile(src):
                    raise InvalidArgument(f"secret {m.id}: {src} is not a readable file")
                out.append(MountRequest("secret", m.target, src, True, m.id, mode=m.mode, uid=m.uid, gid=m.gid))
            else:
                host = ""
                if m.type == "bind" or m.from_:
                    root = stack.enter_context(copystep.source(b, state, m.from_ or None))
                    rel = (m.source or ".").lstrip("/")
                    host = resolve_in(root.path, rel)
                    if not os.path.lexists(host):
                        what = f"stage {m.from_}" if m.from_ else "the build context"
                        raise NotFound(f"mount source {m.source or '/'} not found in {what}")
                    if not root.chroot and root.matcher is not None and _has_excluded(root, rel, host):
                        host = _filtered_copy(stack, root, rel, host)
                    elif m.type == "bind" and not m.read_only and not root.chroot:
                        host = _scratch_copy(stack, host)
                if m.type == "bind":
                    out.append(MountRequest("bind", m.target, host, m.read_only))
                else:
                    out.append(MountRequest("cache", m.target, host, m.read_only, m.id, m.sharing, m.mode,
                                            m.uid, m.gid))
        yield tuple(out)


def _norm(rel: str) -> str:
    clean = posixpath.normpath("/" + rel).lstrip("/")
    return "" if clean in ("", ".") else clean


def _has_excluded(root: SourceRoot, rel: str, host: str) -> bool:
    """Whether .dockerignore excludes anything at or below context path `rel`."""
    base = _norm(rel)
    if not os.path.isdir(host):
        return root.excluded(base)
    for dirpath, dirnames, filenames in os.walk(host):
        sub = os.path.relpath(dirpath, host)
        for name in dirnames + filenames:
            crel = "/".join(p for p in (base, "" if sub == "." else sub, name) if p)
            if root.excluded(crel):
                return True
    return False


def _filtered_copy(stack: contextlib.ExitStack, root: SourceRoot, rel: str, host: str) -> str:
    """A copy of context path `rel` without what .dockerignore excludes (BuildKit's context
    never holds those files, so a bind of it does not show them)."""
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-bind-"))
    dst = os.path.join(tmp, "src")
    base = _norm(rel)
    if not os.path.isdir(host):
        shutil.copy2(host, dst)
        return dst
    os.mkdir(dst)
    shutil.copystat(host, dst)
    for dirpath, dirnames, filenames in os.walk(host):
        sub = os.path.relpath(dirpath, host)
        sub = "" if sub == "." else sub
        for name in list(dirnames) + filenames:
            crel = "/".join(p for p in (base, sub, name) if p)
            src, out = os.path.join(dirpath, name), os.path.join(dst, sub, name)
            if root.excluded(crel):
                if name in dirnames and not (root.matcher and root.matcher.has_exclusions):
                    dirnames.remove(name)
                if not (name in dirnames):
                    continue
            if os.path.islink(src):
                os.symlink(os.readlink(src), out)
                if name in dirnames:
                    dirnames.remove(name)
            elif name in dirnames:
                os.mkdir(out)
                shutil.copystat(src, out)
            else:
                shutil.copy2(src, out)
    return dst


def _scratch_copy(stack: contextlib.ExitStack, host: str) -> str:
    """A throw-away copy of a context path (a read-write bind never writes the context)."""
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-bind-"))
    dst = os.path.join(tmp, "src")
    if os.path.isdir(host):
        shutil.copytree(host, dst, symlinks=True)
    else:
        shutil.copy2(host, dst)
    return dst


def mount_froms(ins: Instruction, env: dict[str, str], escape: str) -> list[str]:
    """The ``from=`` stages/images of a RUN's --mount flags."""
    out = []
    for k, v in ins.flags:
        if k == "mount":
            for item in process_word(v, env, escape).split(","):
                key, _, val = item.partition("=")
                if key.strip().lower() == "from" and val.strip():
                    out.append(val.strip())
    return out
