"""Dockyard: a Docker-compatible container engine written in Python."""

__version__ = "0.1.0"
API_VERSION = "1.45"

import sys


class _ImportedWhenUsed(type(sys)):  # type: ignore[misc]
    """Stands in for a module that `pathlib` imports but uses only inside functions Dockyard's
    start path never calls (`glob`, `match`, `as_uri`): the first attribute read imports the
    real module and rebinds pathlib's global to it."""

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__") or sys.modules.get(self.__name__) is self:
            raise AttributeError(attr)  # the import system probing (__path__, __spec__)
        __import__(self.__name__)
        real = sys.modules[self.__name__]
        pathlib = sys.modules.get("pathlib")
        if pathlib is not None and getattr(pathlib, self.__name__.rpartition(".")[2], None) is self:
            setattr(pathlib, self.__name__.rpartition(".")[2], real)
        return getattr(real, attr)


def _quote_from_bytes(bs: bytes, safe: str = "/") -> str:
    from urllib.parse import quote_from_bytes

    return quote_from_bytes(bs, safe)


def _import_pathlib_lean() -> None:
    """Import `pathlib` without `re`, `fnmatch` and `urllib.parse` (with `enum` and `ipaddress`,
    which those import): ~3 ms of every command, spent on glob patterns and `as_uri()`, which
    the start path never uses. While pathlib is imported, stand-ins take those modules' places
    in `sys.modules` (`from urllib.parse import quote_from_bytes` gets a function that imports
    the real one when called); they are removed right after, so any later import of those
    modules gets the real ones."""
    if "pathlib" in sys.modules:
        return
    stand_ins = {}
    for name in ("re", "fnmatch", "urllib.parse"):
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = _ImportedWhenUsed(name)
    if "urllib.parse" in stand_ins:
        stand_ins["urllib.parse"].__dict__["quote_from_bytes"] = _quote_from_bytes
    try:
        import pathlib  # noqa: F401
    finally:
        for name, mod in stand_ins.items():
            if sys.modules.get(name) is mod:
                del sys.modules[name]


_import_pathlib_lean()
