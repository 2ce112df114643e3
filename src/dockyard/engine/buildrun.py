"""One build, as both front ends run it: a context directory and Dockerfile text in,
Docker's classic-builder log lines and RUN output out, the image ID (tagged) back.

The CLI prepares the context from a directory or stdin; the Engine API from the request's
tar body (`extract_context`). Both then call `ignore_matcher` and `build`.
"""

from __future__ import annotations

from .._path import Path

from ..errors import InvalidArgument
from .core import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable

if TYPE_CHECKING:
    from ..build.executor import BuildOptions
    from ..build.ignore import Matcher
    from ..build.parser import Dockerfile


def ignore_matcher(root: Path, dockerfile: Path | None = None) -> "Matcher | None":
    """The context's ignore rules: `<Dockerfile>.dockerignore` beside the Dockerfile wins
    over the context's `.dockerignore` (as BuildKit); None when there is neither."""
    from ..build import ignore

    own = Path(f"{dockerfile}.dockerignore") if dockerfile is not None else None
    ign = own if own is not None and own.is_file() else root / ".dockerignore"
    if not ign.is_file():
        return None
    return ignore.Matcher(ignore.parse(ign.read_text()))


def extract_context(stream: IO[bytes], dest: Path) -> None:
    """Unpack a build context tar (plain, gzip, bzip2 or xz), streaming, into `dest`.

    The docker CLI's context with a Dockerfile from outside it ends right after the last
    file's data (no padding, no end-of-archive blocks); Docker reads that as the end, and so
    does this. A member whose data is cut short is still an error."""
    import tarfile

    from .. import _tarsafe

    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            count = 0
            while True:
                try:
                    member = tf.next()
                except tarfile.ReadError as e:
                    if count and "unexpected end of data" in str(e):
                        break
                    raise
                if member is None:
                    break
                _tarsafe.extract(tf, member, str(dest))
                count += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InvalidArgument(f"the build context is not a valid tar archive: {e}") from None


def read_dockerfile(root: Path, name: str) -> str:
    """The Dockerfile `name` (relative to the context) of an unpacked context."""
    from ..runtime.rootfs import secure_join

    try:
        return Path(secure_join(str(root), name or "Dockerfile")).read_text()
    except (OSError, UnicodeDecodeError):
        raise InvalidArgument(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}") from None


def build(engine: Engine, root: Path, text: "str | Dockerfile", opts: "BuildOptions", matcher: "Matcher | None",
          log: Callable[[str], None], output: Callable[[bytes], None], tags: list[str] | None = None,
          trace: dict[str, Any] | None = None, pull: bool = False) -> str:
    """Build `text` (or its parse) with `root` as the context; tag the result with `tags`;
    return its image ID. `trace`, if given, gets what `build.memo` records: "steps"
    (step key, image), "refs" (image reference -> ID), "all_cached" and "remote".
    `pull`: pull the images it names (FROM …) first, as `--pull`."""
    from ..build.cache import BuildCache
    from ..build.context import SourceRoot
    from ..build.executor import Builder
    from ..build.parser import parse
    from .builder import EngineBackend

    df = parse(text) if isinstance(text, str) else text
    cache = BuildCache(engine.paths.root / "build" / "cache")
    builder = Builder(EngineBackend(engine, pull), cache, SourceRoot(root.absolute(), matcher), opts, log, output)
    from ..build.context import remembered_hashes

    backend = builder.backend
    try:
        with remembered_hashes(engine.paths.root / "build" / "cache" / "filehashes.json", root.absolute()):
            image_id = builder.build(df)
    finally:
        backend.sync()  # type: ignore[attr-defined]  # the step images, also those of a failed build
    if trace is not None:
        trace.update(steps=builder.trace, all_cached=builder.all_cached, remote=builder.remote,
                     refs=dict(builder.backend.resolved))  # type: ignore[attr-defined]
    from .imageops import tag

    for t in tags or []:
        tag(engine, image_id, t)
    return image_id
