"""Compact JSON through CPython's C accelerator `_json`, without importing the `json` package.

`json` compiles regular expressions when it is imported, and `re` imports `enum`: ~2.5 ms of
every `dockyard` command, whose metadata reads and writes need only what `_json` does in C
anyway (the scanner and the encoder `json.loads`/`json.dumps` use). The output is byte for
byte `json.dumps(obj, separators=(",", ":"))` (with `sort_keys` if asked): image IDs are the
sha256 of such bytes; `dumps_indented` is `json.dumps(obj, indent=N)` (a pushed manifest's
spelling). Errors are `json.JSONDecodeError` (a ValueError), as `json.loads` raises;
the `json` package is imported only then. Commands that print indented JSON use `json`.
"""

from __future__ import annotations

from _json import encode_basestring_ascii, make_encoder, make_scanner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes the C scanner reads from its context (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = make_scanner(_Context())


def _error(msg: str, doc: str, pos: int) -> ValueError:
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


def loads(s: str | bytes | bytearray) -> Any:
    """A JSON text (str, or UTF-8 bytes) -> its value."""
    if not isinstance(s, str):
        s = bytes(s).decode("utf-8")
    idx = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, idx)
    except StopIteration as err:
        raise _error("Expecting value", s, err.value) from None
    rest = s[end:].lstrip(_WS)
    if rest:
        raise _error("Extra data", s, len(s) - len(rest))
    return obj


def load(f: TextIO | BinaryIO) -> Any:
    return loads(f.read())


def _default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(obj: Any, sort_keys: bool = False) -> str:
    """`json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys)`."""
    if isinstance(obj, str):
        return encode_basestring_ascii(obj)
    # a fresh encoder per call, as json's: its circular-reference markers start empty
    encode = make_encoder({}, _default, encode_basestring_ascii, None, ":", ",", sort_keys, False, True)
    return "".join(encode(obj, 0))


def dumps_indented(obj: Any, indent: int) -> str:
    """`json.dumps(obj, indent=indent)`, byte for byte."""
    out: list[str] = []
    _pretty(obj, " " * indent, "\n", out)
    return "".join(out)


def _pretty(o: Any, step: str, nl: str, out: list[str]) -> None:
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = nl + step
        out.append("{")
        for i, (k, v) in enumerate(o.items()):
            out.append(("," if i else "") + inner + _key(k) + ": ")
            _pretty(v, step, inner, out)
        out.append(nl + "}")
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        inner = nl + step
        out.append("[")
        for i, v in enumerate(o):
            out.append(("," if i else "") + inner)
            _pretty(v, step, inner, out)
        out.append(nl + "]")
    else:
        out.append(dumps(o))


def _key(k: Any) -> str:
    if isinstance(k, str):
        return encode_basestring_ascii(k)
    if k is True or k is False or k is None or isinstance(k, (int, float)):
        return encode_basestring_ascii(dumps(k))  # json's: keys become strings
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")
