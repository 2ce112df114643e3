"""VerifyingReader and the registry error mapping."""

from __future__ import annotations

import hashlib
import io

import pytest

from dockyard.errors import InvalidArgument, NotFound, Unauthorized, Unsupported
from dockyard.registry.blobs import VerifyingReader
from dockyard.registry.errors import DigestMismatch, RegistryUnavailable, error_for_status

DATA = b"0123456789" * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def test_reads_and_verifies() -> None:
    r = VerifyingReader(io.BytesIO(DATA), DIGEST, len(DATA))
    assert r.read(10) + r.read() == DATA
    assert r.read() == b""


def test_offset_with_prefix_hash() -> None:
    h = hashlib.sha256(DATA[:100])
    assert VerifyingReader(io.BytesIO(DATA[100:]), DIGEST, len(DATA), 100, h).read() == DATA[100:]


@pytest.mark.parametrize("content,why", [
    (DATA[:-1], "unexpected end"), (DATA + b"x", "more than"),
    (DATA[:-1] + b"!", "hashes to")])
def test_mismatch(content: bytes, why: str) -> None:
    with pytest.raises(DigestMismatch) as e:
        VerifyingReader(io.BytesIO(content), DIGEST, len(DATA)).read()
    assert DIGEST in str(e.value) and why in str(e.value)
    assert isinstance(e.value, InvalidArgument)


def test_error_mapping() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
    e = error_for_status(404, body, "manifest for r/x:1", "r/x")
    assert isinstance(e, NotFound)
    assert str(e) == "manifest for r/x:1 not found: manifest unknown: manifest unknown"
    body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
    e = error_for_status(404, body, "blob", "r/x")
    assert str(e) == "repository r/x not found: name unknown: repository name not known to registry"
    assert isinstance(error_for_status(401, b"", "w", "n"), Unauthorized)
    assert isinstance(error_for_status(503, b"<html>", "w", "n"), RegistryUnavailable)
    assert isinstance(error_for_status(405, b"", "w", "n"), Unsupported)
    e = error_for_status(403, b'{"errors":[{"code":"DENIED","message":"requested access to the '
                              b'resource is denied"}]}', "push of r/x", "r/x")
    assert str(e) == "push of r/x: denied: requested access to the resource is denied"
