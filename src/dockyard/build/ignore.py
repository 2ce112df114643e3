""".dockerignore: Docker's pattern rules.

Each line is a pattern (``#`` comments and blank lines skipped), cleaned like a path, a
leading ``/`` dropped. ``*`` and ``?`` do not cross ``/``, ``**`` matches any number of
directories, ``[...]`` is a class, the escape character is literal-making. A pattern that
matches a parent directory matches everything below it. ``!pattern`` re-includes. The
last pattern that matches a path decides.
"""

from __future__ import annotations

import posixpath
import re

from .._record import dataclass
from ..errors import InvalidArgument

TYPE_CHECKING = False

if TYPE_CHECKING:
    from .context import SourceRoot


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # "!pattern": re-include
    regex: "re.Pattern[str]"
    depth: int       # number of path components in the pattern


def _clean(p: str) -> str:
    p = posixpath.normpath(p.strip())
    if p.startswith("/"):
        p = p.lstrip("/") or "."
    return p


def _to_regex(pattern: str) -> "re.Pattern[str]":
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern[i:i + 2] == "**":
                i += 2
                if pattern[i:i + 1] == "/":
                    out.append("(.*/)?")
                    i += 1
                elif i >= n:
                    out.append(".*")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"syntax error in .dockerignore pattern: {pattern!r}")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def parse(text: str) -> tuple[Pattern, ...]:
    out: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise InvalidArgument("illegal exclusion pattern: \"!\"")
        p = _clean(line)
        out.append(Pattern(p, exclusion, _to_regex(p), len(p.split("/"))))
    return tuple(out)


class Matcher:
    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        self.patterns = patterns
        self.has_exclusions = any(p.exclusion for p in patterns)

    def excluded(self, rel: str) -> bool:
        """Whether context path `rel` ("dir/file") is ignored."""
        rel = posixpath.normpath(rel)
        parts = rel.split("/")
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # cannot change the outcome
            hit = bool(p.regex.match(rel))
            if not hit and len(parts) > 1 and p.depth < len(parts):
                hit = bool(p.regex.match("/".join(parts[:p.depth])))
            if hit:
                matched = not p.exclusion
        return matched

    def may_include_below(self, rel: str) -> bool:
        """Whether an excluded directory could still hold re-included paths."""
        return self.has_exclusions


def with_excludes(root: "SourceRoot", pats: list[str], srcs: list[str]) -> "SourceRoot":
    """COPY --exclude=PATTERN: .dockerignore-style patterns, relative to the context and
    to each source directory, added to `root`'s rules."""
    if not pats:
        return root
    from .._record import replace

    lines: list[str] = []
    for p in pats:
        lines.append(p)
        lines += [f"{s.strip('/')}/{p}" for s in srcs if s.strip("/") not in ("", ".")]
    extra = parse("\n".join(lines))
    base = root.matcher.patterns if root.matcher else ()
    return replace(root, matcher=Matcher(base + extra))
