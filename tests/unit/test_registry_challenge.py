"""WWW-Authenticate parsing and the choice between Basic and Bearer."""

from __future__ import annotations

from dockyard.registry.tokens import Challenge, parse_www_authenticate, pick_challenge


def test_bearer_with_quoted_params() -> None:
    got = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert got == [Challenge("bearer", {"realm": "https://auth.docker.io/token",
                                        "service": "registry.docker.io",
                                        "scope": "repository:library/busybox:pull"})]


def test_scope_with_comma_inside_quotes_and_spaces() -> None:
    got = parse_www_authenticate(
        'Bearer realm="http://127.0.0.1:9/token", service="svc", '
        'scope="repository:a/b:pull,push", error="insufficient_scope"')
    assert got[0].params["scope"] == "repository:a/b:pull,push"
    assert got[0].params["error"] == "insufficient_scope"


def test_basic_and_case_insensitive_scheme() -> None:
    assert parse_www_authenticate('basic realm="Registry Realm"') == [
        Challenge("basic", {"realm": "Registry Realm"})]


def test_several_challenges_and_unquoted_values() -> None:
    got = parse_www_authenticate('Basic realm=reg, Bearer realm="https://t/x",service=s')
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[0].params == {"realm": "reg"}
    assert got[1].params == {"realm": "https://t/x", "service": "s"}
    assert pick_challenge(got) == got[1]


def test_escaped_quote_and_empty_header() -> None:
    got = parse_www_authenticate(r'Bearer realm="a\"b"')
    assert got[0].params["realm"] == 'a"b'
    assert parse_www_authenticate("") == []
    assert pick_challenge([]) is None
    assert pick_challenge(parse_www_authenticate("Negotiate")) is None
