"""Dockerfile word processing: quotes, escapes and ${VAR} expansion, with the escape
character chosen by the ``# escape=`` directive.

Rules (the Dockerfile reference's): outside quotes the escape character takes the next
character literally; single quotes are literal; inside double quotes the escape character
only escapes ``"``, ``$`` and itself. ``$VAR``, ``${VAR}``, ``${VAR:-word}``,
``${VAR-word}``, ``${VAR:+word}``, ``${VAR+word}``, ``${VAR:?msg}`` and ``${VAR?msg}``
expand against the given mapping; an unset variable expands to "".
"""

from __future__ import annotations


from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.used: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def word(self, stop: str = "") -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.pos += 1
                return "".join(out)
            if ch == "'":
                out.append(self.single_quote())
            elif ch == '"':
                out.append(self.double_quote())
            elif ch == "$":
                out.append(self.dollar())
            else:
                self.pos += 1
                if ch == self.escape:
                    nxt = self.take()
                    if not nxt:
                        break
                    ch = nxt
                out.append(ch)
        if stop:
            raise InvalidArgument(f"missing '{stop}' in substitution: {self.text}")
        return "".join(out)

    def single_quote(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument(f"unexpected end of statement while looking for matching single-quote: {self.text}")
        s = self.text[self.pos:end]
        self.pos = end + 1
        return s

    def double_quote(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument(
                    f"unexpected end of statement while looking for matching double-quote: {self.text}")
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.take()
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        return self.text[start:self.pos]

    def lookup(self, name: str) -> str | None:
        self.used.add(name)
        return self.env.get(name)

    def dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.lookup(name) or ""
        self.pos += 1
        name = self.name()
        if not name:
            raise InvalidArgument(f"bad substitution: {self.text}")
        ch = self.take()
        if ch == "}":
            return self.lookup(name) or ""
        colon = ch == ":"
        if colon:
            ch = self.take()
        if ch not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({ch}) in substitution: {self.text}")
        word = self.word(stop="}")
        value = self.lookup(name)
        present = bool(value) if colon else value is not None
        if ch == "-":
            return value if present and value is not None else word
        if ch == "+":
            return word if present else ""
        if not present or value is None:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Remove quotes and escapes from one word and expand its variables."""
    return _Lexer(word, env, escape).word()


def used_names(word: str, env: Mapping[str, str], escape: str = "\\") -> set[str]:
    """The variable names `word` refers to."""
    lx = _Lexer(word, env, escape)
    lx.word()
    return lx.used


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    in_word = False
    escaped = False
    for ch in text:
        if escaped:
            word.append(ch)
            escaped = False
            in_word = True
            continue
        if not quote and ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            continue
        in_word = True
        if ch == escape and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        word.append(ch)
    if in_word:
        words.append("".join(word))
    return words
