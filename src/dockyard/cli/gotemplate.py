"""Go text/template, the subset Docker users write in `--format`, with docker/cli's functions.

    render("{{.State.Pid}}", inspect_data)          -> "4242"
    parse("{{join .Args \\",\\"}}").execute(data)      -> "a,b"
    tabwrite("NAME\\tIMAGE\\nweb\\tnginx\\n")            -> Go text/tabwriter(10, 1, 3, ' ', 0)

Data is JSON-shaped Python (dict, list, str, int, float, bool, None).  A callable found
as a dict value (or a public attribute of a non-JSON object) acts like a Go method:
`{{.Label "com.example"}}` calls it with the arguments (and the piped value, if any).
A missing map key is Go's "invalid value": it prints `<no value>`; an explicit None
prints `<nil>` (a nil pointer in Docker's typed structs).
"""

from __future__ import annotations

import inspect
import math
import re
import urllib.parse
from collections.abc import Mapping

from ._gotemplate_parse import (Action, Chain, Control, Field, Ident, Literal, Pipe, TemplateError,
                                Text, Variable, go_quote, node_str, parse_tree)

__all__ = ["Template", "TemplateError", "parse", "render", "tabwrite"]


class _Missing:
    __slots__ = ()

    def __repr__(self):
        return "<no value>"


MISSING = _Missing()   # Go's invalid reflect.Value (missing map key)
_NOFINAL = object()    # no piped value (Go's missingVal)


class _Fail(Exception):
    def __init__(self, node, msg):
        super().__init__(msg)
        self.node, self.msg = node, msg


