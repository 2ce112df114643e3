"""``RUN --mount=…``: BuildKit's mount flags parsed and checked (pure), as
`dockerfile/instructions/commands_runmount.go` reads them.

* ``type=bind`` (the default): ``source``/``src`` (default the root of ``from``),
  ``target``/``dst``/``destination``, ``from`` (a stage, an image, or the context when
  absent), ``rw``/``readwrite`` (writes are discarded; read-only by default).
* ``type=cache``: ``id`` (default the target), ``sharing=shared|private|locked``,
  ``from``/``source`` (seed the cache the first time), ``mode`` (0755), ``uid``/``gid`` (0),
  ``ro``. Kept under ``<root>/build/mounts/``, never in the image.
* ``type=tmpfs``: ``size``.
* ``type=secret``: ``id`` (default the target's base name), ``target`` (default
  ``/run/secrets/<id>``), ``required``, ``mode`` (0400), ``uid``/``gid``.
* ``type=ssh``: ``id`` (default ``default``), ``target`` (default
  ``/run/buildkit/ssh_agent.N``, N counting the step's ssh mounts), ``required``, ``mode``
  (0600), ``uid``/``gid``: an agent socket forwarded from ``build --ssh`` (`build.ssh`).

`RunMount.key` is what goes into the RUN step's cache key: the options, never a secret's
content.
"""

from __future__ import annotations

import posixpath

