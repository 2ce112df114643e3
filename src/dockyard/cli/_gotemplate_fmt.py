"""Go values and their printing for `dockyard.cli.gotemplate` (internal).

Go's view of JSON-shaped Python data (type names, truth, the missing-key value), fmt's
verbs (%v, Sprint, Sprintf) and encoding/json's compact form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ._gotemplate_lex import go_quote


class _Missing:
    __slots__ = ()

    def __repr__(self):
        return "<no value>"


MISSING = _Missing()   # Go's invalid reflect.Value (missing map key)


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