class _FuncError(Exception):
    """Raised by a template function; reported as 'error calling NAME: ...'."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ------------------------------------------------------------ Go-like values

def _type(v) -> str:
    if v is None or v is MISSING:
        return "interface {}"
    for t, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                    ((list, tuple), "[]interface {}"), (Mapping, "map[string]interface {}")):
        if isinstance(v, t):
            return name
    return "func" if callable(v) else type(v).__name__


def _truth(v) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float)):
        return v != 0
    if isinstance(v, (str, list, tuple, Mapping)):
        return len(v) > 0
    return True


def _sorted_keys(m):
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=str)


def _digits(a: float):
    """Shortest round-trip digits of finite a >= 0 and dp, with a == 0.<digits> * 10**dp."""
    if a == 0:
        return "0", 1
    mant, _, exp = repr(a).partition("e")
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    return digits.rstrip("0"), len(digits) + int(exp or 0) - len(fp)


def _shortest(a: float, json: bool = False) -> str:
    """strconv.FormatFloat(a, 'g', -1) as fmt's %v uses it, or encoding/json's float form."""
    digits, dp = _digits(a)
    x = dp - 1
    if (a != 0 and (a < 1e-6 or a >= 1e21)) if json else (x < -4 or x >= 6):
        s = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp = "%02d" % abs(x) if not json else str(abs(x)) if x < 0 else "%02d" % x
        return s + ("e-" if x < 0 else "e+") + exp
    if dp <= 0:
        return "0." + "0" * -dp + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


class _Spec:
    """Flags, width and precision of one printf verb."""
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "sharpv", "width", "prec")

    def __init__(self):
        self.minus = self.plus = self.sharp = self.space = self.zero = self.sharpv = False
        self.width = self.prec = None


_PLAIN = _Spec()


def _pad(s: str, sp: _Spec, zero: bool = True) -> str:
    if sp.width is None or len(s) >= sp.width:
        return s
    fill = sp.width - len(s)
    if sp.minus:
        return s + " " * fill
    return ("0" if sp.zero and zero else " ") * fill + s


def _fmt_int(v: int, verb: str, sp: _Spec) -> str:
    base = {"b": 2, "o": 8, "O": 8, "x": 16, "X": 16}.get(verb, 10)
    digits = format(abs(v), {2: "b", 8: "o", 10: "d", 16: "x"}[base])
    if sp.prec is not None:
        digits = "" if sp.prec == 0 and v == 0 else digits.rjust(sp.prec, "0")
    elif sp.zero and not sp.minus and sp.width:
        digits = digits.rjust(sp.width - (v < 0 or sp.plus or sp.space), "0")
    if verb == "X":
        digits = digits.upper()
    if sp.sharp and base == 8 and not digits.startswith("0") or verb == "O":
        digits = ("0o" if verb == "O" else "0") + digits
    elif sp.sharp and base in (2, 16):
        digits = {2: "0b", 16: "0X" if verb == "X" else "0x"}[base] + digits
    sign = "-" if v < 0 else "+" if sp.plus else " " if sp.space else ""
    return _pad(sign + digits, sp, zero=False)


def _fmt_float(v: float, verb: str, sp: _Spec) -> str:
    if math.isnan(v) or math.isinf(v):
        s = "NaN" if math.isnan(v) else "-Inf" if v < 0 else "+Inf"
        if s[0] != "-" and (sp.plus or sp.space):
            s = ("+" if sp.plus else " ") + s.lstrip("+")
        return _pad(s, sp, zero=False)
    a, prec = abs(v), sp.prec
    if verb in "vgG":
        s = _shortest(a) if prec is None else "%.*g" % (prec, a)
    else:
        s = ("%.*e" if verb in "eE" else "%.*f") % (6 if prec is None else prec, a)
    if verb in "EG":
        s = s.upper()
    sign = "-" if math.copysign(1.0, v) < 0 else "+" if sp.plus else " " if sp.space else ""
    if sp.zero and not sp.minus and sp.width:
        s = s.rjust(sp.width - len(sign), "0")
    return _pad(sign + s, sp, zero=False)


def _fmt(v, verb: str = "v", sp: _Spec = _PLAIN) -> str:
    """fmt's rendering of one operand for one verb (%v by default)."""
    if v is MISSING:
        v = None
    if verb == "T":
        return _pad("<nil>" if v is None else _type(v), sp)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt(e, verb, sp) for e in v) + "]"
    if isinstance(v, Mapping):  # callable values model Go methods: not printed
        return "map[" + " ".join(_fmt(k, verb, sp) + ":" + _fmt(v[k], verb, sp)
                                 for k in _sorted_keys(v) if not callable(v[k])) + "]"
    if v is None:
        return _pad("<nil>", sp) if verb == "v" else f"%!{verb}(<nil>)"
    if isinstance(v, bool):
        if verb in "vt":
            return _pad("true" if v else "false", sp)
    elif isinstance(v, int):
        if verb in "vdboOxX":
            return _fmt_int(v, verb, sp)
        ch = chr(v) if 0 <= v <= 0x10FFFF and not 0xD800 <= v < 0xE000 else "\ufffd"
        if verb == "c":
            return _pad(ch, sp)
        if verb == "q":
            return _pad(go_quote(ch, "'", sp.plus), sp)
        if verb == "U":
            u = "U+%04X" % v + (" " + go_quote(ch, "'") if sp.sharp and ch.isprintable() else "")
            return _pad(u, sp)
    elif isinstance(v, float):
        if verb in "vgGeEfF":
            return _fmt_float(v, verb, sp)
    elif isinstance(v, str):
        if verb in "vsq":
            s = v if sp.prec is None else v[:sp.prec]
            if verb == "q" or sp.sharpv:
                s = "`" + s + "`" if sp.sharp and "`" not in s and s.isprintable() \
                    else go_quote(s, '"', sp.plus)
            return _pad(s, sp)
        if verb in "xX":
            b = v.encode()[:sp.prec]
            sep = " " if sp.space else ""
            pre = ("0X" if verb == "X" else "0x") if sp.sharp else ""
            hx = [("%02X" if verb == "X" else "%02x") % c for c in b]
            s = (sep.join(pre + h for h in hx) if sp.space else pre + "".join(hx)) if hx else ""
            return _pad(s, sp)
    elif verb in "vs":
        return _pad("0x%x" % id(v) if callable(v) else str(v), sp)
    return f"%!{verb}({_type(v)}={_fmt(v)})"


def _sprint(*args) -> str:
    out = []
    for k, a in enumerate(args):
        if k and not isinstance(a, str) and not isinstance(args[k - 1], str):
            out.append(" ")
        out.append(_fmt(a))
    return "".join(out)


def _star(args, argi):
    a = args[argi] if argi < len(args) else None
    return (a if isinstance(a, int) and not isinstance(a, bool) else None), argi + 1


