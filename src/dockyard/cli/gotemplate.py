"""Go text/template, the subset Docker users write in `--format`, with docker/cli's functions.

    render("{{.State.Pid}}", inspect_data)          -> "4242"
    parse("{{join .Args \\",\\"}}").execute(data)      -> "a,b"

Data is JSON-shaped Python (dict, list, str, int, float, bool, None).  A callable found
as a dict value (or a public attribute of a non-JSON object) acts like a Go method:
`{{.Label "com.example"}}` calls it with the arguments (and the piped value, if any).
A missing map key is Go's "invalid value": it prints `<no value>`; an explicit None
prints `<nil>` (a nil pointer in Docker's typed structs).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ._gotemplate_fmt import MISSING, _fmt, _sorted_keys, _truth, _type
from ._gotemplate_funcs import _FUNCS, _HEADER_FUNCS, FUNCTIONS, _FuncError, _kind
from ._gotemplate_parse import (Action, Chain, Control, Field, Ident, Literal, Pipe, TemplateError,
                                Text, Variable, node_str, parse_tree)

__all__ = ["Template", "TemplateError", "parse", "render"]


_NOFINAL = object()    # no piped value (Go's missingVal)


class _Fail(Exception):
    def __init__(self, node, msg):
        super().__init__(msg)
        self.node, self.msg = node, msg


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


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
