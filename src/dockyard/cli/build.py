"""`dockyard build`: Docker's classic builder's command line and output.

CONTEXT is a directory, or ``-``: a tar archive (plain or compressed) or a bare
Dockerfile on stdin. ``-f -`` reads the Dockerfile from stdin with a directory context.
SOURCE_DATE_EPOCH (environment or --build-arg) clamps created times and file mtimes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from .._path import Path

from .. import _util
from ..errors import InvalidArgument
from .args import Parser, engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

    from ..engine.core import Engine
    from .flags import Namespace


def _parser() -> Parser:
    p = Parser("build", usage="dockyard build [OPTIONS] PATH | -", description="Build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--target", default="", help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    p.add_argument("--iidfile", help="Write the image ID to the file")
    p.add_argument("--network", default="default", help="Networking mode for the RUN instructions")
    p.add_argument("--progress", default="auto", help="Set type of progress output (auto, plain)")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--cache-from", action="append", default=[], help="Images to consider as cache sources")
    p.add_argument("--rm", default="true", nargs="?", const="true", help="Remove intermediate containers")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("--secret", action="append", default=[],
                   help='Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")')
    p.add_argument("--ssh", action="append", default=[],
                   help='SSH agent socket or keys to expose to the build (format: default|<id>[=<socket>|<key>[,<key>]])')
    p.add_argument("context")
    return p


def _is_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return True
    return len(data) >= 262 and data[257:262] == b"ustar"


@contextlib.contextmanager
def _context(ctx: str, dfile: str | None) -> Iterator[tuple[Path, str]]:
    """(context dir, Dockerfile text) for CONTEXT and -f."""
    if ctx == "-":
        import tarfile
        import tempfile

        from .. import _tarsafe

        data = sys.stdin.buffer.read()
        with tempfile.TemporaryDirectory(prefix="dockyard-build-") as tmp:
            if _is_tar(data):
                import io

                try:
                    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
                        _tarsafe.extract_all(tf, tmp, data=True)
                except (tarfile.TarError, OSError) as e:
                    raise InvalidArgument(f"the build context on stdin is not a valid tar archive: {e}") from None
                name = dfile or "Dockerfile"
                try:
                    text = (Path(tmp) / name).read_text()
                except OSError:
                    raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}") from None
            else:
                text = data.decode("utf-8", "replace")
            yield Path(tmp), text
        return
    root = Path(ctx)
    if not root.is_dir():
        raise InvalidArgument(f'unable to prepare context: path "{ctx}" not found')
    if dfile == "-":
        text = sys.stdin.read()
    else:
        path = Path(dfile) if dfile else root / "Dockerfile"
        try:
            text = path.read_text()
        except OSError:
            raise InvalidArgument(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                  f"lstat {path.absolute()}: no such file or directory") from None
    yield root, text


def _build_args(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid argument {item!r} for \"--build-arg\" flag")
        if sep:
            out[k] = v
        elif k in os.environ:
            out[k] = os.environ[k]
    return out


def _labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _context_size(root: Path, excluded: "Callable[[str], bool]", prune: bool) -> int:
    """The size of the context as a tar (what Docker's CLI would send). With `prune`,
    excluded directories are not descended into (no ``!`` pattern can re-include)."""
    total = 1024
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if prune:
            dirnames[:] = [d for d in dirnames if not excluded(d if rel_dir == "." else f"{rel_dir}/{d}")]
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if excluded(rel):
                continue
            total += 512
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += -(-st.st_size // 512) * 512
    return total


def cmd_build(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    if not ns.network or ns.network.startswith("container:"):
        raise InvalidArgument(f"network mode {ns.network!r} is not supported for build "
                              "(default, host, none or a user network)")
    network = "default" if ns.network == "bridge" else ns.network
    if ns.progress not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise InvalidArgument(f"invalid progress mode {ns.progress!r}")
    if ns.context == "-" and ns.file == "-":
        raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
    build_args = _build_args(ns.build_arg)
    epoch_txt = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH") or ""
    epoch: int | None = None
    if epoch_txt:
        try:
            epoch = int(epoch_txt)
        except ValueError:
            raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {epoch_txt!r}") from None

    eng = engine()
    memo_key = _memo_key(ns, build_args, network, epoch)
    if memo_key is not None and _from_memo(eng, ns, memo_key):  # its tags were checked when it was made
        return 0
    from ..images.refs import parse_reference

    for t in ns.tag:
        try:
            ref = parse_reference(t)
        except InvalidArgument:
            raise InvalidArgument(f'invalid argument "{t}" for "-t, --tag" flag: invalid reference format') from None
        if ref.digest is not None:
            raise InvalidArgument(f'invalid argument "{t}" for "-t, --tag" flag: invalid reference format')
    secrets: dict[str, str] = {}
    if ns.secret:
        from ..build.mounts import parse_secret_flag

        for item in ns.secret:
            sid, src = parse_secret_flag(item)
            if not os.path.isfile(src):
                raise InvalidArgument(f"failed to stat secret {sid}: {src}: no such file")
            secrets[sid] = os.path.abspath(src)
    if not ns.ssh:
        return _build(eng, ns, build_args, secrets, {}, network, epoch, memo_key)
    from ..build.ssh import agents, parse_ssh_flag

    with agents(dict(parse_ssh_flag(v) for v in ns.ssh)) as ssh:
        return _build(eng, ns, build_args, secrets, ssh, network, epoch, None)


def _memo_key(ns: Namespace, build_args: dict[str, str], network: str, epoch: int | None) -> str | None:
    """The `build.memo` key of this build, or None when it may not use the fast path."""
    if ns.no_cache or ns.secret or ns.ssh or ns.pull or ns.context == "-" or ns.file == "-":
        return None
    from ..build import memo

    context = os.path.realpath(ns.context)
    dfile = os.path.abspath(ns.file) if ns.file else os.path.join(context, "Dockerfile")
    try:
        with open(dfile, "rb") as f:
            text = f.read()
    except OSError:
        return None
    if not os.path.isdir(context):
        return None
    options = {"args": build_args, "target": ns.target, "labels": ns.label, "network": network, "epoch": epoch,
               "platform": ns.platform or ""}
    ns.memo_dockerfile = text  # a build records only if it ran these very bytes
    return memo.build_key(text, dfile, context, options, [f"{dfile}.dockerignore"] if ns.file else [])


def _from_memo(eng: "Engine", ns: Namespace, key: str) -> bool:
    """Answer the build from its `build.memo` record, if that still holds."""
    from ..build import memo

    context = os.path.realpath(ns.context)
    rec = memo.lookup(eng.paths.root, key, context)
    if rec is None or not all(t in (rec.get("tags") or {}) for t in ns.tag):
        return False  # tags it has not seen are checked, and made, by the full path
    from ..engine import buildrun

    image_id = str(rec["image"])
    if not ns.quiet:
        root = Path(ns.context)
        matcher = buildrun.ignore_matcher(root, Path(ns.file) if ns.file else None)
        size = _context_size(root, matcher.excluded if matcher else lambda _r: False,
                             prune=matcher is not None and not matcher.has_exclusions)
        lines = [f"Sending build context to Docker daemon  {_util.human_size(size)}", *rec["log"]]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    familiar = memo.tagged(eng.paths.root, rec, ns.tag)
    if familiar is not None:  # as they are: only Docker's "tag" events
        from ..engine import events

        for t in ns.tag:
            events.emit(eng, "image", "tag", image_id, {**(rec.get("labels") or {}), "name": familiar[t]})
    else:
        from ..engine.imageops import tag
        from ..images.refs import parse_reference

        familiar = {}
        for t in ns.tag:
            tag(eng, image_id, t)
            familiar[t] = parse_reference(t).familiar()
    _finish(ns, image_id, familiar)
    return True


def _finish(ns: Namespace, image_id: str, familiar: dict[str, str]) -> None:
    """--iidfile, then the ID (-q) or Docker's closing lines; `familiar`: tag -> its
    familiar form."""
    if ns.iidfile:
        Path(ns.iidfile).write_text(image_id)
    if ns.quiet:
        print(image_id)
        return
    lines = [f"Successfully built {image_id.split(':', 1)[-1][:12]}"]
    lines += [f"Successfully tagged {familiar[t]}" for t in ns.tag]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _build(eng: "Engine", ns: Namespace, build_args: dict[str, str], secrets: dict[str, str],
           ssh: dict[str, str], network: str, epoch: int | None, memo_key: str | None) -> int:
    from ..build.executor import BuildOptions
    from ..build.parser import parse
    from ..engine import buildrun
    from ..images.refs import parse_reference

    quiet = ns.quiet
    out = sys.stdout
    logged: list[str] = []

    def log(line: str) -> None:
        logged.append(line)
        if not quiet:
            out.write(line + "\n")
            out.flush()

    def output(data: bytes) -> None:
        if not quiet:
            out.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    opts = BuildOptions(secrets=secrets, ssh=ssh, build_args=build_args, target=ns.target, no_cache=ns.no_cache,
                        labels=_labels(ns.label), network=network, source_date_epoch=epoch, quiet=quiet,
                        cache_from=tuple(ns.cache_from))
    with _context(ns.context, ns.file) as (root, text):
        df = parse(text)
        # BuildKit: <Dockerfile>.dockerignore beside the Dockerfile wins over the context's
        own = Path(ns.file) if ns.file and ns.file != "-" and ns.context != "-" else None
        matcher = buildrun.ignore_matcher(root, own)
        if not quiet:
            size = _context_size(root, matcher.excluded if matcher else lambda _r: False,
                                 prune=matcher is not None and not matcher.has_exclusions)
            log(f"Sending build context to Docker daemon  {_util.human_size(size)}")
        logged.clear()
        from ..build import memo

        fingerprint = memo.fingerprint(str(root.resolve())) if memo_key is not None else ""
        trace: dict[str, Any] = {}
        image_id = buildrun.build(eng, root, df, opts, matcher, log, output, ns.tag, trace, pull=ns.pull)
    same_text = text.encode("utf-8", "surrogateescape") == getattr(ns, "memo_dockerfile", None)
    if memo_key is not None and same_text and trace.get("all_cached") and not trace.get("remote"):
        labels = (eng.images.get(image_id).config.get("config") or {}).get("Labels") or {}
        memo.record(eng.paths.root, memo_key, fingerprint, image_id, trace["steps"], trace["refs"], logged,
                    ns.tag, labels)
    _finish(ns, image_id, {t: parse_reference(t).familiar() for t in ns.tag})
    return 0


def cmd_builder_prune(argv: list[str]) -> int:
    """`builder prune`: Docker's output ("Deleted build cache objects:", then the total)."""
    p = Parser("builder prune", usage="dockyard builder prune", description="Remove build cache")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused build cache, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    ns = p.parse_args(argv)
    from .args import confirm

    if not ns.force and not confirm("all build cache" if ns.all else "all dangling build cache"):
        return 0
    from ..build.prune import prune_build_cache

    eng = engine()
    report = prune_build_cache(eng.paths.root / "build", ns.all, eng.images.exists)
    if report.deleted:
        print("Deleted build cache objects:")
        print("\n".join(report.deleted))
        print()
    print(f"Total reclaimed space: {_util.human_size(report.reclaimed)}")
    return 0
