"""The little URL handling the registry client needs, without importing `urllib.parse`.

Registry URLs are `scheme://host[:port]/path[?query]`; Locations a registry sends back are
absolute URLs or absolute paths. Anything else (a relative reference, a URL without
`scheme://`) goes to `urllib.parse`, imported then.
"""

from __future__ import annotations

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-~")


def split(url: str) -> tuple[str, str, str]:
    """(scheme, netloc, path with its query, "/" when empty); the fragment is dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.isalpha():
        from urllib.parse import urlsplit

        p = urlsplit(url)
        path = p.path or "/"
        return p.scheme, p.netloc, path + ("?" + p.query if p.query else "")
    rest = rest.partition("#")[0]
    cut = len(rest)
    for c in "/?":
        i = rest.find(c)
        if 0 <= i < cut:
            cut = i
    netloc, path = rest[:cut], rest[cut:]
    if path.startswith("?"):
        path = "/" + path
    return scheme.lower(), netloc, path or "/"


def netloc(url: str) -> str:
    return split(url)[1]


def scheme(url: str) -> str:
    return split(url)[0]


def join(base: str, ref: str) -> str:
    """`urljoin(base, ref)` for what registries send: absolute URLs and absolute paths."""
    if ref.startswith(("http://", "https://")):
        return ref
    if ref.startswith("//"):
        return split(base)[0] + ":" + ref
    if ref.startswith("/"):
        s, n, _path = split(base)
        return f"{s}://{n}{ref}"
    from urllib.parse import urljoin

    return urljoin(base, ref)


def quote(s: str, safe: str = "/") -> str:
    """`urllib.parse.quote`: UTF-8 bytes other than unreserved and `safe` ones as %XX."""
    if all(c in _SAFE or c in safe for c in s):
        return s
    return "".join(c if (c in _SAFE or c in safe) and c.isascii() else
                   "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in s)
