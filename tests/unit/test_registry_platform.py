"""Manifest media types and platform matching in an index (containerd's normalisation)."""

from __future__ import annotations

import json

import pytest

from dockyard.errors import InvalidArgument, NotFound, Unsupported
from dockyard.registry.manifest import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
                                        SCHEMA1_TYPES, Manifest, Platform, check_supported,
                                        choose_platform, detect_media_type, normalize_platform,
                                        parse_image_manifest, parse_index, sha256_digest)


def _index(*plats: dict, media_type: str = DOCKER_LIST) -> Manifest:
    entries = []
    for i, p in enumerate(plats):
        entries.append({"mediaType": DOCKER_MANIFEST, "digest": "sha256:" + f"{i:x}" * 64,
                        "size": 100 + i, "platform": p})
    raw = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
    return Manifest(media_type, raw, sha256_digest(raw))


def pick(m: Manifest, spec: str) -> int:
    d = choose_platform(parse_index(m), Platform.parse(spec))
    return int(d.digest[7], 16)


def test_normalisation() -> None:
    assert normalize_platform(Platform("linux", "aarch64")) == Platform("linux", "arm64")
    assert normalize_platform(Platform("linux", "arm64", "v8")) == Platform("linux", "arm64")
    assert normalize_platform(Platform("linux", "x86_64")) == Platform("linux", "amd64")
    assert normalize_platform(Platform("linux", "arm")) == Platform("linux", "arm", "v7")
    assert normalize_platform(Platform("linux", "armhf")) == Platform("linux", "arm", "v7")
    assert normalize_platform(Platform("linux", "armel")) == Platform("linux", "arm", "v6")
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64")
    assert Platform.parse("arm64") == Platform("linux", "arm64")
    with pytest.raises(InvalidArgument):
        Platform.parse("linux//x")


def test_choose_amd64_and_arm64() -> None:
    m = _index({"os": "linux", "architecture": "amd64"},
               {"os": "linux", "architecture": "arm64", "variant": "v8"},
               {"os": "linux", "architecture": "arm", "variant": "v7"},
               {"os": "linux", "architecture": "arm", "variant": "v6"})
    assert pick(m, "linux/amd64") == 0
    assert pick(m, "linux/arm64") == 1
    assert pick(m, "linux/arm64/v8") == 1
    assert pick(m, "linux/arm/v7") == 2
    assert pick(m, "linux/arm/v6") == 3
    with pytest.raises(NotFound) as e:
        pick(m, "linux/s390x")
    assert str(e.value) == "no matching manifest for linux/s390x in the manifest list entries"
    with pytest.raises(NotFound) as e:
        pick(m, "windows/amd64")
    assert "windows/amd64" in str(e.value)


def test_arm_v7_host_falls_back_to_v6_and_arm64_matches_missing_variant() -> None:
    m = _index({"os": "linux", "architecture": "arm", "variant": "v6"},
               {"os": "linux", "architecture": "arm64"})
    assert pick(m, "linux/arm/v7") == 0
    assert pick(m, "linux/arm64/v8") == 1
    with pytest.raises(NotFound):
        pick(m, "linux/arm/v5")


def test_attestation_entries_are_skipped() -> None:
    m = _index({"os": "unknown", "architecture": "unknown"},
               {"os": "linux", "architecture": "amd64"}, media_type=OCI_INDEX)
    assert pick(m, "linux/amd64") == 1


def test_media_type_detection_and_schema1() -> None:
    assert detect_media_type(b"{}", OCI_MANIFEST + "; charset=utf-8") == OCI_MANIFEST
    assert detect_media_type(b'{"schemaVersion":1,"name":"x"}', "application/json") in SCHEMA1_TYPES
    assert detect_media_type(b'{"schemaVersion":2,"manifests":[]}', None) == OCI_INDEX
    assert detect_media_type(b'{"schemaVersion":2,"mediaType":"%s"}' % DOCKER_MANIFEST.encode(),
                             "text/plain") == DOCKER_MANIFEST
    with pytest.raises(Unsupported) as e:
        check_supported(SCHEMA1_TYPES[1], "manifest for r/x:1")
    assert "schema 1" in str(e.value) and "r/x:1" in str(e.value)
    with pytest.raises(Unsupported):
        check_supported("application/vnd.example+json", "manifest")


def test_parse_image_manifest() -> None:
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": {"mediaType": "c", "digest": "sha256:" + "a" * 64, "size": 7},
           "layers": [{"mediaType": "l", "digest": "sha256:" + "b" * 64, "size": 9,
                       "urls": ["https://x/y"]}]}
    raw = json.dumps(doc).encode()
    img = parse_image_manifest(Manifest(DOCKER_MANIFEST, raw, sha256_digest(raw)))
    assert img.config.size == 7 and img.layers[0].urls == ("https://x/y",)
    doc["layers"][0]["digest"] = "md5:abc"
    raw = json.dumps(doc).encode()
    with pytest.raises(InvalidArgument):
        parse_image_manifest(Manifest(DOCKER_MANIFEST, raw, sha256_digest(raw)))
