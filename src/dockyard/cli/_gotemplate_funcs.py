"""The template functions for `dockyard.cli.gotemplate` (internal).

Go's text/template builtins plus docker/cli's templates.basicFunctions, and Docker's
HeaderFunctions variant for a `table` header row.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from ._gotemplate_fmt import MISSING, _fmt, _json, _sprint, _sprintf, _truth, _type


class _FuncError(Exception):
    """Raised by a template function; reported as 'error calling NAME: ...'."""


def _docker_json(v) -> str:
    try:
        return _json(v)
    except (ValueError, RecursionError):
        return ""   # docker/cli ignores the encoder's error: nothing is written


def _kind(v) -> str:
    if v is None or v is MISSING:
        return "nil"
    for t, k in ((bool, "bool"), ((int, float), "number"), (str, "string")):
        if isinstance(v, t):
            return k
    return "other"


def _eq(a, *bs) -> bool:
    if not bs:
        raise _FuncError("missing argument for comparison")
    ka = _kind(a)
    for b in bs:
        kb = _kind(b)
        if "nil" in (ka, kb):
            truth = ka == kb
        elif ka != kb:
            raise _FuncError("incompatible types for comparison")
        elif ka == "other":
            raise _FuncError("invalid type for comparison")
        else:
            truth = a == b
        if truth:
            return True
    return False


def _lt(a, b) -> bool:
    ka, kb = _kind(a), _kind(b)
    if {ka, kb} & {"nil", "other"}:
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    if ka == "bool":
        raise _FuncError("invalid type for comparison")
    return a < b


def _len(v) -> int:
    if v is None or v is MISSING:
        raise _FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, Mapping)):
        return len(v)
    raise _FuncError(f"len of type {_type(v)}")


def _index_arg(i, cap: int) -> int:
    if i is None or i is MISSING:
        raise _FuncError("cannot index slice/array with nil")
    if isinstance(i, bool) or not isinstance(i, int):
        raise _FuncError(f"cannot index slice/array with type {_type(i)}")
    if i < 0 or i > cap:
        raise _FuncError(f"index out of range: {i}")
    return i


def _index(item, *indexes):
    if item is None or item is MISSING:
        raise _FuncError("index of untyped nil")
    for i in indexes:
        if item is None:
            raise _FuncError("index of nil pointer")
        if isinstance(item, (str, list, tuple)):
            seq = item.encode() if isinstance(item, str) else item
            x = _index_arg(i, len(seq))
            if x == len(seq):
                raise _FuncError(f"index out of range: {x}")
            item = seq[x]
        elif isinstance(item, Mapping):
            i = "" if i is None or i is MISSING else i
            if not isinstance(i, (str, int, float)):
                raise _FuncError(f"value has type {_type(i)}; should be string")
            if i in item:
                item = item[i]
            elif not isinstance(i, str):
                raise _FuncError(f"value has type {_type(i)}; should be string")
            else:  # the zero value: "" for a map[string]string (e.g. Labels), else nil
                item = "" if all(isinstance(e, str) for e in item.values()) else None
        else:
            raise _FuncError(f"can't index item of type {_type(item)}")
    return item


def _slice(item, *indexes):
    if item is None or item is MISSING:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        seq = item.encode()
    elif isinstance(item, (list, tuple)):
        seq = item
    else:
        raise _FuncError(f"can't slice item of type {_type(item)}")
    idx = [0, len(seq)]
    xs = [_index_arg(i, len(seq)) for i in indexes]
    idx[:len(xs[:2])] = xs[:2]
    for lo, hi in ((idx[0], idx[1]), *([(idx[1], xs[2])] if len(xs) == 3 else [])):
        if lo > hi:
            raise _FuncError(f"invalid slice index: {lo} > {hi}")
    res = seq[idx[0]:idx[1]]
    return res.decode("utf-8", "replace") if isinstance(item, str) else list(res)


def _call(fn, *args):
    if fn is None or fn is MISSING:
        raise _FuncError("call of nil")
    if not callable(fn) or isinstance(fn, type):
        raise _FuncError(f"non-function of type {_type(fn)}")
    try:
        return fn(*args)
    except Exception as e:
        raise _FuncError(str(e)) from e


def _eval_args(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*("<no value>" if a is None else a for a in args))


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}
_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}


def _js(s: str) -> str:
    return "".join(_JS.get(c) or ("\\u%04X" % ord(c) if c < " " or not c.isprintable() else c)
                   for c in s)


def _rune_map(f):
    return lambda s: "".join(r if len(r := f(c)) == 1 else c for c in s)


def _is_sep(c: str) -> bool:
    if c.isascii():
        return not (c.isalnum() or c == "_")
    return not (c.isalpha() or c.isdigit()) and c.isspace()


def _title(s: str) -> str:
    return "".join(_rune_map(str.title)(c) if _is_sep(p) else c for p, c in zip(" " + s, s))


def _pad_with_space(s: str, before: int, after: int) -> str:
    if min(before, after) < 0:
        raise _FuncError("strings: negative Repeat count")
    return s and " " * before + s + " " * after


def _truncate(s: str, n: int) -> str:
    b = s.encode()
    if len(b) < n:
        return s
    if n < 0:
        raise _FuncError(f"runtime error: slice bounds out of range [:{n}]")
    return b[:n].decode("utf-8", "ignore")


# name -> (function, parameter kinds); "*kind" = variadic.  Kinds: "value" (raw, a missing
# key stays missing), "any" (missing -> None), "str", "int", "strs" (list of strings).
_FUNCS = {
    "and": (None, ("value", "*value")),
    "or": (None, ("value", "*value")),
    "not": (lambda v: not _truth(v), ("value",)),
    "len": (_len, ("value",)),
    "index": (_index, ("value", "*value")),
    "slice": (_slice, ("value", "*value")),
    "call": (_call, ("value", "*any")),
    "eq": (_eq, ("value", "*value")),
    "ne": (lambda a, b: not _eq(a, b), ("value", "value")),
    "lt": (_lt, ("value", "value")),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), ("value", "value")),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), ("value", "value")),
    "ge": (lambda a, b: not _lt(a, b), ("value", "value")),
    "print": (_sprint, ("*any",)),
    "printf": (_sprintf, ("str", "*any")),
    "println": (lambda *a: " ".join(map(_fmt, a)) + "\n", ("*any",)),
    "html": (lambda *a: "".join(_HTML.get(c, c) for c in _eval_args(a)), ("*any",)),
    "js": (lambda *a: _js(_eval_args(a)), ("*any",)),
    "urlquery": (lambda *a: urllib.parse.quote_plus(_eval_args(a), safe=""), ("*any",)),
    # docker/cli templates.basicFunctions
    "json": (_docker_json, ("any",)),
    "split": (lambda s, sep: s.split(sep) if sep else list(s), ("str", "str")),
    "join": (lambda items, sep: sep.join(items), ("strs", "str")),
    "title": (_title, ("str",)),
    "lower": (_rune_map(str.lower), ("str",)),
    "upper": (_rune_map(str.upper), ("str",)),
    "pad": (_pad_with_space, ("str", "int", "int")),
    "truncate": (_truncate, ("str", "int")),
}
FUNCTIONS = frozenset(_FUNCS)
# docker/cli templates.HeaderFunctions: a `table` header row renders column titles
# through the same template, so the text-changing functions return their input.
_HEADER_FUNCS = {**_FUNCS, **{name: (lambda v, *_: v, kinds) for name, kinds in (
    ("json", ("str",)), ("split", ("str", "str")), ("join", ("str", "str")), ("title", ("str",)),
    ("lower", ("str",)), ("upper", ("str",)), ("truncate", ("str", "int")))}}
