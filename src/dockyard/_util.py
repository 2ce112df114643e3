"""Small shared helpers: atomic writes, file locks, ids, time and size formatting.

Tier 0: imports nothing from dockyard but `errors`.
"""

from __future__ import annotations

import fcntl
import os
from ._lean import contextmanager, suppress
from ._path import Path

from . import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644,
                 durable: bool = True) -> None:
    """Write `data` to `path` through a temp file + fsync + rename. `durable=False` skips
    the fsync for files that are rebuilt anyway (still atomic: readers never see half)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any, mode: int = 0o644, durable: bool = True) -> None:
    atomic_write(path, _json.dumps(obj), mode, durable)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as f:
        return _json.loads(f.read())


@contextmanager
def locked(path: str | os.PathLike[str], shared: bool = False) -> Iterator[None]:
    """Hold an flock on `path` (created if missing) for the duration of the block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def filter_map(items: Iterable[str], allowed: Iterable[str] | None = None) -> dict[str, list[str]]:
    """`-f key=value` items as Docker's filter map; keys outside `allowed` are refused."""
    from .errors import InvalidArgument

    keys = set(allowed) if allowed is not None else None
    out: dict[str, list[str]] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {it}")
        k = k.strip().lower()
        if keys is not None and k not in keys:
            raise InvalidArgument(f"invalid filter '{k}'")
        out.setdefault(k, []).append(v)
    return out


def kv_map(items: Iterable[str], what: str, need_value: bool = False) -> dict[str, str]:
    """KEY=VALUE items (labels, options, sysctls) as a dict; an empty key (or a missing '='
    when `need_value`) is refused naming `what` and the item."""
    from .errors import InvalidArgument

    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not k or (need_value and not sep):
            raise InvalidArgument(f"invalid {what}: '{it}'")
        out[k] = v
    return out


def remove_later(paths: list[Path], trash: str | os.PathLike[str]) -> None:
    """Take `paths` out of sight now (renames into `trash`, on the same file system) and
    delete them in one detached `rm -rf`, so a command does not wait for the unlinks. A crash
    before the deletion finishes leaves only `trash` entries, which the store's gc removes."""
    os.makedirs(trash, exist_ok=True)
    moved = []
    for path in paths:
        target = os.path.join(trash, f"{os.path.basename(os.fspath(path))}-{os.urandom(4).hex()}")
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue
        moved.append(target)
    if moved:
        # /bin/rm by absolute path: a PATH search tries (and execs) every directory before it
        spawn_detached(["/bin/rm" if os.path.exists("/bin/rm") else "rm", "-rf", "--", *moved])


#: children of spawn_detached not reaped yet (a long-lived `dockyard serve` reaps them later)
_detached: list[int] = []


def spawn_detached(argv: list[str]) -> None:
    """Start `argv` in a new session with stdio on /dev/null and do not wait for it.
    posix_spawn (vfork) instead of subprocess: no `subprocess`/`threading` import, ~1 ms
    less. Earlier such children that have exited are reaped here."""
    for pid in list(_detached):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                _detached.remove(pid)
        except ChildProcessError:
            _detached.remove(pid)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                   (os.POSIX_SPAWN_DUP2, devnull, 2)]
        _detached.append(os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsid=True))
    finally:
        os.close(devnull)


def rmtree(path: str | os.PathLike[str]) -> None:
    """`shutil.rmtree(path, ignore_errors=True)` without importing shutil (and with it bz2,
    lzma and zlib): for the small trees on the start path (a container's run directory).
    As shutil's, it never follows a symlink: one at `path` itself is left alone."""
    if os.path.islink(path):
        return
    try:
        entries = list(os.scandir(path))
    except NotADirectoryError:
        entries = None
    except OSError:
        return
    if entries is None:
        with suppress(OSError):
            os.unlink(path)
        return
    for e in entries:
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            rmtree(e.path)
        else:
            with suppress(OSError):
                os.unlink(e.path)
    with suppress(OSError):
        os.rmdir(path)


def new_id() -> str:
    """A 64-hex-digit random ID, like Docker's container IDs."""
    return os.urandom(32).hex()


def short_id(full: str) -> str:
    if full.startswith("sha256:"):
        full = full[7:]
    return full[:12]


# ---- time ---------------------------------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    """UTC time with nanosecond-style precision, as Docker writes timestamps."""
    return format_rfc3339_ns(_now_ns())


def _now_ns() -> int:
    import time

    return time.time_ns()


def format_rfc3339_ns(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    import time

    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:09d}Z"


def parse_rfc3339(value: str) -> float:
    """Parse Docker's RFC 3339 (possibly with 9 fractional digits) to a POSIX timestamp."""
    if not value or value.startswith("0001-01-01"):
        return 0.0
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    frac = 0.0
    if "." in v:
        head, rest = v.split(".", 1)
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        frac = float("0." + digits) if digits else 0.0
        v = head + rest[i:]
    import datetime

    return datetime.datetime.fromisoformat(v).timestamp() + frac


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(seconds / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def human_size(n: float, precision: int = 4) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units, `precision` significant digits
    (4 is units.HumanSize)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.{precision}g}{units[i]}"


def bytes_size(n: float) -> str:
    """Docker's units.BytesSize: binary units (used by `stats`)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: str) -> int:
    """Parse Docker's RAMInBytes syntax: 512m, 1g, 100k, 1024 (binary multiples)."""
    from .errors import InvalidArgument

    v = value.strip().lower()
    if v.endswith("ib"):
        v = v[:-2]
    elif v.endswith("b") and len(v) > 1 and not v[-2].isdigit():
        v = v[:-1]
    num = v.rstrip("bkmgt")
    unit = v[len(num):]
    try:
        if unit not in _SIZE_UNITS or not num:
            raise ValueError
        size = float(num) * _SIZE_UNITS[unit]
    except ValueError:
        raise InvalidArgument(f"invalid size: '{value}'") from None
    if size < 0:
        raise InvalidArgument(f"invalid size: '{value}'")
    return int(size)


#: Dockyard's daemon.json-like configuration (DOCKYARD_CONFIG overrides the path)
DAEMON_CONFIG = "/etc/dockyard/daemon.json"


def daemon_config() -> dict[str, Any]:
    """DOCKYARD_CONFIG, else /etc/dockyard/daemon.json, as a dict ({} when there is none).
    Networks read `bridge`/`bip`/`default-address-pools`, pull and push `registry-mirrors` etc."""
    from .errors import InvalidArgument

    path = os.environ.get("DOCKYARD_CONFIG") or DAEMON_CONFIG
    try:
        with open(path) as f:
            cfg = _json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"invalid configuration file {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise InvalidArgument(f"invalid configuration file {path}: not a JSON object")
    return cfg
