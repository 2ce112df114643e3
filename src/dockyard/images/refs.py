"""Docker image references: parsing, normalisation and the familiar (short) form.

Implements the grammar of Docker's reference package::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*
    domain           := host [":" port]
    path-component   := [a-z0-9]+ (separator [a-z0-9]+)*     separator := [_.] | "__" | "-"+
    tag              := [\\w][\\w.-]{0,127}
    digest           := algorithm ":" hex{32,}

and its normalisation: no domain means ``docker.io``; a one-component path on
``docker.io`` gets ``library/``; ``index.docker.io`` is ``docker.io``.
"""

from __future__ import annotations

from .._record import dataclass
from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE = rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$"
_HEX = frozenset("0123456789abcdef")
_ALNUM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_TAG_REST = _TAG_FIRST | frozenset(".-")
_DOMAIN_EDGE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DOMAIN_CHARS = _DOMAIN_EDGE | frozenset("-")


def _reference_re() -> re.Pattern[str]:
    """The full grammar, compiled on first use (~1.5 ms: not on `run busybox`'s path)."""
    global _REFERENCE_RE
    if _REFERENCE_RE is None:
        import re  # only for references outside the plain grammar: `run busybox` does not load it

        _REFERENCE_RE = re.compile(_REFERENCE, re.ASCII)
    return _REFERENCE_RE


_REFERENCE_RE: re.Pattern[str] | None = None


def _is_id(s: str) -> bool:
    return len(s) == 64 and _HEX.issuperset(s)


def _is_tag(tag: str) -> bool:
    """`[\\w][\\w.-]{0,127}` (ASCII)."""
    return 0 < len(tag) <= 128 and tag[0] in _TAG_FIRST and _TAG_REST.issuperset(tag)


def _is_path_component(c: str) -> bool:
    """`[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`."""
    if not c or c[0] not in _ALNUM_CHARS or c[-1] not in _ALNUM_CHARS:
        return False
    sep = ""
    for ch in c:
        if ch in _ALNUM_CHARS:
            if sep and sep not in (".", "_", "__") and sep.strip("-"):
                return False
            sep = ""
        elif ch in "._-":
            sep += ch
        else:
            return False
    return True


def _is_domain(d: str) -> bool:
    """`host[:port]` with host `label(.label)*`, label `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
    (no IPv6 literal: those take the full grammar)."""
    host, colon, port = d.partition(":")
    if colon and not (port.isascii() and port.isdigit()):
        return False
    return all(label and label[0] in _DOMAIN_EDGE and label[-1] in _DOMAIN_EDGE and _DOMAIN_CHARS.issuperset(label)
               for label in host.split("."))


def _parse_simple(s: str) -> tuple[str, str | None, str | None] | None:
    """(name, tag, digest) of `<domain>/<path>[:tag][@sha256:<hex>]`, the usual shapes,
    without the regex; None for anything else (other digest algorithms, IPv6 hosts, invalid
    input), which the full grammar handles."""
    digest = None
    if "@" in s:
        s, _, digest = s.partition("@")
        if not (digest.startswith("sha256:") and len(digest) == 71 and _HEX.issuperset(digest[7:])):
            return None
    slash = s.find("/")
    if slash <= 0 or "[" in s or not _is_domain(s[:slash]):
        return None
    name, tag = s, None
    colon = s.rfind(":")
    if colon > s.rfind("/"):
        name, tag = s[:colon], s[colon + 1:]
        if not _is_tag(tag):
            return None
    if not all(_is_path_component(c) for c in name[slash + 1:].split("/")):
        return None
    return name, tag, digest

_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

