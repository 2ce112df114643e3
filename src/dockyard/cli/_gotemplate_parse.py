"""Lexer, parser and parse tree for `dockyard.cli.gotemplate` (internal).

Follows Go's text/template/parse: the same tokens (spaces are tokens inside
actions), the same trim markers and comments, the same error wording.
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """A template failed to parse or execute; `str(err)` is Go's one-line message."""


SPACES = " \t\r\n"
KEYWORDS = frozenset(("block", "break", "continue", "define", "else", "end", "if", "range",
                      "template", "with"))
# token types
TEXT, LDELIM, RDELIM, SPACE, FIELD, DOT, VAR, IDENT, KW = "text ld rd sp field dot var ident kw".split()
STRING, RAW, CHARC, NUMBER, BOOL, NIL, PIPE = "str raw charc num bool nil pipe".split()
LPAREN, RPAREN, DECLARE, ASSIGN, CHAR, EOF, ERROR = "( ) := = char eof error".split()
_OPERANDS = (BOOL, CHARC, DOT, FIELD, IDENT, NUMBER, NIL, RAW, STRING, VAR, LPAREN)
_NUM_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
                     r"|0[oObB][0-9_]*|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)")


# ---------------------------------------------------------------- parse tree

class Node:
    """A parse-tree node: `pos` is its offset in the source (for error locations)."""
    __slots__ = ("pos",)

    def __init__(self, pos, *values):
        self.pos = pos
        for name, value in zip(self.__slots__, values):
            setattr(self, name, value)


def _node(name: str, fields: str, doc: str):
    return type(name, (Node,), {"__slots__": tuple(fields.split()), "__doc__": doc})


Text = _node("Text", "text", "Literal text outside actions.")
Action = _node("Action", "pipe", "{{pipeline}}: printed unless it declares variables.")
Control = _node("Control", "kind pipe body orelse", "if/with/range (kind) with node lists.")
Jump = _node("Jump", "kind", "{{break}} / {{continue}} (also the end/else markers).")
Pipe = _node("Pipe", "decl assign cmds", "[$x := | $x =] cmd | cmd ...")
Command = _node("Command", "args", "One pipeline stage: operand [args...].")
Field = _node("Field", "idents", ".A.B as ('A', 'B').")
Variable = _node("Variable", "idents", "$x.A as ('$x', 'A').")
Chain = _node("Chain", "node fields", "(pipe).A.B")
Ident = _node("Ident", "name", "A function name.")
Literal = _node("Literal", "kind value text", "dot/nil/bool/number/string; text = source.")


def node_str(n) -> str:
    """The node as Go's Node.String() would spell it (used in error contexts)."""
    if isinstance(n, Field):
        return "." + ".".join(n.idents)
    if isinstance(n, Variable):
        return ".".join(n.idents)
    if isinstance(n, Chain):
        base = node_str(n.node)
        return (f"({base})" if isinstance(n.node, Pipe) else base) + "." + ".".join(n.fields)
    if isinstance(n, Ident):
        return n.name
    if isinstance(n, Literal):
        return n.text
    if isinstance(n, Command):
        return " ".join(f"({node_str(a)})" if isinstance(a, Pipe) else node_str(a) for a in n.args)
    if isinstance(n, Pipe):
        decl = (", ".join(n.decl) + (" = " if n.assign else " := ")) if n.decl else ""
        return decl + " | ".join(node_str(c) for c in n.cmds)
    if isinstance(n, Action):
        return "{{" + node_str(n.pipe) + "}}"
    return "{{%s}}" % getattr(n, "kind", "")


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


# ------------------------------------------------------------------- parser

_END, _ELSE = Jump(0, "end"), Jump(0, "else")


def _tok_str(t) -> str:
    typ, val = t[0], t[1]
    if typ == EOF:
        return "EOF"
    if typ in (KW, DOT, NIL):
        return f"<{val}>"
    return go_quote(val[:10]) + "..." if len(val) > 10 else go_quote(val)


