"""Dockerfile → typed instructions and stages, with BuildKit's own parser (`dockerfile`).

The parser splits lines, continuations, heredocs and JSON forms; this module adds what it
leaves to the builder: the ``# escape=`` directive's character (for word expansion), the
grouping into stages (``FROM … AS name``; ARGs before the first FROM are the meta args),
and validation with the line number of the offending instruction.
"""

from __future__ import annotations

import re

import dockerfile as _bk

from .._record import dataclass, field
from ..errors import InvalidArgument

#: instruction -> flags it accepts (values are checked by the builder)
KNOWN: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"network", "mount", "security"}),
    "CMD": frozenset(), "ENTRYPOINT": frozenset(), "ENV": frozenset(), "ARG": frozenset(),
    "LABEL": frozenset(), "EXPOSE": frozenset(), "WORKDIR": frozenset(), "USER": frozenset(),
    "COPY": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "ADD": frozenset({"chown", "chmod", "checksum", "link", "keep-git-dir", "exclude"}),
    "VOLUME": frozenset(), "HEALTHCHECK": frozenset({"interval", "timeout", "start-period",
                                                    "start-interval", "retries"}),
    "SHELL": frozenset(), "STOPSIGNAL": frozenset(), "ONBUILD": frozenset(), "MAINTAINER": frozenset(),
}
_NEEDS_ARGS = ("FROM", "RUN", "CMD", "ENTRYPOINT", "ENV", "ARG", "LABEL", "EXPOSE", "WORKDIR",
               "USER", "COPY", "ADD", "VOLUME", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD",
               "MAINTAINER")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str


@dataclass(frozen=True)
class Instruction:
    cmd: str                      # upper case: "RUN"
    args: tuple[str, ...]         # as the parser gives them (quotes kept outside JSON form)
    flags: tuple[tuple[str, str], ...]  # (name, value) in order
    json: bool
    original: str
    line: int
    sub_cmd: str = ""             # ONBUILD's instruction
    heredocs: tuple[Heredoc, ...] = ()

    def flag(self, name: str) -> str | None:
        for k, v in self.flags:
            if k == name:
                return v
        return None

    @property
    def text(self) -> str:
        """The instruction with its arguments, as Docker prints it in `Step n/m : …`."""
        return self.original.split("\n", 1)[0] if not self.heredocs else self.original.rstrip("\n")


@dataclass(frozen=True)
class Stage:
    index: int
    name: str                     # lower-cased AS name, or ""
    base: str                     # FROM's image word, unexpanded
    from_instr: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    escape: str
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...] = field(default_factory=tuple)

    def stage_index(self, name_or_index: str) -> int | None:
        for st in self.stages:
            if st.name and st.name == name_or_index.lower():
                return st.index
        if name_or_index.isdigit() and int(name_or_index) < len(self.stages):
            return int(name_or_index)
        return None


def escape_directive(text: str) -> str:
    """The ``# escape=`` character of a Dockerfile (default backslash)."""
    for line in text.splitlines():
        s = line.strip()
        if not s:
            break
        m = _DIRECTIVE.match(s)
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise InvalidArgument(f"invalid escape token '{m.group(2)}' does not match ` or \\")
            return m.group(2)
    return "\\"


def _error_line(text: str) -> int:
    lines = text.splitlines(keepends=True)
    for n in range(1, len(lines) + 1):
        try:
            _bk.parse_string("".join(lines[:n]))
        except _bk.GoParseError as e:
            if "no instructions" not in str(e):
                return n
    return len(lines)


def _split_flag(raw: str, instr: str, line: int) -> tuple[str, str]:
    if not raw.startswith("--"):
        raise InvalidArgument(f"dockerfile parse error line {line}: invalid flag {raw!r} for {instr}")
    name, sep, value = raw[2:].partition("=")
    if not sep and name not in ("link", "parents", "keep-git-dir"):
        raise InvalidArgument(f"dockerfile parse error line {line}: missing a value on flag: --{name}")
    return name, value if sep else "true"