INVALID_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalised reference. `domain` + `path` are always set; tag and digest may be None."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """Docker's FamiliarName: ``busybox``, ``user/app``, ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            rest = self.path
            if rest.startswith(OFFICIAL_REPO_PREFIX) and "/" not in rest[len(OFFICIAL_REPO_PREFIX):]:
                rest = rest[len(OFFICIAL_REPO_PREFIX):]
            return rest
        return self.name

    def familiar(self) -> str:
        """Docker's FamiliarString: ``busybox:latest``, ``x@sha256:…``."""
        return self.familiar_name() + self._suffix()

    def __str__(self) -> str:
        return self.name + self._suffix()

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_tag(self, tag: str) -> "Reference":
        if not _is_tag(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.domain, self.path, None, digest)

    def name_only(self) -> "Reference":
        return Reference(self.domain, self.path)


def split_docker_domain(name: str) -> tuple[str, str]:
    """Split a name into (domain, remainder) the way Docker decides what is a registry host."""
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(s: str, default_tag: bool = True) -> Reference:
    """Parse and normalise `s` (Docker's ParseNormalizedNamed, plus TagNameOnly by default).

    Raises InvalidArgument with Docker's wording for anything that is not a reference.
    """
    if _is_id(s):
        raise InvalidArgument(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = split_docker_domain(s)
    sep = remainder.find(":")
    remote = remainder[:sep] if sep >= 0 else remainder
    if remote.lower() != remote:
        raise InvalidArgument(f"{INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    ref = _parse_strict(f"{domain}/{remainder}")
    if default_tag and ref.is_name_only:
        ref = Reference(ref.domain, ref.path, DEFAULT_TAG, None)
    return ref


def _parse_strict(s: str) -> Reference:
    """Docker's reference.Parse on an already-qualified string."""
    simple = _parse_simple(s)
    if simple is not None:
        name, tag, digest = simple
    else:
        m = _reference_re().match(s)
        if m is None:
            if not s:
                raise InvalidArgument("repository name must have at least one component")
            if _reference_re().match(s.lower()):
                raise InvalidArgument("repository name must be lowercase")
            raise InvalidArgument(INVALID_FORMAT)
        name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        validate_digest(digest)
    domain, _, path = name.partition("/")
    return Reference(domain, path, tag, digest)


def validate_digest(digest: str) -> None:
    """Check `algorithm:hex` for a known algorithm and the right length."""
    alg, _, hexpart = digest.partition(":")
    want = _DIGEST_LENGTHS.get(alg)
    if want is None:
        raise InvalidArgument("unsupported digest algorithm")
    if len(hexpart) != want:
        raise InvalidArgument("invalid checksum digest length")
    if hexpart.lower() != hexpart:
        raise InvalidArgument("invalid checksum digest format")


def parse_any(s: str) -> Reference | str:
    """Docker's ParseAnyReference: a 64-hex ID or ``sha256:<hex>`` gives the digest string
    ``sha256:<hex>``; anything else is parsed as a normalised name (tag defaulted)."""
    if _is_id(s):
        return "sha256:" + s
    if ":" in s and "/" not in s and "@" not in s:
        alg, _, hexpart = s.partition(":")
        if alg in _DIGEST_LENGTHS and len(hexpart) == _DIGEST_LENGTHS[alg] and not hexpart.strip(
            "0123456789abcdef"
        ):
            return s
    return parse_reference(s)


def looks_like_id(s: str, min_len: int = 12) -> bool:
    """True for a full or abbreviated image/container ID (``[sha256:]`` + 12..64 hex)."""
    hexpart = s[7:] if s.startswith("sha256:") else s
    return min_len <= len(hexpart) <= 64 and _HEX.issuperset(hexpart)


def is_hex_prefix(s: str) -> bool:
    """True for any ``[sha256:]<1..64 hex>`` string (an ID prefix of any length)."""
    hexpart = s[7:] if s.startswith("sha256:") else s
    return 0 < len(hexpart) <= 64 and _HEX.issuperset(hexpart)


def familiar_string(s: str) -> str:
    """Convenience: the familiar form of any valid reference string."""
    return parse_reference(s, default_tag=False).familiar()
