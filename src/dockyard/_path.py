"""`Path`: the part of `pathlib.Path` Dockyard's modules use, without importing pathlib.

`pathlib` imports `functools` and with it `collections` (~5 ms before the first line of
`dockyard run` runs: a tenth of it). This class is a POSIX path with pathlib's normalisation
(`a//b/./c/` is `a/b/c`), operators (`/`, comparison, hashing) and the file methods the
engine calls. Any other attribute (`glob`, `relative_to`, `parents`, …) is answered by a real
`pathlib.Path` of the same path, so the class is a drop-in for code that needs more. It equals
a `pathlib.PurePosixPath`/`Path` of the same path and hashes as it does, so the two mix as
dict keys; unlike pathlib's own classes it is not an instance of them.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Iterator

_IGNORED_ERRNOS = (2, 20, 9, 40)  # ENOENT, ENOTDIR, EBADF, ELOOP: "does not exist" (pathlib's)


def _normalise(s: str) -> str:
    if not s:
        return "."
    if s.startswith("/"):
        lead = "//" if s.startswith("//") and not s.startswith("///") else "/"
    else:
        lead = ""
    body = "/".join(p for p in s.split("/") if p and p != ".")
    return lead + body if (lead or body) else "."


def _pathlib(s: str) -> Any:
    from pathlib import PosixPath

    return PosixPath(s)


class Path:
    __slots__ = ("_s",)

    def __init__(self, *parts: str | os.PathLike[str]) -> None:
        s = ""
        for part in parts:
            p = os.fspath(part)
            if isinstance(p, bytes):
                raise TypeError("argument should be a str or an os.PathLike object returning str, not bytes")
            if p.startswith("/") or not s:
                s = p
            elif p:
                s = s + p if s.endswith("/") else s + "/" + p
        self._s = _normalise(s)

    @classmethod
    def _of(cls, normalised: str) -> Path:
        p = object.__new__(cls)
        p._s = normalised
        return p

    # ---- the path itself ------------------------------------------------------------
    def __fspath__(self) -> str:
        return self._s

    def __str__(self) -> str:
        return self._s

    def __repr__(self) -> str:
        return f"PosixPath({self._s!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._s,))

    def as_posix(self) -> str:
        return self._s

    def _key(self) -> tuple[str, ...]:
        return tuple(self.parts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Path):
            return self._s == other._s
        if type(other).__module__.startswith("pathlib") and isinstance(other, os.PathLike):
            return self._s == str(other)
        return NotImplemented

    if sys.version_info < (3, 12):
        def __hash__(self) -> int:
            return hash(tuple(self.parts))  # pathlib's own, so the two mix as dict keys
    else:
        def __hash__(self) -> int:
            return hash(self._s)  # pathlib's own from 3.12 (its normcase string)

    def __lt__(self, other: Path) -> bool:
        return self._key() < Path(other)._key()

    def __le__(self, other: Path) -> bool:
        return self._key() <= Path(other)._key()

    def __gt__(self, other: Path) -> bool:
        return self._key() > Path(other)._key()

    def __ge__(self, other: Path) -> bool:
        return self._key() >= Path(other)._key()

    def __truediv__(self, other: str | os.PathLike[str]) -> Path:
        o = os.fspath(other)
        if isinstance(o, bytes):
            return NotImplemented
        if o.startswith("/"):
            return Path(o)
        if not o or o == ".":
            return self
        if "/" not in o:
            return self._of(o if self._s == "." else (self._s + o if self._s.endswith("/") else self._s + "/" + o))
        return Path(self._s, o)

    def __rtruediv__(self, other: str | os.PathLike[str]) -> Path:
        return Path(other, self._s)

    def joinpath(self, *others: str | os.PathLike[str]) -> Path:
        return Path(self._s, *others)

    @property
    def parts(self) -> tuple[str, ...]:
        s = self._s
        if s.startswith("/"):
            lead = "//" if s.startswith("//") else "/"
            rest = s[len(lead):]
            return (lead, *rest.split("/")) if rest else (lead,)
        return () if s == "." else tuple(s.split("/"))

    @property
    def name(self) -> str:
        s = self._s
        if s == "." or s.strip("/") == "":
            return ""
        return s.rpartition("/")[2]

    @property
    def parent(self) -> Path:
        s = self._s
        head, sep, tail = s.rpartition("/")
        if not sep or s == ".":
            return self._of(".")
        if not tail:  # "/" or "//"
            return self
        if head.strip("/") == "":
            return self._of(s[: len(s) - len(tail)])
        return self._of(head)

    @property
    def suffix(self) -> str:
        name = self.name
        i = name.rfind(".")
        return name[i:] if 0 < i < len(name) - 1 else ""

    @property
    def stem(self) -> str:
        name, suffix = self.name, self.suffix
        return name[: len(name) - len(suffix)] if suffix else name

    def with_name(self, name: str) -> Path:
        if not self.name or not name or "/" in name or name == ".":
            raise ValueError(f"{self!r} has an empty name" if not self.name else f"Invalid name {name!r}")
        return self.parent / name

    def with_suffix(self, suffix: str) -> Path:
        if suffix and (not suffix.startswith(".") or suffix == "." or "/" in suffix):
            raise ValueError(f"Invalid suffix {suffix!r}")
        if not self.name:
            raise ValueError(f"{self!r} has an empty name")
        return self.with_name(self.stem + suffix)

    def is_absolute(self) -> bool:
        return self._s.startswith("/")

    def absolute(self) -> Path:
        return self if self.is_absolute() else Path(os.getcwd(), self._s)

    def resolve(self, strict: bool = False) -> Path:
        if strict:
            os.stat(self._s)
        return Path(os.path.realpath(self._s))

    # ---- the file system --------------------------------------------------------------
    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self._s, follow_symlinks=follow_symlinks)

    def lstat(self) -> os.stat_result:
        return os.lstat(self._s)

    def _test(self, follow: bool, want: int | None) -> bool:
        try:
            st = os.stat(self._s, follow_symlinks=follow)
        except OSError as e:
            if e.errno not in _IGNORED_ERRNOS:
                raise
            return False
        except ValueError:
            return False
        return want is None or (st.st_mode & 0o170000) == want

    def exists(self) -> bool:
        return self._test(True, None)

    def is_dir(self) -> bool:
        return self._test(True, 0o040000)

    def is_file(self) -> bool:
        return self._test(True, 0o100000)

    def is_symlink(self) -> bool:
        return self._test(False, 0o120000)

    def open(self, mode: str = "r", buffering: int = -1, encoding: str | None = None,
             errors: str | None = None, newline: str | None = None) -> IO[Any]:
        return open(self._s, mode, buffering, encoding, errors, newline)

    def read_bytes(self) -> bytes:
        with open(self._s, "rb") as f:
            return f.read()

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        with open(self._s, encoding=encoding, errors=errors) as f:
            return f.read()

    def write_bytes(self, data: bytes) -> int:
        view = memoryview(data)
        with open(self._s, "wb") as f:
            return f.write(view)

    def write_text(self, data: str, encoding: str | None = None, errors: str | None = None,
                   newline: str | None = None) -> int:
        if not isinstance(data, str):
            raise TypeError(f"data must be str, not {type(data).__name__}")
        with open(self._s, "w", encoding=encoding, errors=errors, newline=newline) as f:
            return f.write(data)

    def iterdir(self) -> Iterator[Path]:
        for name in os.listdir(self._s):
            yield self / name

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        try:
            os.mkdir(self._s, mode)
        except FileNotFoundError:
            if not parents or self.parent == self:
                raise
            self.parent.mkdir(parents=True, exist_ok=True)
            self.mkdir(mode, parents=False, exist_ok=exist_ok)
        except OSError:
            if not exist_ok or not self.is_dir():
                raise

    def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        if exist_ok:
            try:
                os.utime(self._s, None)
                return
            except OSError:
                pass
        flags = os.O_CREAT | os.O_WRONLY | (0 if exist_ok else os.O_EXCL)
        os.close(os.open(self._s, flags, mode))

    def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        os.chmod(self._s, mode, follow_symlinks=follow_symlinks)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            os.unlink(self._s)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self) -> None:
        os.rmdir(self._s)

    def rename(self, target: str | os.PathLike[str]) -> Path:
        os.rename(self._s, target)
        return Path(target)

    def replace(self, target: str | os.PathLike[str]) -> Path:
        os.replace(self._s, target)
        return Path(target)

    def symlink_to(self, target: str | os.PathLike[str], target_is_directory: bool = False) -> None:
        os.symlink(target, self._s, target_is_directory)

    def readlink(self) -> Path:
        return Path(os.readlink(self._s))

    def samefile(self, other: str | os.PathLike[str]) -> bool:
        return os.path.samestat(os.stat(self._s), os.stat(other))

    # ---- everything else: pathlib's ------------------------------------------------------
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr == "_s":
            raise AttributeError(attr)
        return getattr(_pathlib(self._s), attr)


PurePosixPath = Path
