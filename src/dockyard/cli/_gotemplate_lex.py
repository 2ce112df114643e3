"""Lexer and literal syntax for `dockyard.cli.gotemplate` (internal).

Follows Go's text/template/parse lexer: the same tokens (spaces are tokens inside actions),
the same trim markers and comments, the same error wording; and strconv's quoting and
number syntax for the literals the parser decodes.
"""

from __future__ import annotations

import re

SPACES = " \t\r\n"
KEYWORDS = frozenset(("block", "break", "continue", "define", "else", "end", "if", "range",
                      "template", "with"))
# token types
TEXT, LDELIM, RDELIM, SPACE, FIELD, DOT, VAR, IDENT, KW = "text ld rd sp field dot var ident kw".split()
STRING, RAW, CHARC, NUMBER, BOOL, NIL, PIPE = "str raw charc num bool nil pipe".split()
LPAREN, RPAREN, DECLARE, ASSIGN, CHAR, EOF, ERROR = "( ) := = char eof error".split()
_NUM_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
                     r"|0[oObB][0-9_]*|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)")


# ------------------------------------------------------------------ strings

_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_ESC_BACK = {v: "\\" + k for k, v in _ESC.items()}


def go_quote(s: str, quote: str = '"', ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteRune with quote="'", QuoteToASCII with ascii_only)."""
    out = [quote]
    for ch in s:
        o = ord(ch)
        if ch == quote or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and not (ascii_only and o > 0x7E):
            out.append(ch)
        elif ch in _ESC_BACK:
            out.append(_ESC_BACK[ch])
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif 0xD800 <= o < 0xE000:
            out.append("\\ufffd")
        else:
            out.append("\\u%04x" % o if o < 0x10000 else "\\U%08x" % o)
    out.append(quote)
    return "".join(out)


def _unquote(text: str) -> str:
    """strconv.Unquote for "..." and `...` (and '...' bodies); ValueError if malformed."""
    q = text[0]
    if q == "`":
        return text[1:-1].replace("\r", "")
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            if c == q:
                raise ValueError
            out += c.encode("utf-8", "replace")
            i += 1
            continue
        e, i = body[i + 1:i + 2], i + 2
        if e in _ESC and e:
            out += _ESC[e].encode()
        elif e == q:
            out += q.encode()
        elif e in ("x", "u", "U"):
            k = {"x": 2, "u": 4, "U": 8}[e]
            h = body[i:i + k]
            if len(h) != k or not re.fullmatch("[0-9a-fA-F]+", h):
                raise ValueError
            v, i = int(h, 16), i + k
            if e == "x":
                out.append(v)
            elif v > 0x10FFFF or 0xD800 <= v < 0xE000:
                raise ValueError
            else:
                out += chr(v).encode()
        elif e and e in "01234567" and re.fullmatch("[0-7]{3}", body[i - 1:i + 2]):
            v = int(body[i - 1:i + 2], 8)
            if v > 255:
                raise ValueError
            out.append(v)
            i += 2
        else:
            raise ValueError
    return out.decode("utf-8", "replace")


def _number(text: str, typ: str):
    """Go's NumberNode + idealConstant: an int or a float (ValueError if malformed)."""
    if typ == CHARC:
        m = re.fullmatch(r"'\\(x[0-9a-fA-F]{2}|[0-7]{3})'", text)
        if m:
            return int(m.group(1)[1:], 16) if m.group(1)[0] == "x" else int(m.group(1), 8)
        s = _unquote(text)
        if len(s) != 1:
            raise ValueError(f"malformed character constant: {text}")
        return ord(s)
    t = text.replace("_", "")
    sign, body = (-1 if t[:1] == "-" else 1), t.lstrip("+-")
    if len(t) - len(body) > 1 or not body:
        raise ValueError
    if body[:2] in ("0x", "0X"):
        return sign * (float.fromhex(body) if re.search("[.pP]", body) else int(body, 16))
    if body[:2].lower() in ("0o", "0b"):
        return sign * int(body, 0)
    if not re.search("[.eE]", body):
        return sign * int(body, 8 if len(body) > 1 and body[0] == "0" else 10)
    return sign * float(body)