def _sprintf(f: str, *args) -> str:
    """fmt.Sprintf: flags + - # 0 space, width/precision (or *), verbs v T t d b o O x X c q U
    e E f F g G s, with Go's %!v(MISSING), %!d(string=x) and %!(EXTRA ...) diagnostics."""
    out, n, i, argi = [], len(f), 0, 0
    while i < n:
        j = f.find("%", i)
        if j < 0:
            out.append(f[i:])
            break
        out.append(f[i:j])
        i, sp = j + 1, _Spec()
        while i < n and f[i] in "+-# 0":
            c, i = f[i], i + 1
            if c == "-":
                sp.minus, sp.zero = True, False
            elif c == "0":
                sp.zero = not sp.minus
            else:
                setattr(sp, {"+": "plus", "#": "sharp", " ": "space"}[c], True)
        for attr in ("width", "prec"):
            if attr == "prec":
                if i >= n or f[i] != ".":
                    break
                i, sp.prec = i + 1, 0
            if i < n and f[i] == "*":
                val, argi = _star(args, argi)
                i += 1
                if val is None:
                    out.append("%!(BADWIDTH)" if attr == "width" else "%!(BADPREC)")
                elif attr == "width" and val < 0:
                    sp.minus, sp.zero, sp.width = True, False, -val
                else:
                    setattr(sp, attr, val if val >= 0 else None)
                continue
            j = i
            while j < n and "0" <= f[j] <= "9":
                j += 1
            if j > i:
                setattr(sp, attr, int(f[i:j]))
            i = j
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb, i = f[i], i + 1
        if verb == "%":
            out.append("%")
        elif argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                sp.sharpv, sp.sharp, sp.plus = sp.sharp, False, False
            out.append(_fmt(args[argi], verb, sp))
            argi += 1
    if argi < len(args):
        extra = ("<nil>" if a is None else f"{_type(a)}={_fmt(a)}" for a in args[argi:])
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
             "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_RE = re.compile('["\\\\\x00-\x1f\u2028\u2029\ud800-\udfff]')


def _json_str(s: str) -> str:
    def esc(m):
        c = m.group()
        return _JSON_ESC.get(c) or ("\\ufffd" if c >= "\ud800" else "\\u%04x" % ord(c))
    return '"' + _JSON_RE.sub(esc, s) + '"'


def _json(v) -> str:
    """encoding/json with SetEscapeHTML(false), compact; dicts keep insertion order."""
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("unsupported value")
        return ("-" if math.copysign(1.0, v) < 0 else "") + _shortest(abs(v), json=True)
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_json(e) for e in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ",".join(_json_str(k if isinstance(k, str) else _fmt(k)) + ":" + _json(e)
                              for k, e in v.items() if not callable(e)) + "}"
    raise ValueError("unsupported type")


# ------------------------------------------------------------------ functions

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


def _coerce(v, kind: str, node):
    if kind == "value":
        return v
    if v is MISSING:
        v = None
    if kind == "any":
        return v
    want = {"str": "string", "int": "int", "strs": "[]string"}[kind]
    if v is None:
        raise _Fail(node, f"invalid value; expected {want}")
    if kind == "str" and isinstance(v, str) or kind == "int" and _kind(v) == "number" \
            and isinstance(v, int):
        return v
    if kind == "strs" and isinstance(v, (list, tuple)):
        return [e if isinstance(e, str) else _fmt(e) for e in v]
    raise _Fail(node, f"wrong type for value; expected {want}; got {_type(v)}")


# ------------------------------------------------------------------ executor

