"""Parser and parse tree for `dockyard.cli.gotemplate` (internal).

Follows Go's text/template/parse over the tokens of `_gotemplate_lex`, with the same
error wording.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

from ._gotemplate_lex import (ASSIGN, BOOL, CHAR, CHARC, DECLARE, DOT, EOF, ERROR, FIELD, IDENT,
                              KW, LDELIM, LPAREN, NIL, NUMBER, PIPE, RAW, RDELIM, RPAREN, SPACE,
                              STRING, TEXT, VAR, _lex, _number, _unquote, go_quote)


class TemplateError(InvalidArgument):
    """A template failed to parse or execute; `str(err)` is Go's one-line message."""


_OPERANDS = (BOOL, CHARC, DOT, FIELD, IDENT, NUMBER, NIL, RAW, STRING, VAR, LPAREN)


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
