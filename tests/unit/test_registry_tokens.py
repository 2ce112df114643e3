"""The Bearer token flow against a stub transport: query, caching per scope, expiry, errors;
and manifest digest checks."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dockyard.errors import Unauthorized
from dockyard.registry.auth import StaticCredentials
from dockyard.registry.errors import DigestMismatch
from dockyard.registry.manifest import OCI_MANIFEST, sha256_digest, verified_manifest
from dockyard.registry.tokens import Authenticator


class _Resp:
    def __init__(self, status: int, doc: Any) -> None:
        self.status = status
        self.body = json.dumps(doc).encode()


class StubTransport:
    def __init__(self, status: int = 200, ttl: int = 300) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.status = status
        self.ttl = ttl

    def request(self, method: str, url: str, headers: dict[str, str], *a: Any, **k: Any) -> _Resp:
        self.calls.append((url, headers))
        if self.status != 200:
            return _Resp(self.status, {"details": "incorrect username or password"})
        return _Resp(200, {"token": f"t{len(self.calls)}", "expires_in": self.ttl})


CHALLENGE = 'Bearer realm="https://auth.example/token",service="reg.example"'


def test_token_request_and_cache() -> None:
    tr = StubTransport()
    a = Authenticator(tr, StaticCredentials("bob", "pw"))  # type: ignore[arg-type]
    a.learn("reg.example", CHALLENGE)
    h = a.headers("reg.example", ("repository:a/b:pull",))
    assert h == {"Authorization": "Bearer t1"}
    url, hdrs = tr.calls[0]
    q = parse_qs(urlsplit(url).query)
    assert urlsplit(url).netloc == "auth.example"
    assert q == {"service": ["reg.example"], "scope": ["repository:a/b:pull"], "account": ["bob"]}
    assert hdrs["Authorization"] == "Basic " + base64.b64encode(b"bob:pw").decode()
    assert a.headers("reg.example", ("repository:a/b:pull",)) == h
    assert a.headers("reg.example", ("repository:a/b:pull,push",)) == {"Authorization": "Bearer t2"}
    assert a.headers("reg.example", ("repository:a/b:pull",), refresh=True) == {
        "Authorization": "Bearer t3"}
    assert a.token_requests == 3


def test_expired_tokens_are_renewed() -> None:
    tr = StubTransport(ttl=5)
    a = Authenticator(tr, None, skew=10.0)  # type: ignore[arg-type]
    a.learn("reg.example", CHALLENGE)
    a.headers("reg.example", ("repository:x:pull",))
    assert "account" not in parse_qs(urlsplit(tr.calls[0][0]).query)
    assert "Authorization" not in tr.calls[0][1]
    # 5 s tokens with a 10 s safety margin are kept for the minimum of one second only
    a._tokens = {k: (v[0], 0.0) for k, v in a._tokens.items()}
    a.headers("reg.example", ("repository:x:pull",))
    assert len(tr.calls) == 2


def test_refused_credentials() -> None:
    a = Authenticator(StubTransport(status=401), StaticCredentials("bob", "bad"))  # type: ignore[arg-type]
    a.learn("reg.example", CHALLENGE)
    with pytest.raises(Unauthorized) as e:
        a.headers("reg.example", ())
    assert str(e.value) == "reg.example: unauthorized: incorrect username or password"


def test_basic_and_anonymous() -> None:
    a = Authenticator(StubTransport(), StaticCredentials("u", "p"))  # type: ignore[arg-type]
    a.learn("h", 'Basic realm="r"')
    assert a.headers("h", ()) == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    a.learn("h", None)
    assert a.headers("h", ()) == {}


def test_manifest_digest_checks() -> None:
    raw = b'{"schemaVersion":2}'
    d = sha256_digest(raw)
    assert verified_manifest(OCI_MANIFEST, raw, "v1", d, "m").digest == d
    assert verified_manifest(OCI_MANIFEST, raw, d, None, "m").digest == d
    with pytest.raises(DigestMismatch):
        verified_manifest(OCI_MANIFEST, raw, "v1", sha256_digest(b"other"), "m")
    with pytest.raises(DigestMismatch):
        verified_manifest(OCI_MANIFEST, raw, sha256_digest(b"other"), None, "m")