class _State:
    def __init__(self, src: str, data, funcs):
        self.src, self.vars, self.out, self.funcs = src, [["$", data]], [], funcs

    def fail_prefix(self, node) -> str:
        pos = node.pos
        line_start = self.src.rfind("\n", 0, pos) + 1
        col = len(self.src[line_start:pos].encode())
        return f'template: :{self.src.count(chr(10), 0, pos) + 1}:{col}: executing "" at ' \
               f"<{node_str(node)}>: "

    def walk(self, dot, nodes):
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                v = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append(self.printable(node, v))
            elif isinstance(node, Control):
                if node.kind == "range":
                    self.range(dot, node)
                    continue
                mark = len(self.vars)
                v = self.pipeline(dot, node.pipe)
                if _truth(v):
                    self.walk(v if node.kind == "with" else dot, node.body)
                elif node.orelse is not None:
                    self.walk(dot, node.orelse)
                del self.vars[mark:]
            else:
                raise _Break() if node.kind == "break" else _Continue()

    def printable(self, node, v) -> str:
        if v is MISSING:
            return "<no value>"
        if callable(v) and not isinstance(v, (Mapping, list, tuple, str)):
            raise _Fail(node, f"can't print {node_str(node)} of type func")
        return _fmt(v)

    def range(self, dot, node):
        mark = len(self.vars)
        val = self.pipeline(dot, node.pipe)
        top, ndecl = len(self.vars), len(node.pipe.decl)
        if val is None or val is MISSING:
            items = []
        elif isinstance(val, Mapping):
            items = [(k, val[k]) for k in _sorted_keys(val)]
        elif isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            if ndecl > 1:
                raise _Fail(node.pipe, f"can't use {val} to iterate over more than one variable")
            items = [(i, i) for i in range(val)]
        else:
            raise _Fail(node.pipe, f"range can't iterate over {_fmt(val)}")
        for key, elem in items:
            if ndecl:
                self.vars[top - 1][1] = elem
            if ndecl > 1:
                self.vars[top - 2][1] = key
            try:
                self.walk(elem, node.body)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[top:]
        if not items and node.orelse is not None:
            self.walk(dot, node.orelse)
        del self.vars[mark:]

    def pipeline(self, dot, pipe):
        v = _NOFINAL
        for cmd in pipe.cmds:
            v = self.command(dot, cmd, v)
        for name in pipe.decl:
            if pipe.assign:
                self.lookup(pipe, name)[1] = v
            else:
                self.vars.append([name, v])
        return v

    def lookup(self, node, name):
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry
        raise _Fail(node, f"undefined variable: {name}")

    def not_a_function(self, node, args, final):
        if (args and len(args) > 1) or final is not _NOFINAL:
            raise _Fail(node, f"can't give argument to non-function {node_str(args[0] if args else node)}")

    def command(self, dot, cmd, final):
        first = cmd.args[0]
        if isinstance(first, Field):
            return self.fields(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, Chain):
            return self.chain(dot, first, cmd.args, final)
        if isinstance(first, Ident):
            return self.function(dot, first, cmd, cmd.args, final)
        if isinstance(first, Variable):
            return self.variable(dot, first, cmd.args, final)
        self.not_a_function(first, cmd.args, final)
        if isinstance(first, Pipe):
            return self.pipeline(dot, first)
        if first.kind == "nil":
            raise _Fail(first, "nil is not a command")
        return dot if first.kind == "dot" else first.value

    def arg(self, dot, n):
        if isinstance(n, Literal):
            return dot if n.kind == "dot" else n.value
        if isinstance(n, Field):
            return self.fields(dot, dot, n, n.idents, None, _NOFINAL)
        if isinstance(n, Variable):
            return self.variable(dot, n, None, _NOFINAL)
        if isinstance(n, Pipe):
            return self.pipeline(dot, n)
        if isinstance(n, Ident):
            return self.function(dot, n, n, None, _NOFINAL)
        return self.chain(dot, n, None, _NOFINAL)

    def variable(self, dot, node, args, final):
        value = self.lookup(node, node.idents[0])[1]
        if len(node.idents) == 1:
            self.not_a_function(node, args, final)
            return value
        return self.fields(dot, value, node, node.idents[1:], args, final)

    def chain(self, dot, node, args, final):
        if isinstance(node.node, Literal) and node.node.kind == "nil":
            raise _Fail(node, f"indirection through explicit nil in {node_str(node)}")
        return self.fields(dot, self.arg(dot, node.node), node, node.fields, args, final)

    def fields(self, dot, receiver, node, idents, args, final):
        for name in idents[:-1]:
            receiver = self.field(dot, name, node, None, _NOFINAL, receiver)
        return self.field(dot, idents[-1], node, args, final, receiver)

    def field(self, dot, name, node, args, final, receiver):
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise _Fail(node, f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _NOFINAL
        if isinstance(receiver, Mapping):
            value = receiver.get(name, MISSING) if isinstance(name, str) else MISSING
            if callable(value) and not isinstance(value, type):
                return self.call(dot, value, name, node, args, final)
            if has_args:
                raise _Fail(node, f"{name} is not a method but has arguments")
            return value
        if not isinstance(receiver, (str, int, float, list, tuple)) and not name.startswith("_"):
            value = getattr(receiver, name, MISSING)
            if callable(value):
                return self.call(dot, value, name, node, args, final)
            if value is not MISSING:
                if has_args:
                    raise _Fail(node, f"{name} has arguments but cannot be invoked as function")
                return value
        raise _Fail(node, f"can't evaluate field {name} in type {_type(receiver)}")

    def call(self, dot, fn, name, node, args, final):
        """Call a data callable (Go method) with the argument nodes and the piped value."""
        argv = [self.arg(dot, a) for a in (args[1:] if args else ())]
        if final is not _NOFINAL:
            argv.append(final)
        argv = [None if a is MISSING else a for a in argv]
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            try:
                sig.bind(*argv)
            except TypeError:
                want = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                           for p in sig.parameters.values())
                raise _Fail(node, f"wrong number of args for {name}: want {want} got {len(argv)}") \
                    from None
        try:
            return fn(*argv)
        except TemplateError:
            raise
        except Exception as e:
            raise _Fail(node, f"error calling {name}: {e}") from e

    def function(self, dot, ident, cmd, args, final):
        name = ident.name
        fn, params = self.funcs[name]
        argnodes = list(args[1:]) if args else []
        nargs = len(argnodes) + (final is not _NOFINAL)
        variadic = params[-1].startswith("*")
        nfixed = len(params) - variadic
        if variadic and nargs < nfixed:
            raise _Fail(ident, f"wrong number of args for {name}: want at least {nfixed} "
                               f"got {len(argnodes)}")
        if not variadic and nargs != nfixed:
            raise _Fail(ident, f"wrong number of args for {name}: want {nfixed} got {nargs}")
        if fn is None:  # and / or: short-circuit, return the deciding operand
            v = _NOFINAL
            for a in argnodes:
                v = self.arg(dot, a)
                if _truth(v) == (name == "or"):
                    return v
            return final if final is not _NOFINAL else v
        kinds = [params[min(k, len(params) - 1)].lstrip("*") for k in range(nargs)]
        vals = [_coerce(self.arg(dot, a), kinds[k], a) for k, a in enumerate(argnodes)]
        if final is not _NOFINAL:
            vals.append(_coerce(final, kinds[-1], cmd))
        try:
            return fn(*vals)
        except _FuncError as e:
            raise _Fail(cmd, f"error calling {name}: {e}") from None


