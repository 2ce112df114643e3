"""COPY and ADD steps for the executor: the source root (the context, a stage's or an
image's rootfs), the flags (--from, --chown, --chmod, --exclude, --parents, --checksum), the
copy plan (`context.plan_copy`) and its part of the cache key, and heredoc sources
(``COPY <<EOF``). ADD of URLs and Git repositories goes to `remote`, which comes back
through `copy_words` with the fetched files as the source root.
"""

from __future__ import annotations

import contextlib
import os
from .._path import Path

from ..errors import InvalidArgument
from ..images.shellwords import process_word
from . import steps
from .backend import BaseImage, CopyRequest
from .context import SourceRoot, plan_copy, plan_copy_parents
from .parser import Instruction
from .state import StageState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

    from .executor import Builder


@contextlib.contextmanager
def source(b: "Builder", state: StageState, ref: str | None) -> Iterator[SourceRoot]:
    if not ref:
        yield b.context
        return
    assert b.df is not None
    ref = process_word(ref, state.expand_env(), b.escape)
    j = b.df.stage_index(ref)
    image: BaseImage | None
    if j is not None and j in b.stage_images:
        image = b.stage_images[j]
        if image is None:
            raise InvalidArgument(f"stage {ref} has no files (FROM scratch with no steps)")
    else:
        image = b.backend.base(ref)
    with b.backend.rootfs(image) as root:
        yield SourceRoot(root, None, chroot=True)


def copy(b: "Builder", state: StageState, ins: Instruction) -> None:
    if ins.heredocs:
        _copy_heredocs(b, state, ins)
        return
    env = state.expand_env()
    words = [process_word(w, env, b.escape) if not ins.json else w for w in ins.args]
    srcs, dest = words[:-1], words[-1]
    checksum = ""
    if ins.flag("checksum") is not None:
        from .mounts import check_checksum

        checksum = check_checksum(process_word(ins.flag("checksum") or "", env, b.escape), srcs)
    from .mounts import is_git_url

    if ins.cmd == "ADD" and any("://" in w or is_git_url(w) for w in srcs):
        from .remote import add_remote

        add_remote(b, state, ins, srcs, dest, checksum)
        return
    if ins.flag("keep-git-dir") is not None:
        raise InvalidArgument(f"{ins.cmd} --keep-git-dir is only for Git sources")
    copy_words(b, state, ins, srcs, dest)


def copy_words(b: "Builder", state: StageState, ins: Instruction, srcs: list[str], dest: str,
               extract: bool = True, source_keys: dict[str, str] | None = None) -> None:
    """COPY/ADD of `srcs` from the current source root; `source_keys` (path -> key)
    stands in for the content digest in the cache key (Git sources: the commit)."""
    env = state.expand_env()
    chown = process_word(ins.flag("chown") or "", env, b.escape)
    chmod_txt = process_word(ins.flag("chmod") or "", env, b.escape)
    chmod: int | None = None
    if chmod_txt:
        try:
            chmod = int(chmod_txt, 8)
        except ValueError:
            raise InvalidArgument(f"invalid chmod parameter: {chmod_txt!r} (octal digits only)") from None
    cfg = state.config
    with source(b, state, ins.flag("from")) as root:
        root = _with_excludes(b, root, ins, srcs, env)
        if ins.flag("parents") not in (None, "false"):
            plan = plan_copy_parents(root, srcs, dest, cfg.get("WorkingDir") or "/", ins.cmd)
        else:
            plan = plan_copy(root, srcs, dest, cfg.get("WorkingDir") or "/", ins.cmd,
                             extract_archives=extract and ins.cmd == "ADD")
        chown_comment = f"--chown={chown}" if chown else ""
        files, digest, source_hash = plan.files, plan.digest, plan.source_hash
        if source_keys:  # the history names the source by its key, not its checkout's bytes
            files, digest = source_keys, "|".join(f"{k}={v}" for k, v in sorted(source_keys.items()))
            import hashlib

            source_hash = f"{source_hash.split(':')[0]}:{hashlib.sha256(digest.encode()).hexdigest()}"
        created_by = steps.nop1(cfg, f"{ins.cmd} {chown_comment}{source_hash} in {dest} ")
        checksum = process_word(ins.flag("checksum") or "", env, b.escape)
        inputs = b._inputs(state, ins, created_by, files, digest,
                           extra=f"chmod={chmod_txt}" + (f"|checksum={checksum}" if checksum else ""))
        parent = state.image
        req = CopyRequest(plan.entries, chown, chmod)

        def action() -> str | None:
            return b.backend.copy(parent, req, b.opts.source_date_epoch).diff_id

        b._commit(state, inputs, cfg, action)


def _with_excludes(b: "Builder", root: SourceRoot, ins: Instruction, srcs: list[str],
                   env: dict[str, str]) -> SourceRoot:
    """COPY --exclude=PATTERN (repeatable), see `ignore.with_excludes`."""
    from .ignore import with_excludes

    return with_excludes(root, [process_word(v, env, b.escape) for k, v in ins.flags if k == "exclude"],
                         srcs)


def _copy_heredocs(b: "Builder", state: StageState, ins: Instruction) -> None:
    """``COPY <<EOF /dest``: each heredoc is a file named after its delimiter
    (content as written, not expanded)."""
    import tempfile

    docs = {h.name: h.content for h in ins.heredocs}
    names = [a[2:].strip("'\"") for a in ins.args[:-1]]
    if not all(a.startswith("<<") for a in ins.args[:-1]) or not all(n in docs for n in names):
        raise InvalidArgument(f"{ins.cmd}: mixing heredocs and other sources is not supported")
    with tempfile.TemporaryDirectory(prefix="dockyard-heredoc-") as tmp:
        for n in names:
            path = os.path.join(tmp, n)
            with open(path, "w") as f:
                f.write(docs[n])
            os.chmod(path, 0o644)
            os.utime(path, (0, 0))
        saved, b.context = b.context, SourceRoot(Path(tmp))
        try:
            plain = Instruction(ins.cmd, (*names, ins.args[-1]), ins.flags, False, ins.original, ins.line)
            copy(b, state, plain)
        finally:
            b.context = saved
