"""ADD of remote sources: HTTP(S) URLs and Git repositories, fetched into a temp dir that
then serves as the step's source root (the COPY rules apply from there on).

* A URL is downloaded as one file (mode 0600, the server's Last-Modified as its mtime),
  never extracted, as Docker does; ``--checksum=sha256|sha384|sha512:HEX`` is checked
  against its bytes.
* A Git source (`mounts.is_git_url`: ``git@host:path``, ``git://``, ``ssh://`` or an
  http(s) URL ending in ``.git``) is cloned with the host's ``git``; ``#REF`` picks a
  branch, tag or commit (default: the remote's HEAD) and ``#REF:DIR`` a subdirectory, as
  BuildKit's `gitutil.ParseGitRef`. The work tree's contents are copied (``.git`` left
  out unless ``--keep-git-dir``); ``--checksum=COMMIT`` must match the commit checked out
  (a prefix will do). The cache key has the commit (and --keep-git-dir), as BuildKit's;
  for a URL, the downloaded file's content digest, as for any COPY.

Offline, both fail with one line saying what could not be fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import subprocess
import tempfile
from .._path import Path

from ..errors import InvalidArgument
from . import copystep
from .context import SourceRoot
from .mounts import is_git_url

TYPE_CHECKING = False

if TYPE_CHECKING:
    from .executor import Builder
    from .parser import Instruction
    from .state import StageState

_CHUNK = 1 << 20
_GIT_TIMEOUT = 600


def file_digest(path: str, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def download(url: str, into: Path) -> str:
    """ADD <url>: fetch `url` into directory `into`; return the file's name there.
    The file gets mode 0600 and the server's Last-Modified time, as Docker does."""
    import urllib.parse
    import urllib.request

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise InvalidArgument(f"ADD {url}: unsupported URL scheme {parsed.scheme!r} (http and https only)")
    name = posixpath.basename(parsed.path.rstrip("/")) or "__unnamed__"
    path = into / name
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(path, "wb") as f:
            shutil.copyfileobj(resp, f, _CHUNK)
            modified = resp.headers.get("Last-Modified")
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise InvalidArgument(f"ADD {url}: cannot download it: {reason}. Without network access, put the "
                              "file in the build context and COPY it instead") from None
    os.chmod(path, 0o600)
    if modified:
        import email.utils

        with contextlib.suppress(TypeError, ValueError):
            ts = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (ts, ts))
    return name


def parse_git_ref(url: str) -> tuple[str, str, str]:
    """(remote, ref, subdir) of ``REMOTE[#REF[:SUBDIR]]``."""
    remote, _, frag = url.partition("#")
    ref, _, subdir = frag.partition(":")
    subdir = posixpath.normpath("/" + subdir).lstrip("/") if subdir else ""
    return remote, ref, "" if subdir == "." else subdir


def _git(args: list[str], cwd: str | None, what: str) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", LC_ALL="C",
               GIT_SSH_COMMAND="ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new")
    try:
        p = subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_GIT_TIMEOUT)
    except FileNotFoundError:
        raise InvalidArgument(f"{what}: git is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise InvalidArgument(f"{what}: git timed out") from None
    if p.returncode != 0:
        lines = [ln.strip() for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
        raise InvalidArgument(f"{what}: {lines[-1] if lines else f'git exited with {p.returncode}'}")
    return p.stdout.strip()


def fetch_git(url: str, into: Path, keep_git_dir: bool = False) -> tuple[str, str]:
    """Clone `url` into `into`/repo and check out its ref; return (the source path
    relative to `into`, the commit)."""
    remote, ref, subdir = parse_git_ref(url)
    what = f"ADD {url}: cannot fetch the repository"
    repo = str(into / "repo")
    _git(["clone", "--quiet", "--no-checkout", "--", remote, repo], None, what)
    commit = _resolve_ref(repo, ref or "HEAD", url)
    _git(["checkout", "--quiet", "--detach", commit], repo, f"ADD {url}: checkout of {commit[:12]} failed")
    _git(["submodule", "update", "--quiet", "--init", "--recursive"], repo, f"ADD {url}: submodules")
    if not keep_git_dir:
        shutil.rmtree(os.path.join(repo, ".git"))
    rel = "repo" + (f"/{subdir}" if subdir else "")
    if not os.path.isdir(into / rel):
        raise InvalidArgument(f"ADD {url}: {subdir!r} is not a directory in the repository")
    return rel, commit


def _resolve_ref(repo: str, ref: str, url: str) -> str:
    for cand in (f"refs/remotes/origin/{ref}", f"refs/tags/{ref}", ref):
        with contextlib.suppress(InvalidArgument):
            return _git(["rev-parse", "--verify", "--quiet", f"{cand}^{{commit}}"], repo, "")
    raise InvalidArgument(f"ADD {url}: no branch, tag or commit {ref!r} in the repository")


def add_remote(b: "Builder", state: "StageState", ins: "Instruction", srcs: list[str], dest: str,
               checksum: str) -> None:
    """ADD with URL or Git sources (all of them remote)."""
    if not all("://" in s or is_git_url(s) for s in srcs):
        raise InvalidArgument("ADD: mixing URLs and local sources is not supported by this builder")
    b.remote = True
    keep = ins.flag("keep-git-dir")
    keep_git_dir = keep is not None and keep.lower() not in ("false", "0")
    with tempfile.TemporaryDirectory(prefix="dockyard-add-") as tmp:
        names, keys = [], {}
        for s in srcs:
            if is_git_url(s):
                rel, commit = fetch_git(s, Path(tmp), keep_git_dir)
                if checksum and not commit.startswith(checksum):
                    raise InvalidArgument(f"expected checksum to match {checksum}, got {commit}")
                names.append(rel)
                keys[s] = f"git {commit} keep-git-dir={int(keep_git_dir)}"
            else:
                if keep_git_dir:
                    raise InvalidArgument("ADD --keep-git-dir is only for Git sources")
                name = download(s, Path(tmp))
                if checksum:
                    got = file_digest(os.path.join(tmp, name), checksum.split(":", 1)[0])
                    if got != checksum:
                        raise InvalidArgument(f"digest mismatch {checksum}: {got}")
                names.append(name)
        saved, b.context = b.context, SourceRoot(Path(tmp))
        try:
            copystep.copy_words(b, state, ins, names, dest, extract=False, source_keys=keys or None)
        finally:
            b.context = saved