from .._record import dataclass
from ..errors import InvalidArgument

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")
_BOOL = {"": True, "true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class RunMount:
    type: str
    target: str
    source: str = ""
    from_: str = ""
    read_only: bool = True
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    size: int = 0
    required: bool = False

    @property
    def key(self) -> str:
        return (f"{self.type}:{self.target}:src={self.source}:from={self.from_}:ro={int(self.read_only)}"
                f":id={self.id}:sharing={self.sharing}:mode={self.mode}:uid={self.uid}:gid={self.gid}"
                f":size={self.size}:required={int(self.required)}")


def _bool(name: str, value: str) -> bool:
    try:
        return _BOOL[value.lower()]
    except KeyError:
        raise InvalidArgument(f"invalid value for {name}: {value}") from None


def _int(name: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value}") from None


def parse_size(value: str) -> int:
    """A tmpfs size: bytes, or with a k/m/g suffix (units of 1024, as go-units RAMInBytes)."""
    v = value.strip().lower().rstrip("b")
    mult = 1
    if v and v[-1] in "kmgt":
        mult = 1024 ** ("kmgt".index(v[-1]) + 1)
        v = v[:-1]
    try:
        n = float(v)
    except ValueError:
        raise InvalidArgument(f"invalid size: '{value}'") from None
    if n < 0:
        raise InvalidArgument(f"invalid size: '{value}'")
    return int(n * mult)


def parse_mount(value: str) -> RunMount:
    """One ``--mount`` value (already word-expanded)."""
    fields: list[tuple[str, str, bool]] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        k, sep, v = item.partition("=")
        fields.append((k.strip().lower(), v.strip(), bool(sep)))
    kind = "bind"
    for k, v, _ in fields:
        if k == "type":
            kind = v.lower()
    if kind not in TYPES:
        raise InvalidArgument(f"unsupported mount type {kind!r}")
    target = source = from_ = mid = ""
    ro: bool | None = None
    sharing = "shared"
    mode: int | None = None
    uid = gid = size = 0
    required = False
    for k, v, has in fields:
        if k == "type":
            continue
        if k in ("target", "dst", "destination"):
            target = v
        elif k in ("source", "src"):
            source = v
        elif k == "from":
            from_ = v
        elif k in ("readonly", "ro"):
            ro = _bool(k, v) if has else True
        elif k in ("readwrite", "rw"):
            ro = not (_bool(k, v) if has else True)
        elif k == "id":
            mid = v
        elif k == "sharing":
            if v.lower() not in _SHARING:
                raise InvalidArgument(f"unsupported sharing value {v!r}")
            sharing = v.lower()
        elif k == "mode":
            mode = _int(k, v, 8)
        elif k == "uid":
            uid = _int(k, v)
        elif k == "gid":
            gid = _int(k, v)
        elif k == "size" and kind == "tmpfs":
            size = parse_size(v)
        elif k == "required" and kind in ("secret", "ssh"):
            required = _bool(k, v) if has else True
        elif k == "env" and kind == "secret":
            raise InvalidArgument("RUN --mount=type=secret,env= is not supported by this builder yet")
        else:
            raise InvalidArgument(f"unexpected key '{k}' in '{item_of(k, v, has)}'")
    if kind == "secret":
        if not mid and not target:
            raise InvalidArgument("secret mount: id or target is required")
        mid = mid or posixpath.basename(target)
        target = target or f"/run/secrets/{mid}"
    if kind == "ssh":  # the target defaults to /run/buildkit/ssh_agent.N (`runmount.parse_all`)
        mid = mid or "default"
        mode = 0o600 if mode is None else mode
        ro = True
    if not target and kind != "ssh":
        raise InvalidArgument("mount target not specified")
    if kind == "tmpfs" and (source or from_):
        raise InvalidArgument("tmpfs mounts take no source or from")
    if kind == "cache":
        mid = mid or target
        if ro is None:
            ro = False
    if kind == "bind" and (mid or mode is not None or uid or gid):
        raise InvalidArgument("bind mounts take no id, mode, uid or gid")
    if kind == "secret":
        ro = True
        mode = 0o400 if mode is None else mode
    if kind == "tmpfs":
        ro = False
    return RunMount(kind, target, source, from_, True if ro is None else ro, mid, sharing, mode, uid, gid,
                    size, required)


def item_of(k: str, v: str, has: bool) -> str:
    return f"{k}={v}" if has else k


def absolute_target(target: str, workdir: str) -> str:
    """A mount target made absolute against WORKDIR (BuildKit resolves relative targets so)."""
    path = target if target.startswith("/") else posixpath.join(workdir or "/", target)
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if path == "/":
        raise InvalidArgument("mount target can't be /")
    return path


def parse_secret_flag(value: str) -> tuple[str, str]:
    """``build --secret id=x[,src=path|,source=path][,type=file]`` -> (id, host path)."""
    sid = src = ""
    kind = "file"
    for item in value.split(","):
        k, sep, v = item.partition("=")
        k = k.strip().lower()
        if not sep:
            raise InvalidArgument(f"invalid secret {value!r}: expected key=value")
        if k == "id":
            sid = v
        elif k in ("src", "source"):
            src = v
        elif k == "type":
            kind = v
        elif k == "env":
            raise InvalidArgument("--secret env= is not supported yet; use src=FILE")
        else:
            raise InvalidArgument(f'unexpected key \'{k}\' in \'{item}\'')
    if kind != "file":
        raise InvalidArgument(f"unsupported secret type {kind!r}")
    if not sid and src:
        sid = posixpath.basename(src)
    if not sid:
        raise InvalidArgument(f"invalid secret {value!r}: id is required")
    if not src:
        raise InvalidArgument(f"invalid secret {value!r}: src is required")
    return sid, src


def is_git_url(src: str) -> bool:
    """BuildKit's test for a Git source in ADD (`gitutil.IsGitTransport` and the ``.git``
    suffix): git@host:path, git://, ssh://, or an http(s) URL whose path ends in .git."""
    if src.startswith(("git@", "git://", "ssh://")):
        return True
    if src.startswith(("http://", "https://")):
        path = src.split("#", 1)[0].rstrip("/")
        return path.endswith(".git")
    return False


def check_checksum(value: str, sources: list[str]) -> str:
    """ADD --checksum: BuildKit's rules (one source, an HTTP(S) or Git URL) and go-digest's
    format checks (sha256, sha384, sha512); returns the digest. For a Git source the
    checksum is the commit it must resolve to (hex, the full hash or a prefix of it)."""
    if len(sources) != 1:
        raise InvalidArgument("checksum can't be specified for multiple sources")
    src = sources[0]
    if not (src.startswith("http://") or src.startswith("https://") or is_git_url(src)):
        raise InvalidArgument("checksum requires HTTP(S) or Git sources")
    if is_git_url(src):
        if not value or len(value) > 64 or any(c not in "0123456789abcdef" for c in value):
            raise InvalidArgument(f"invalid checksum {value!r} for a Git source: expected a commit hash")
        return value
    algo, sep, hexpart = value.partition(":")
    if not sep or not algo or not hexpart:
        raise InvalidArgument("invalid checksum digest format")
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    if algo not in sizes:
        raise InvalidArgument("unsupported digest algorithm")
    if len(hexpart) != sizes[algo]:
        raise InvalidArgument("invalid checksum digest length")
    if any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidArgument("invalid checksum digest format")
    return value