class Parser:
    def __init__(self, src: str, funcs):
        self.src, self.funcs = src, funcs
        self.toks, self.i, self.last = _lex(src), 0, None
        self.vars, self.range_depth, self.action_pos = ["$"], 0, None

    def line(self, pos) -> int:
        return self.src.count("\n", 0, pos) + 1

    def errorf(self, msg, pos=None):
        if pos is None:
            pos = self.last[2] if self.last else 0
        raise TemplateError(f"template: :{self.line(pos)}: {msg}")

    def next(self):
        t = self.toks[min(self.i, len(self.toks) - 1)]
        if t[0] == ERROR:
            msg = t[1]
            if self.action_pos is not None and self.line(self.action_pos) != self.line(t[2]):
                extra = f" in action started at :{self.line(self.action_pos)}"
                msg += extra[len(" in action"):] if msg.endswith(" action") else extra
            self.errorf(msg, t[2])
        self.i += 1
        self.last = t
        return t

    def backup(self):
        self.i -= 1

    def peek(self):
        t = self.next()
        self.backup()
        return t

    def next_non_space(self):
        t = self.next()
        while t[0] == SPACE:
            t = self.next()
        return t

    def peek_non_space(self):
        t = self.next_non_space()
        self.backup()
        return t

    def unexpected(self, t, context):
        self.errorf(f"unexpected {_tok_str(t)} in {context}")

    def parse(self) -> list:
        nodes = []
        while self.peek()[0] != EOF:
            n = self.text_or_action()
            if n is _END or n is _ELSE:
                self.errorf(f"unexpected {{{{{n.kind}}}}}")
            nodes.append(n)
        return nodes

    def text_or_action(self):
        t = self.next_non_space()
        if t[0] == TEXT:
            return Text(t[2], t[1])
        if t[0] == LDELIM:
            self.action_pos = t[2]
            try:
                return self.action()
            finally:
                self.action_pos = None
        self.unexpected(t, "input")

    def action(self):
        t = self.next_non_space()
        if t[0] == KW:
            word = t[1]
            if word == "end":
                self.expect(RDELIM, "end")
                return _END
            if word == "else":
                p = self.peek_non_space()
                if not (p[0] == KW and p[1] in ("if", "with")):
                    self.expect(RDELIM, "else")
                return _ELSE
            if word in ("if", "with", "range"):
                return self.control(word, t[2])
            if word in ("break", "continue"):
                t2 = self.next_non_space()
                if t2[0] != RDELIM:
                    self.unexpected(t2, "{{%s}}" % word)
                if not self.range_depth:
                    self.errorf("{{%s}} outside {{range}}" % word)
                return Jump(t[2], word)
            self.errorf("{{%s}} is not supported" % word)
        self.backup()
        return Action(t[2], self.pipeline("command", RDELIM))

    def expect(self, typ, context):
        t = self.next_non_space()
        if t[0] != typ:
            self.unexpected(t, context)
        return t

    def control(self, kind, pos):
        nvars = len(self.vars)
        pipe = self.pipeline(kind, RDELIM)
        self.range_depth += kind == "range"
        body, nxt = self.item_list()
        self.range_depth -= kind == "range"
        orelse = None
        if nxt is _ELSE:
            p = self.peek()
            if kind in ("if", "with") and p[0] == KW and p[1] == kind:
                self.next()
                orelse = [self.control(kind, p[2])]
            else:
                orelse, nxt = self.item_list()
                if nxt is not _END:
                    self.errorf("expected end; found {{else}}")
        del self.vars[nvars:]
        return Control(pos, kind, pipe, body, orelse)

    def item_list(self):
        nodes = []
        while self.peek_non_space()[0] != EOF:
            n = self.text_or_action()
            if n is _END or n is _ELSE:
                return nodes, n
            nodes.append(n)
        self.errorf("unexpected EOF")

    def pipeline(self, context, end):
        pos = self.peek_non_space()[2]
        decl, assign = [], False
        while self.peek_non_space()[0] == VAR:
            save = self.i
            v = self.next()[1]
            nxt = self.peek_non_space()
            if nxt[0] in (ASSIGN, DECLARE):
                self.next_non_space()
                assign = nxt[0] == ASSIGN
                if assign and v not in self.vars:
                    self.errorf(f'undefined variable "{v}"')
            elif nxt[0] == CHAR and nxt[1] == ",":
                self.next_non_space()
                if context != "range" or decl:
                    self.errorf(f"too many declarations in {context}")
                if self.peek_non_space()[0] not in (VAR, RDELIM, RPAREN):
                    self.errorf("range can only initialize variables")
            else:
                self.i = save
                break
            decl.append(v)
            self.vars.append(v)
            if nxt[0] != CHAR:
                break
        cmds = []
        while True:
            t = self.next_non_space()
            if t[0] == end:
                if not cmds:
                    self.errorf(f"missing value for {context}")
                for k, c in enumerate(cmds[1:]):
                    if isinstance(c.args[0], Literal):
                        self.errorf(f"non executable command in pipeline stage {k + 2}")
                return Pipe(pos, decl, assign, cmds)
            if t[0] not in _OPERANDS:
                self.unexpected(t, context)
            self.backup()
            cmds.append(self.command())

    def command(self):
        pos, args = self.peek_non_space()[2], []
        while True:
            self.peek_non_space()
            op = self.operand()
            if op is not None:
                args.append(op)
            t = self.next()
            if t[0] == SPACE:
                continue
            if t[0] in (RDELIM, RPAREN):
                self.backup()
            elif t[0] != PIPE:
                self.unexpected(t, "operand")
            break
        if not args:
            self.errorf("empty command")
        return Command(pos, args)

    def operand(self):
        node = self.term()
        if node is None or self.peek()[0] != FIELD:
            return node
        pos, fields = self.peek()[2], []
        while self.peek()[0] == FIELD:
            fields.append(self.next()[1][1:])
        if isinstance(node, Field):
            return Field(pos, node.idents + tuple(fields))
        if isinstance(node, Variable):
            return Variable(pos, node.idents + tuple(fields))
        if isinstance(node, Literal):
            self.errorf(f"unexpected . after term {go_quote(node.text)}")
        return Chain(pos, node, tuple(fields))

    def term(self):
        typ, val, pos = self.next_non_space()
        if typ == IDENT:
            if val not in self.funcs:
                self.errorf(f"function {go_quote(val)} not defined")
            return Ident(pos, val)
        if typ == DOT:
            return Literal(pos, "dot", None, ".")
        if typ == NIL:
            return Literal(pos, "nil", None, "nil")
        if typ == VAR:
            if val not in self.vars:
                self.errorf(f'undefined variable "{val}"')
            return Variable(pos, (val,))
        if typ == FIELD:
            return Field(pos, (val[1:],))
        if typ == BOOL:
            return Literal(pos, "bool", val == "true", val)
        if typ == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        try:
            if typ in (NUMBER, CHARC):
                return Literal(pos, "number", _number(val, typ), val)
            if typ in (STRING, RAW):
                return Literal(pos, "string", _unquote(val), val)
        except (ValueError, OverflowError) as e:
            msg = str(e)
            if not msg.startswith("malformed"):
                msg = "illegal number syntax: " + go_quote(val) if typ == NUMBER else "invalid syntax"
            self.errorf(msg)
        self.backup()
        return None


def parse_tree(src: str, funcs) -> list:
    return Parser(src, funcs).parse()