# ------------------------------------------------------------------ public API

class Template:
    """A parsed template."""

    def __init__(self, text: str, nodes: list):
        self.text, self._nodes = text, nodes

    def execute(self, data: object, *, header: bool = False) -> str:
        """Render with `data` as dot (and $); raises TemplateError like Go's Execute.

        header=True uses Docker's HeaderFunctions (json, split, join, title, lower, upper
        and truncate return their first argument), for the title row of a `table` format.
        """
        state = _State(self.text, data, _HEADER_FUNCS if header else _FUNCS)
        try:
            state.walk(data, self._nodes)
        except _Fail as e:
            raise TemplateError(state.fail_prefix(e.node) + e.msg) from None
        except RecursionError:
            raise TemplateError("template: : exceeded maximum template depth") from None
        return "".join(state.out)


def parse(text: str) -> Template:
    """Parse `text`; raises TemplateError (e.g. 'template: :1: function "foo" not defined')."""
    try:
        return Template(text, parse_tree(text, FUNCTIONS))
    except RecursionError:
        raise TemplateError("template: :1: template is too deeply nested") from None


def render(text: str, data: object, *, header: bool = False) -> str:
    """parse(text).execute(data, header=header)."""
    return parse(text).execute(data, header=header)


def tabwrite(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3) -> str:
    """Go's text/tabwriter with padchar ' ' and no flags (Docker: NewWriter(out, 10, 1, 3, ' ', 0)).

    Tab-terminated cells; a column block (consecutive lines having that column) is as wide
    as its widest cell plus `padding`, at least `minwidth`; a line's last cell is not padded.
    `tabwidth` only matters for tab padding and is accepted for signature compatibility.
    """
    lines = [re.split("[\t\v]", line) for line in text.split("\n")]
    out: list[str] = []

    def write_lines(line0, line1, widths):
        for i in range(line0, line1):
            for j, cell in enumerate(lines[i]):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - len(cell)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(line0, line1, widths):
        column, this = len(widths), line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this, widths)
            line0, width = this, minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            format_block(line0, this, widths + [width])
            line0 = this
        write_lines(line0, line1, widths)

    format_block(0, len(lines), [])
    return "".join(out)