def instruction_of(c: "_bk.Command") -> Instruction:
    cmd = c.cmd.upper()
    line = int(c.start_line)
    if cmd not in KNOWN:
        raise InvalidArgument(f"dockerfile parse error line {line}: unknown instruction: {c.cmd.upper()}")
    if cmd in _NEEDS_ARGS and not any(v.strip() for v in c.value) and cmd != "ONBUILD":
        raise InvalidArgument(f"dockerfile parse error line {line}: {cmd} requires at least one argument")
    flags = tuple(_split_flag(f, cmd, line) for f in c.flags)
    allowed = KNOWN[cmd]
    for name, _ in flags:
        if name not in allowed:
            raise InvalidArgument(f"dockerfile parse error line {line}: unknown flag: --{name}")
    if cmd in ("COPY", "ADD") and len(c.value) < 2:
        raise InvalidArgument(f"dockerfile parse error line {line}: {cmd} requires at least two arguments")
    if cmd == "ONBUILD":
        sub = (c.sub_cmd or "").upper()
        if not sub:
            raise InvalidArgument(f"dockerfile parse error line {line}: ONBUILD requires at least one argument")
        if sub in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"dockerfile parse error line {line}: {sub} isn't allowed as an ONBUILD trigger")
    heredocs = tuple(Heredoc(h.name, h.content) for h in (c.heredocs or ()))
    return Instruction(cmd=cmd, args=tuple(c.value), flags=flags, json=bool(c.json),
                       original=c.original, line=line, sub_cmd=(c.sub_cmd or "").upper(),
                       heredocs=heredocs)


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text; InvalidArgument names the line of any error."""
    escape = escape_directive(text)
    try:
        commands = _bk.parse_string(text)
    except _bk.GoParseError as e:
        msg = str(e)
        if "no instructions" in msg:
            raise InvalidArgument("the Dockerfile cannot be empty") from None
        raise InvalidArgument(f"dockerfile parse error line {_error_line(text)}: {msg}") from None
    meta: list[Instruction] = []
    stages: list[Stage] = []
    cur: list[Instruction] = []
    head: Instruction | None = None
    names: set[str] = set()

    def close() -> None:
        if head is None:
            return
        words = head.args
        name = ""
        if len(words) >= 3 and words[1].lower() == "as":
            name = words[2].lower()
            if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
                raise InvalidArgument(f"dockerfile parse error line {head.line}: invalid name for build stage: "
                                      f"{words[2]!r}, name can't start with a number or contain symbols")
            if name in names:
                raise InvalidArgument(f"dockerfile parse error line {head.line}: duplicate name {words[2]!r}")
            names.add(name)
        elif len(words) != 1:
            raise InvalidArgument(f"dockerfile parse error line {head.line}: FROM requires either one or three "
                                  "arguments")
        stages.append(Stage(len(stages), name, words[0], head, tuple(cur)))

    for c in commands:
        ins = instruction_of(c)
        if ins.cmd == "FROM":
            close()
            head, cur = ins, []
        elif head is None:
            if ins.cmd != "ARG":
                raise InvalidArgument(f"dockerfile parse error line {ins.line}: no build stage in current context "
                                      f"({ins.cmd} before the first FROM)")
            meta.append(ins)
        else:
            cur.append(ins)
    close()
    if not stages:
        raise InvalidArgument("Dockerfile contains no FROM instruction")
    return Dockerfile(escape, tuple(meta), tuple(stages))


def key_values(ins: Instruction, escape: str) -> list[tuple[str, str]]:
    """ENV / LABEL / ARG words as raw (key, value) pairs (values still unexpanded).

    The parser already splits both forms (``ENV A=b C=d`` and ``ENV A b c``) into
    alternating keys and values; ARG gives ``NAME[=default]`` words."""
    if ins.cmd == "ARG":
        out = []
        for word in ins.args:
            k, sep, v = word.partition("=")
            out.append((k, v if sep else "\0"))  # "\0": no default
        return out
    args = list(ins.args)
    if len(args) % 2:
        raise InvalidArgument(f"dockerfile parse error line {ins.line}: {ins.cmd} requires key and value pairs")
    return [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
