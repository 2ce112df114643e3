"""Docker reference parsing and normalisation (dockyard.images.refs)."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images.refs import (
    Reference,
    familiar_string,
    looks_like_id,
    parse_any,
    parse_reference,
)

HEX = "a" * 64


@pytest.mark.parametrize(
    "given, domain, path, tag, digest",
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("user/app", "docker.io", "user/app", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("docker.io/library/busybox:x", "docker.io", "library/busybox", "x", None),
        ("localhost:5000/x:1", "localhost:5000", "x", "1", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("quay.io/a/b/c", "quay.io", "a/b/c", "latest", None),
        ("Host.Example:5000/a", "Host.Example:5000", "a", "latest", None),
        ("[::1]:5000/a", "[::1]:5000", "a", "latest", None),
        (f"host:5000/a/b@sha256:{HEX}", "host:5000", "a/b", None, f"sha256:{HEX}"),
        (f"busybox:1@sha256:{HEX}", "docker.io", "library/busybox", "1", f"sha256:{HEX}"),
        ("a__b.c-d---e", "docker.io", "library/a__b.c-d---e", "latest", None),
    ],
)
def test_parse_valid(given: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    assert parse_reference(given) == Reference(domain, path, tag, digest)


def test_parse_without_default_tag() -> None:
    ref = parse_reference("busybox", default_tag=False)
    assert ref.tag is None and ref.is_name_only
    assert ref.familiar() == "busybox"


@pytest.mark.parametrize(
    "given, message",
    [
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("user/App:1", "invalid reference format: repository name (user/App) must be lowercase"),
        ("", "invalid reference format"),
        ("a:b:c", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        ("-busybox", "invalid reference format"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox:" + "t" * 129, "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("a_-b", "invalid reference format"),
        ("busybox:lat\u00e9st", "invalid reference format"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
        ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
        ("a/" + "b" * 260, "repository name must not be more than 255 characters"),
    ],
)
def test_parse_invalid(given: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_reference(given)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    "given, familiar, familiar_name, name",
    [
        ("busybox", "busybox:latest", "busybox", "docker.io/library/busybox"),
        ("docker.io/library/busybox:1", "busybox:1", "busybox", "docker.io/library/busybox"),
        ("user/app:v2", "user/app:v2", "user/app", "docker.io/user/app"),
        ("docker.io/library/a/b", "library/a/b:latest", "library/a/b", "docker.io/library/a/b"),
        ("localhost:5000/x:1", "localhost:5000/x:1", "localhost:5000/x", "localhost:5000/x"),
        (f"busybox@sha256:{HEX}", f"busybox@sha256:{HEX}", "busybox", "docker.io/library/busybox"),
    ],
)
def test_familiar_forms(given: str, familiar: str, familiar_name: str, name: str) -> None:
    ref = parse_reference(given)
    assert ref.familiar() == familiar
    assert ref.familiar_name() == familiar_name
    assert ref.name == name


def test_str_is_fully_qualified() -> None:
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"
    assert familiar_string("docker.io/library/busybox") == "busybox"


def test_parse_any() -> None:
    assert parse_any(HEX) == f"sha256:{HEX}"
    assert parse_any(f"sha256:{HEX}") == f"sha256:{HEX}"
    assert parse_any("3f57d9401f8d") == parse_reference("3f57d9401f8d")
    assert parse_any("sha256:3f57") == Reference("docker.io", "library/sha256", "3f57")


@pytest.mark.parametrize(
    "given, expected",
    [
        ("3f57d9401f8d", True),
        ("sha256:3f57d9401f8d", True),
        (HEX, True),
        ("3f57d9401f8", False),
        ("3F57D9401F8D", False),
        ("3f57d9401f8z", False),
        ("a" * 65, False),
        ("busybox", False),
    ],
)
def test_looks_like_id(given: str, expected: bool) -> None:
    assert looks_like_id(given) is expected


def test_with_tag_and_digest() -> None:
    ref = parse_reference("busybox:1")
    assert ref.with_tag("2").familiar() == "busybox:2"
    assert ref.with_digest(f"sha256:{HEX}").familiar() == f"busybox@sha256:{HEX}"
    with pytest.raises(InvalidArgument):
        ref.with_tag("bad tag")


def test_fast_path_agrees_with_the_grammar() -> None:
    """refs._parse_simple (no regex, for <domain>/<path>[:tag]) never disagrees with the full
    reference grammar: same groups where it answers, and it answers for the usual shapes."""
    import random
    import re

    from dockyard.images import refs

    full = re.compile(refs._REFERENCE, re.ASCII)
    rnd = random.Random(1234)
    alphabet = "ab9._-_/:A@"
    samples = ["docker.io/library/busybox", "docker.io/library/busybox:latest", "docker.io/a/b__c:v1.2-x",
               "docker.io/a--b/c", "docker.io/a..b", "docker.io/-a", "docker.io/a-", "docker.io/a:", "docker.io/a:.x",
               "docker.io/a:" + "x" * 128, "docker.io/a:" + "x" * 129, "docker.io/A", "docker.io/a___b", "docker.io//a"]
    samples += ["docker.io/" + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(5000)]
    samples += ["127.0.0.1:5000/a/b:1", "localhost:5000/x", "my-reg.example.com/team/app:v2", "a-/b", "-a/b", "a.-b/c",
                "host:/x", "host:12a/x", "[::1]:5000/x", "UPPER.example/x", "a..b/c", "h:5/A",
                "h/x@sha256:" + "a" * 64, "h/x:t@sha256:" + "0" * 64, "h/x@sha256:" + "A" * 64, "h/x@sha256:" + "a" * 63,
                "h/x@sha512:" + "a" * 128, "h/x@@sha256:" + "a" * 64]
    dom_alpha = "ab9.-:A"
    samples += ["".join(rnd.choice(dom_alpha) for _ in range(rnd.randint(1, 8))) + "/"
                + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 10))) for _ in range(5000)]
    answered = 0
    for s in samples:
        fast = refs._parse_simple(s)
        m = full.match(s)
        if fast is not None:
            answered += 1
            assert m is not None and (m.group(1), m.group(2), m.group(3)) == fast, s
        elif m is not None and (m.group(3) is None or re.fullmatch("sha256:[0-9a-f]{64}", m.group(3))) and "[" not in s:
            raise AssertionError(f"the fast path declined a plain name: {s!r}")
    assert answered > 100