# -------------------------------------------------------------------- lexer

def _sp(src, i):
    return i < len(src) and src[i] in SPACES


def _rune(c):
    return "U+%04X %s" % (ord(c), go_quote(c, "'"))


def _lex(src: str) -> list:
    toks = []
    pos, trim, n = 0, False, len(src)
    while True:
        ld = src.find("{{", pos)
        text = src[pos:n if ld < 0 else ld]
        if trim:
            text = text.lstrip(SPACES)
        ltrim = ld >= 0 and src[ld + 2:ld + 3] == "-" and _sp(src, ld + 3)
        if ltrim:
            text = text.rstrip(SPACES)
        if text:
            toks.append((TEXT, text, pos))
        if ld < 0:
            break
        i = ld + (4 if ltrim else 2)
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0:
                toks.append((ERROR, "unclosed comment", ld))
                return toks
            j = end + 2
            if src.startswith("}}", j):
                pos, trim = j + 2, False
            elif _sp(src, j) and src.startswith("-}}", j + 1):
                pos, trim = j + 4, True
            else:
                toks.append((ERROR, "comment ends before closing delimiter", ld))
                return toks
            continue
        toks.append((LDELIM, "{{", ld))
        res = _lex_action(src, i, toks)
        if res is None:
            return toks
        pos, trim = res
    toks.append((EOF, "", n))
    return toks


def _lex_action(src, i, toks):
    n, depth = len(src), 0

    def fail(msg, at):
        toks.append((ERROR, msg, at))

    def terminated(j):
        return j >= n or src[j] in SPACES or src[j] in ".,|:()" or src.startswith("}}", j)

    while True:
        rtrim = _sp(src, i) and src.startswith("-}}", i + 1)
        if rtrim or src.startswith("}}", i):
            if depth:
                return fail("unclosed left paren", i)
            toks.append((RDELIM, "}}", i))
            return i + (4 if rtrim else 2), rtrim
        if i >= n:
            return fail("unclosed action", i)
        c = src[i]
        if c in SPACES:
            j = i
            while _sp(src, j):
                j += 1
            if src.startswith("-}}", j):
                j -= 1  # leave the space of " -}}" for the delimiter
            if j > i:
                toks.append((SPACE, src[i:j], i))
            i = j
        elif c in "=|()":
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    return fail("unexpected right paren", i)
            toks.append(({"=": ASSIGN, "|": PIPE, "(": LPAREN, ")": RPAREN}[c], c, i))
            i += 1
        elif c == ":":
            if not src.startswith(":=", i):
                return fail("expected :=", i)
            toks.append((DECLARE, ":=", i))
            i += 2
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" and j + 1 < n and src[j + 1] != "\n" else 1
            if j >= n or src[j] != c:
                return fail("unterminated quoted string" if c == '"'
                            else "unterminated character constant", i)
            toks.append((STRING if c == '"' else CHARC, src[i:j + 1], i))
            i = j + 1
        elif c == "`":
            j = src.find("`", i + 1)
            if j < 0:
                return fail("unterminated raw quoted string", i)
            toks.append((RAW, src[i:j + 1], i))
            i = j + 1
        elif c in "+-" or c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            j = _NUM_RE.match(src, i).end()
            if j < n and (src[j].isalnum() or src[j] == "_"):
                return fail("bad number syntax: %s" % go_quote(src[i:j + 1]), i)
            toks.append((NUMBER, src[i:max(j, i + 1)], i))
            i = max(j, i + 1)
        elif c in "$." or c.isalpha() or c == "_":
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            if not terminated(j):
                return fail("bad character " + _rune(src[j]), j)
            word = src[i:j]
            if c == "$":
                typ = VAR
            elif c == ".":
                typ = DOT if word == "." else FIELD
            elif word in KEYWORDS:
                typ = KW
            else:
                typ = {"true": BOOL, "false": BOOL, "nil": NIL}.get(word, IDENT)
            toks.append((typ, word, i))
            i = j
        elif c.isascii() and c.isprintable():
            toks.append((CHAR, c, i))
            i += 1
        else:
            return fail("unrecognized character in action: " + _rune(c), i)
