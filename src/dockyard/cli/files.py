"""cp, diff, export, commit.

`cp` follows Docker's client: stat the destination, pick the directory to extract into
and the name the source gets there, then stream a tar from one side to the other.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import sys
import tempfile
import threading

from ..errors import DockyardError, InvalidArgument, NotFound
from .args import Parser, print_err

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterator

if TYPE_CHECKING:
    from ..engine.core import Engine


def engine() -> "Engine":
    from ..engine.core import Engine

    return Engine()


def _daemon_error(e: DockyardError) -> int:
    print_err(f"Error response from daemon: {e}")
    return 1


# ---- diff / export ------------------------------------------------------------------------

def cmd_diff(argv: list[str]) -> int:
    p = Parser("diff", usage="dockyard diff CONTAINER",
               description="Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container")
    ns = p.parse_args(argv)
    from ..engine import files

    eng = engine()
    try:
        found = files.changes(eng, eng.containers.resolve(ns.container))
    except DockyardError as e:
        return _daemon_error(e)
    sys.stdout.write("".join(f"{ch}\n" for ch in found))
    return 0


def cmd_export(argv: list[str]) -> int:
    p = Parser("export", usage="dockyard export [OPTIONS] CONTAINER",
               description="Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container")
    ns = p.parse_args(argv)
    if not ns.output and sys.stdout.isatty():
        print_err("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        return 1
    from ..engine import files

    eng = engine()
    try:
        c = eng.containers.resolve(ns.container)
        if not ns.output:
            files.export(eng, c, sys.stdout.buffer)
            return 0
        with _atomic_file(ns.output) as f:
            files.export(eng, c, f)
    except DockyardError as e:
        return _daemon_error(e)
    return 0


@contextlib.contextmanager
def _atomic_file(path: str) -> Iterator[BinaryIO]:
    """Docker's CopyToFile: a temp file beside `path`, renamed over it when complete."""
    target = os.path.abspath(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dockyard_temp_", dir=os.path.dirname(target))
    except OSError as e:
        raise InvalidArgument(f"failed to export container: {e.strerror or e}: {path}") from None
    try:
        with open(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- commit ----------------------------------------------------------------------------

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _take_pause(argv: list[str]) -> tuple[list[str], bool]:
    """Pull the Go-style boolean -p/--pause[=BOOL] and --no-pause out of argv."""
    rest: list[str] = []
    pause = True
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg in ("-a", "--author", "-c", "--change", "-m", "--message") and i + 1 < len(argv):
            rest += argv[i:i + 2]
            i += 2
            continue
        if arg in ("-p", "--pause"):
            pause = True
        elif arg == "--no-pause":
            pause = False
        elif arg.startswith(("-p=", "--pause=")):
            value = arg.split("=", 1)[1]
            if value not in _TRUE | _FALSE:
                print_err(f'invalid argument "{value}" for "-p, --pause" flag: strconv.ParseBool: '
                          f'parsing "{value}": invalid syntax\nSee \'dockyard commit --help\'.')
                raise SystemExit(125)
            pause = value in _TRUE
        else:
            rest.append(arg)
        i += 1
    return rest, pause


def cmd_commit(argv: list[str]) -> int:
    p = Parser("commit", usage="dockyard commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
               description="Create a new image from a container's changes")
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", action="store_true", help="Pause container during commit (default true)")
    p.add_argument("--no-pause", action="store_true", help="Disable pausing container during commit")
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    argv, pause = _take_pause(argv)
    ns = p.parse_args(argv)
    from ..engine import files

    eng = engine()
    try:
        c = eng.containers.resolve(ns.container)
        image_id = files.commit(eng, c, ns.reference, author=ns.author, comment=ns.message,
                                changes=ns.change, pause=pause)
    except DockyardError as e:
        return _daemon_error(e)
    print(image_id)
    return 0


# ---- cp ----------------------------------------------------------------------------------

class _CopyError(Exception):
    """A client-side cp failure: printed as "Error: <message>"."""


def _split(arg: str) -> tuple[str, str]:
    """Docker's splitCpArg: (container, path); container "" for a local path."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def cmd_cp(argv: list[str]) -> int:
    p = Parser("cp", usage="dockyard cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                           "\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
               description="Copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy. Progress output is automatically "
                        "suppressed if no terminal is attached")
    p.add_argument("source")
    p.add_argument("destination")
    ns = p.parse_args(argv)
    quiet = ns.quiet or not sys.stderr.isatty()
    try:
        if not ns.source:
            raise _CopyError("source can not be empty")
        if not ns.destination:
            raise _CopyError("destination can not be empty")
        src_c, src = _split(ns.source)
        dst_c, dst = _split(ns.destination)
        if src_c and dst_c:
            raise _CopyError("copying between containers is not supported")
        if src_c:
            return _copy_out(src_c, src, dst, ns.follow_link, ns.archive, quiet)
        if dst_c:
            return _copy_in(src, dst_c, dst, ns.follow_link, ns.archive, quiet)
        raise _CopyError("must specify at least one container source")
    except _CopyError as e:
        print_err(f"Error: {e}")
        return 1
    except DockyardError as e:
        return _daemon_error(e)


def _local_abs(path: str) -> str:
    """An absolute local path keeping a trailing "/" or "/." (Docker's resolveLocalPath)."""
    out = os.path.abspath(path)
    if (path == "." or path.endswith("/.")) and not out.endswith("/."):
        out = out.rstrip("/") + "/."
    elif path.endswith("/") and not out.endswith("/"):
        out += "/"
    return out


def _done(quiet: bool, size: int, where: str) -> None:
    if not quiet:
        from .._util import human_size

        print_err(f"Successfully copied {human_size(size)} to {where}")


def _bare(path: str) -> str:
    """`path` without a trailing "/" or "/."."""
    if path.endswith("/."):
        path = path[:-2]
    return path.rstrip("/") or "/"


def _copy_out(ref: str, src: str, dst: str, follow: bool, keep_owners: bool, quiet: bool) -> int:
    from .._path import Path

    from ..engine import files
    from ..images.tarfs import extract_tree_tar

    eng = engine()
    missing = _CopyError(f"No such container:path: {ref}:{src}")
    try:
        c = eng.containers.resolve(ref)
    except NotFound:
        raise missing from None
    with files.container_fs(eng, c, ref) as fs:
        try:
            st = fs.stat(src)
            path, name = src, st.name
            if follow and st.is_symlink:  # copy the target, under the link's name
                path = st.link_target
                st = fs.stat(path)
        except NotFound:
            raise missing from None
        if dst == "-":
            fs.archive(path, sys.stdout.buffer, name)
            return 0
        target = _local_abs(dst)
        exists = os.path.exists(_bare(target))
        if exists:  # Docker's client follows a destination symlink
            target = os.path.realpath(_bare(target))
        into, name = _destination(target, st.is_dir, name, exists, os.path.isdir(target))
        into_dir = _local_dir(into)
        chown = None if keep_owners else (os.geteuid(), os.getegid())
        counter = _Counter()
        with fs.open_archive(path, name) as stream:
            counter.src = stream
            extract_tree_tar(counter, Path(into_dir), no_overwrite_dir_non_dir=True,  # type: ignore[arg-type]
                             chown=chown)
    _done(quiet, counter.n, dst)
    return 0


def _local_dir(path: str) -> str:
    """The local directory to extract into: it must exist (Docker's error otherwise)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise _CopyError(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _CopyError(f"stat {path}: not a directory")
    return path


def _destination(dst: str, src_is_dir: bool, name: str, exists: bool, is_dir: bool) -> tuple[str, str]:
    """Docker's PrepareArchiveCopy: (directory to extract into, name the source gets there).
    `name` is the source's name ("." for "dir/.": its contents)."""
    if exists and is_dir:
        return dst, name
    bare = _bare(dst)
    if exists and src_is_dir:
        raise _CopyError("cannot copy directory")
    if not exists and not src_is_dir and dst.endswith(("/", "/.")):
        raise _CopyError("no such directory")
    return posixpath.dirname(bare) or "/", posixpath.basename(bare)


class _Counter:
    """A reader that counts what passes through (for "Successfully copied")."""

    def __init__(self) -> None:
        self.src: BinaryIO | None = None
        self.n = 0

    def read(self, size: int = -1) -> bytes:
        assert self.src is not None
        data = self.src.read(size)
        self.n += len(data)
        return data


@contextlib.contextmanager
def _produced(producer: Callable[[BinaryIO], object]) -> Iterator[BinaryIO]:
    """What `producer(out)` writes, readable as a stream (written by a thread)."""
    rfd, wfd = os.pipe()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with open(wfd, "wb") as w:
                producer(w)
        except BrokenPipeError:
            pass
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=run, name="cp-tar", daemon=True)
    thread.start()
    try:
        with open(rfd, "rb") as r:
            yield r
    except DockyardError:
        thread.join(5)
        if failure:
            raise failure[0] from None
        raise
    thread.join()
    if failure:
        raise failure[0]


def _copy_in(src: str, ref: str, dst: str, follow: bool, copy_uid_gid: bool, quiet: bool) -> int:
    from ..engine import files

    source = ""
    name = ""
    src_is_dir = False
    if src != "-":
        local = _local_abs(src)
        contents = local.endswith("/.")
        name = "." if contents else posixpath.basename(_bare(local))
        if follow:  # the target, under the link's name
            source = os.path.realpath(_bare(local))
        else:  # the parent's symlinks resolved, the last component not followed
            source = os.path.join(os.path.realpath(os.path.dirname(_bare(local))), os.path.basename(_bare(local)))
        try:
            st = os.stat(source) if contents else os.lstat(source)
        except OSError as e:
            raise _CopyError(f"lstat {src}: {(e.strerror or str(e)).lower()}") from None
        src_is_dir = stat.S_ISDIR(st.st_mode)
        if contents and not src_is_dir:
            raise _CopyError(f"lstat {src}: not a directory")
    eng = engine()
    c = eng.containers.resolve(ref)
    with files.container_fs(eng, c, ref) as fs:
        cdst = files.abs_path(dst)
        exists = is_dir = False
        try:
            dst_st = fs.stat(cdst)
            if dst_st.is_symlink:  # Docker's client follows a destination symlink
                cdst = dst_st.link_target
                dst_st = fs.stat(cdst)
            exists, is_dir = True, dst_st.is_dir
        except NotFound:
            pass
        if src == "-":
            if not is_dir:
                raise _CopyError(f'destination "{ref}:{dst}" must be a directory')
            counter = _Counter()
            counter.src = sys.stdin.buffer
            fs.extract(cdst, counter, copy_uid_gid=copy_uid_gid)  # type: ignore[arg-type]
            return 0
        into, name = _destination(cdst, src_is_dir, name, exists, is_dir)
        rel = fs.extraction_dir(into)
        arc = posixpath.join(rel, name) if rel else name
        from .._path import Path

        from ..images.tarfs import write_tree_tar

        counter = _Counter()
        with _produced(lambda out: write_tree_tar(Path(source), out, arcname=arc)) as stream:
            counter.src = stream
            fs.extract(into, counter, copy_uid_gid=copy_uid_gid, names_from_root=True)  # type: ignore[arg-type]
    _done(quiet, counter.n, f"{ref}:{dst}")
    return 0
