"""The Dockerfile word lexer: split words keeping quotes, and expand one word.

The rules follow the Dockerfile reference: outside quotes a backslash escapes the next
character; single quotes are literal; in double quotes a backslash escapes only ``"``,
``$`` and ``\\``; ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``, ``${VAR-word}``,
``${VAR+word}`` and ``${VAR:?msg}`` expand against the given environment.
"""

from __future__ import annotations

from ..errors import InvalidArgument

ESCAPE = "\\"


def split_words(rest: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words."""
    words: list[str] = []
    word = ""
    quote = ""
    in_word = False
    escaped = False
    for ch in rest:
        if escaped:
            word += ch
            escaped = False
            in_word = True
            continue
        if not quote and ch.isspace():
            if in_word:
                words.append(word)
                word, in_word = "", False
            continue
        in_word = True
        if ch == ESCAPE and quote != "'":
            escaped = True
            word += ch
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        word += ch
    if in_word:
        words.append(word)
    return words


def env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


class _Lexer:
    def __init__(self, text: str, env: dict[str, str]) -> None:
        self.text = text
        self.pos = 0
        self.env = env

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
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
                if ch == ESCAPE:
                    ch = self.next()
                    if not ch:
                        break
                out.append(ch)
        if stop:
            raise InvalidArgument(f"missing '{stop}' in substitution")
        return "".join(out)

    def single_quote(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching single-quote")
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
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == ESCAPE and self.peek() in ('"', "$", ESCAPE) and self.peek():
                ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        return self.text[start:self.pos]

    def dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.pos += 1
        name = self.name()
        if not name:
            raise InvalidArgument(f"bad substitution: {self.text}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({ch}) in substitution")
        word = self.word(stop="}")
        is_set = name in self.env
        value = self.env.get(name, "")
        present = bool(value) if colon else is_set
        if ch == "-":
            return value if present else word
        if ch == "+":
            return word if present else ""
        if not present:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value


def expand(word: str, env: dict[str, str]) -> str:
    """Remove quotes and escapes from one word and expand its variables."""
    return _Lexer(word, env).word()
