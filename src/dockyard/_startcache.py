"""One file of compiled modules, so a command does not pay the import system per module.

Importing one of Dockyard's ~50 start-path modules the usual way costs ~55 µs beyond running
its code: the path finder's stat calls and directory listings, the open/read/close of its
`.pyc`, and importlib's own (pure Python) bookkeeping: ~2.7 ms of every `dockyard run`. The
install step (`python -m dockyard._startcache build`) writes every module of the package,
compiled, into `__pycache__/startcache.<cache tag>.bin` beside this file; the launchers call
`install()`, which puts a finder first on `sys.meta_path` that serves those modules from that
file (one read of its index, one `pread` per module).

Never stale: each entry records its source's size and modification time, and a module whose
source differs (an edited checkout) is left to the normal import system. A file written by
another Python version (magic number) is ignored, and so is any error reading it.

Layout: MAGIC (importlib's) + 4-byte index length + marshal of the index
{module: (is_package, source path, mtime_ns, size, offset, length)} + the marshalled code
objects, at `offset`s from the end of the index.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def cache_path(package_dir: str = PACKAGE_DIR) -> str:
    return os.path.join(package_dir, "__pycache__", f"startcache.{sys.implementation.cache_tag}.bin")


def _magic() -> bytes:
    return sys.modules["_frozen_importlib_external"].MAGIC_NUMBER  # importlib.util's, unimported


class _Finder:
    """A meta path finder and loader for the modules in one cache file."""

    def __init__(self, fd: int, base: int, index: dict[str, tuple[Any, ...]]) -> None:
        self.fd, self.base, self.index = fd, base, index

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        entry = self.index.get(name)
        if entry is None:
            return None
        is_pkg, origin, mtime_ns, size, _offset, _length = entry
        try:
            st = os.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # edited since the cache was built: the normal import system's
        spec = sys.modules["_frozen_importlib"].ModuleSpec(name, self, origin=origin, is_package=is_pkg)
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.has_location = True
        return spec

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        _is_pkg, origin, _m, _s, offset, length = self.index[module.__spec__.name]
        code = marshal.loads(os.pread(self.fd, length, self.base + offset))
        exec(code, module.__dict__)

    def get_source(self, name: str) -> str | None:  # linecache, tracebacks
        with open(self.index[name][1], encoding="utf-8") as f:
            return f.read()


def install(package_dir: str = PACKAGE_DIR) -> bool:
    """Serve this package's modules from its cache file, if there is a usable one."""
    try:
        fd = os.open(cache_path(package_dir), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.pread(fd, 8, 0)
        if len(head) != 8 or head[:4] != _magic():
            os.close(fd)
            return False
        n = int.from_bytes(head[4:], "little")
        index = marshal.loads(os.pread(fd, n, 8))
    except (OSError, ValueError, EOFError, TypeError):
        os.close(fd)
        return False
    sys.meta_path.insert(0, _Finder(fd, 8 + n, index))
    return True


def build(package_dir: str = PACKAGE_DIR, package: str = "dockyard") -> tuple[str, int]:
    """Compile every module of the package into its cache file; returns (path, modules)."""
    index: dict[str, tuple[Any, ...]] = {}
    blobs: list[bytes] = []
    offset = 0
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier())
        rel = os.path.relpath(dirpath, package_dir)
        prefix = package if rel == "." else package + "." + rel.replace(os.sep, ".")
        if "__init__.py" not in filenames:
            dirnames[:] = []
            continue
        for fn in sorted(filenames):
            if not fn.endswith(".py") or not fn[:-3].isidentifier():
                continue
            path = os.path.join(dirpath, fn)
            is_pkg = fn == "__init__.py"
            name = prefix if is_pkg else f"{prefix}.{fn[:-3]}"
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                source = f.read()
            blob = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
            index[name] = (is_pkg, path, st.st_mtime_ns, st.st_size, offset, len(blob))
            blobs.append(blob)
            offset += len(blob)
    head = marshal.dumps(index)
    out = cache_path(package_dir)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(_magic() + len(head).to_bytes(4, "little") + head)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return out, len(index)


def main(argv: list[str]) -> int:
    if argv[:1] != ["build"]:
        print("usage: python -m dockyard._startcache build", file=sys.stderr)
        return 2
    path, count = build()
    print(f"{path}: {count} modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
