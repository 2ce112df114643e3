"""The registry client against a real registry (Debian's docker-registry 2.8) on 127.0.0.1:
plain HTTP, TLS with a test CA, htpasswd and token auth, manifest lists, mounts, integrity,
resume with Range, mirrors and retries. No engine involved: blobs and manifests are raw.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry_server import (FlakyProxy, Registry, TokenServer, free_port, make_ca, make_cert,
                             make_htpasswd, needs_htpasswd, needs_registry, registry_dir,  # noqa: F401
                             sha256)
from dockyard.errors import NotFound, Unauthorized
from dockyard.registry.auth import StaticCredentials
from dockyard.registry.client import RegistryClient, VerifyingReader
from dockyard.registry.config import RegistryConfig
from dockyard.registry.errors import DigestMismatch, RegistryUnavailable
from dockyard.registry.manifest import OCI_INDEX, OCI_MANIFEST

pytestmark = needs_registry


def cfg(tmp: Path, **kw) -> RegistryConfig:
    kw.setdefault("credentials_path", str(tmp / "docker-config.json"))
    return RegistryConfig(**kw)


def client(reg: Registry, repo: str, conf: RegistryConfig, creds=None, actions="pull,push"):
    return RegistryClient(reg.host, repo, conf, creds, actions, backoff=0.01)


def push_image(c: RegistryClient, tag: str, layer: bytes, arch: str = "amd64") -> str:
    """Push a one-layer OCI image; returns the manifest digest."""
    conf = json.dumps({"architecture": arch, "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    for blob in (conf, layer):
        if c.blob_exists(sha256(blob)) is None:
            c.upload_blob(sha256(blob), len(blob), io.BytesIO(blob))
    man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": sha256(conf), "size": len(conf)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       "digest": sha256(layer), "size": len(layer)}]}
    return c.put_manifest(tag, OCI_MANIFEST, json.dumps(man).encode())


@pytest.fixture
def plain(registry_dir: Path):
    reg = Registry.start(registry_dir / "plain")
    yield reg
    reg.stop()


def test_push_and_pull_over_plain_http(plain: Registry, tmp_path: Path) -> None:
    conf = cfg(tmp_path)
    layer = os.urandom(300_000)
    with client(plain, "team/app", conf) as c:
        assert c.blob_exists(sha256(layer)) is None
        c.upload_blob(sha256(layer), len(layer), io.BytesIO(layer), chunk_size=64 * 1024)
        assert c.blob_exists(sha256(layer)) == len(layer)
        digest = push_image(c, "v1", layer)
    seen: list[int] = []
    with client(plain, "team/app", conf, actions="pull") as c:
        by_tag = c.get_manifest("v1")
        by_digest = c.get_manifest(digest)
        assert by_tag.digest == by_digest.digest == digest and by_tag.raw == by_digest.raw
        img = c.parse_image_manifest(by_tag)
        assert json.loads(c.get_blob_bytes(img.config.digest, 1 << 20))["architecture"] == "amd64"
        out = c.fetch_blob(img.layers[0].digest, img.layers[0].size, tmp_path / "l.partial",
                           seen.append)
        assert out.read_bytes() == layer and seen[-1] == len(layer)
        with VerifyingReader(c.open_blob(sha256(layer), 1000), sha256(layer), len(layer),
                             offset=1000, hasher=_prefix_hash(layer[:1000])) as r:
            assert r.read() == layer[1000:]
        assert c.tags() == ["v1"]
        assert c.resolve_platform(by_tag) is by_tag


def _prefix_hash(data: bytes):
    import hashlib
    h = hashlib.sha256()
    h.update(data)
    return h


def test_missing_manifest_and_repository_are_one_line_not_found(plain: Registry,
                                                                  tmp_path: Path) -> None:
    conf = cfg(tmp_path)
    with client(plain, "team/app", conf) as c:
        push_image(c, "v1", b"layer")
        with pytest.raises(NotFound) as e:
            c.get_manifest("nope")
        assert str(e.value) == (f"manifest for {plain.host}/team/app:nope not found: "
                                "manifest unknown: manifest unknown")
    with client(plain, "no/such", conf, actions="pull") as c:
        with pytest.raises(NotFound) as e:
            c.get_manifest("latest")
        assert f"{plain.host}/no/such" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(NotFound) as e:
            c.get_blob_bytes(sha256(b"x"), 10)
        assert sha256(b"x") in str(e.value)


def test_connection_refused_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    with RegistryClient(f"127.0.0.1:{port}", "x", cfg(tmp_path), None) as c:
        with pytest.raises(RegistryUnavailable) as e:
            c.get_manifest("latest")
    assert str(e.value).endswith("connection refused") and f"127.0.0.1:{port}" in str(e.value)
    assert time.monotonic() - started < 1.0  # a closed port is not retried with backoff


def test_manifest_list_picks_the_platform(plain: Registry, tmp_path: Path) -> None:
    conf = cfg(tmp_path)
    with client(plain, "multi", conf) as c:
        amd = push_image(c, "amd", b"amd64 layer", "amd64")
        arm = push_image(c, "arm", b"arm64 layer", "arm64")
        entries = []
        for d, arch, extra in ((amd, "amd64", {}), (arm, "arm64", {"variant": "v8"})):
            raw = c.get_manifest(d).raw
            entries.append({"mediaType": OCI_MANIFEST, "digest": d, "size": len(raw),
                            "platform": {"os": "linux", "architecture": arch, **extra}})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        idx_digest = c.put_manifest("latest", OCI_INDEX, index.encode())
    with client(plain, "multi", conf, actions="pull") as c:
        top = c.get_manifest("latest")
        assert top.media_type == OCI_INDEX and top.digest == idx_digest and top.is_index
        assert c.resolve_platform(top, "linux", "amd64").digest == amd
        assert c.resolve_platform(top, "linux", "arm64").digest == arm
        assert c.resolve_platform(top, "linux", "aarch64", "v8").digest == arm
        with pytest.raises(NotFound) as e:
            c.resolve_platform(top, "linux", "s390x")
        assert str(e.value) == "no matching manifest for linux/s390x in the manifest list entries"


def test_cross_repository_mount(plain: Registry, tmp_path: Path) -> None:
    conf = cfg(tmp_path)
    blob = os.urandom(5000)
    with client(plain, "src/repo", conf) as c:
        c.upload_blob(sha256(blob), len(blob), io.BytesIO(blob))
    with client(plain, "dst/repo", conf) as c:
        assert c.blob_exists(sha256(blob)) is None
        assert c.mount_blob(sha256(blob), "src/repo") is True
        assert c.blob_exists(sha256(blob)) == len(blob)
        assert c.mount_blob(sha256(b"never pushed"), "src/repo") is False
        # the session the registry opened instead is used by the upload that follows
        c.upload_blob(sha256(b"never pushed"), 12, io.BytesIO(b"never pushed"))
        assert c.blob_exists(sha256(b"never pushed")) == 12
    mounts = [line for line in plain.access_lines() if "mount=" in line]
    assert any('" 201 ' in line for line in mounts)
    posts = [line for line in plain.access_lines() if "POST /v2/dst/repo/blobs/uploads/" in line]
    assert len(posts) == 2


def test_corrupted_blob_fails_and_removes_the_partial(plain: Registry, tmp_path: Path) -> None:
    conf = cfg(tmp_path)
    layer = os.urandom(100_000)
    with client(plain, "bad", conf) as c:
        push_image(c, "v1", layer)
    data_file = plain.blob_data_path("bad", sha256(layer))
    corrupted = bytearray(data_file.read_bytes())
    corrupted[5000] ^= 0xFF
    data_file.write_bytes(bytes(corrupted))
    partial = tmp_path / "bad.partial"
    with client(plain, "bad", conf, actions="pull") as c:
        with pytest.raises(DigestMismatch) as e:
            c.fetch_blob(sha256(layer), len(layer), partial)
        assert sha256(layer) in str(e.value) and "\n" not in str(e.value)
        assert not partial.exists()
        with pytest.raises(DigestMismatch):
            c.get_blob_bytes(sha256(layer), 1 << 20)
        with pytest.raises(DigestMismatch):
            VerifyingReader(c.open_blob(sha256(layer)), sha256(layer), len(layer)).read()


def test_partial_download_resumes_with_a_range_request(plain: Registry, tmp_path: Path) -> None:
    conf = cfg(tmp_path)
    layer = os.urandom(3 * 1024 * 1024 + 17)
    with client(plain, "big", conf) as c:
        c.upload_blob(sha256(layer), len(layer), io.BytesIO(layer))
    half = len(layer) // 2
    partial = tmp_path / "big.partial"
    partial.write_bytes(layer[:half])
    progress: list[int] = []
    with client(plain, "big", conf, actions="pull") as c:
        out = c.fetch_blob(sha256(layer), len(layer), partial, progress.append)
    assert out == partial and partial.read_bytes() == layer
    assert progress[0] == half and progress[-1] == len(layer)
    gets = [line for line in plain.access_lines() if f"GET /v2/big/blobs/{sha256(layer)}" in line]
    assert len(gets) == 1 and f'" 206 {len(layer) - half} ' in gets[0], gets
    # a partial that holds garbage is detected at the end, removed, and the pull fails cleanly
    partial.write_bytes(b"\0" * half)
    with client(plain, "big", conf, actions="pull") as c:
        with pytest.raises(DigestMismatch):
            c.fetch_blob(sha256(layer), len(layer), partial)
    assert not partial.exists()


def test_tls_with_a_ca_in_certs_d(registry_dir: Path, tmp_path: Path) -> None:
    ca = make_ca(registry_dir / "ca")
    reg = Registry.start(registry_dir / "tls", tls=make_cert(ca, registry_dir / "ca"))
    try:
        certs = tmp_path / "certs.d"
        (certs / reg.host).mkdir(parents=True)
        (certs / reg.host / "ca.crt").write_bytes(ca.cert.read_bytes())
        strict = cfg(tmp_path, certs_dirs=(str(certs),), loopback_insecure=False)
        with client(reg, "secure/app", strict) as c:
            digest = push_image(c, "v1", b"over tls")
            assert c.get_manifest("v1").digest == digest
        assert not any(" 400 " in line for line in reg.access_lines())
        # without the CA the handshake fails, with a message that says where the CA goes
        no_ca = cfg(tmp_path, certs_dirs=(str(tmp_path / "empty"),), loopback_insecure=False)
        with client(reg, "secure/app", no_ca) as c:
            with pytest.raises(RegistryUnavailable) as e:
                c.get_manifest("v1")
        msg = str(e.value)
        assert "certificate verify failed" in msg and f"{tmp_path}/empty/{reg.host}/ca.crt" in msg
        # loopback is insecure by default (as Docker): TLS without verification works
        with client(reg, "secure/app", cfg(tmp_path, certs_dirs=())) as c:
            assert c.get_manifest("v1").digest == digest
    finally:
        reg.stop()


def test_tls_client_certificate_from_certs_d(registry_dir: Path, tmp_path: Path) -> None:
    ca = make_ca(registry_dir / "ca")
    reg = Registry.start(registry_dir / "mtls", tls=make_cert(ca, registry_dir / "ca"),
                         client_ca=ca.cert)
    try:
        certs = tmp_path / "certs.d"
        (certs / reg.host).mkdir(parents=True)
        (certs / reg.host / "ca.crt").write_bytes(ca.cert.read_bytes())
        conf = cfg(tmp_path, certs_dirs=(str(certs),), loopback_insecure=False)
        with client(reg, "mtls/app", conf) as c:
            with pytest.raises(RegistryUnavailable):
                c.get_manifest("v1")
        cert, key = make_cert(ca, registry_dir / "client", "client", client=True)
        (certs / reg.host / "client.cert").write_bytes(cert.read_bytes())
        (certs / reg.host / "client.key").write_bytes(key.read_bytes())
        with client(reg, "mtls/app", conf) as c:
            digest = push_image(c, "v1", b"mutual tls")
            assert c.get_manifest("v1").digest == digest
    finally:
        reg.stop()


@needs_htpasswd
def test_htpasswd_basic_auth(registry_dir: Path, tmp_path: Path) -> None:
    pw = make_htpasswd(registry_dir / "htpasswd", {"alice": "s3cret"})
    reg = Registry.start(registry_dir / "basic", htpasswd=pw)
    try:
        conf = cfg(tmp_path)
        good = StaticCredentials("alice", "s3cret")
        with client(reg, "private/app", conf, good) as c:
            c.check_login()
            digest = push_image(c, "v1", b"secret layer")
        with client(reg, "private/app", conf, good, "pull") as c:
            assert c.get_manifest("v1").digest == digest
        with client(reg, "private/app", conf, StaticCredentials("alice", "wrong")) as c:
            with pytest.raises(Unauthorized) as e:
                c.check_login()
            assert str(e.value) == (f"login to {reg.host} failed: unauthorized: "
                                    "incorrect username or password")
        with client(reg, "private/app", conf, None, "pull") as c:
            with pytest.raises(Unauthorized) as e:
                c.get_manifest("v1")
            assert "unauthorized" in str(e.value) and "\n" not in str(e.value)
    finally:
        reg.stop()


def test_token_auth_caches_tokens_per_scope(registry_dir: Path, tmp_path: Path) -> None:
    ts = TokenServer(registry_dir / "token", {"bob": "hunter2"})
    reg = Registry.start(registry_dir / "tokreg", token=ts)
    try:
        conf = cfg(tmp_path)
        creds = StaticCredentials("bob", "hunter2")
        with client(reg, "tok/app", conf, creds) as c:
            c.check_login()
            assert ts.requests[-1] == ("bob", [])
            ts.requests.clear()
            digest = push_image(c, "v1", os.urandom(1000))
            push_image(c, "v2", os.urandom(1000))
            # one token for the whole push: every later request reuses it
            assert ts.requests == [("bob", ["repository:tok/app:pull,push"])]
            # a token the registry refuses is renewed once, transparently
            for key in list(c.auth._tokens):
                c.auth._tokens[key] = ("not-a-token", c.auth._tokens[key][1])
            assert c.get_manifest("v1").digest == digest
            assert len(ts.requests) == 2
        # parallel downloads on a fresh client share one token
        blobs = [os.urandom(50_000) for _ in range(6)]
        with client(reg, "tok/app", conf, creds) as c:
            for b in blobs:
                c.upload_blob(sha256(b), len(b), io.BytesIO(b))
        ts.requests.clear()
        with client(reg, "tok/app", conf, creds, "pull") as c:
            with ThreadPoolExecutor(6) as pool:
                outs = list(pool.map(lambda ib: c.fetch_blob(
                    sha256(ib[1]), len(ib[1]), tmp_path / f"par{ib[0]}"), enumerate(blobs)))
        assert [o.read_bytes() for o in outs] == blobs
        assert ts.requests == [("bob", ["repository:tok/app:pull"])]
        with client(reg, "tok/other", conf, creds) as c:
            ts.requests.clear()
            blob = sha256(b"\n".join([b"x"]))
            assert c.mount_blob(blob, "tok/app") is False
            assert ts.requests == [("bob", ["repository:tok/app:pull",
                                            "repository:tok/other:pull,push"])]
        with client(reg, "tok/app", conf, StaticCredentials("bob", "nope")) as c:
            with pytest.raises(Unauthorized) as e:
                c.check_login()
            assert str(e.value) == (f"login to {reg.host} failed: unauthorized: "
                                    "incorrect username or password")
        with client(reg, "tok/app", conf, None, "pull") as c:
            with pytest.raises(Unauthorized):
                c.get_manifest("v1")
    finally:
        reg.stop()
        ts.close()


def test_check_push_answers_blobs_and_the_tag_in_one_go(plain: Registry, registry_dir: Path,
                                                        tmp_path: Path) -> None:
    layer = os.urandom(3000)
    conf = cfg(tmp_path)
    with client(plain, "check/app", conf) as c:
        digest = push_image(c, "v1", layer)
        config = c.parse_image_manifest(c.get_manifest("v1")).config.digest
    hints = str(tmp_path / "hints")
    with RegistryClient(plain.host, "check/app", conf, None, "pull,push", hints_dir=hints) as c:
        c.check_login()  # learns (and keeps) the scheme
    before = len(plain.access_lines())
    missing = sha256(b"never pushed")
    with RegistryClient(plain.host, "check/app", conf, None, "pull,push", hints_dir=hints) as c:
        sizes, current = c.check_push([config, sha256(layer), missing, sha256(layer)], "v1",
                                      OCI_MANIFEST)
        assert sizes[sha256(layer)] == len(layer) and sizes[missing] is None and sizes[config]
        assert current == digest
        assert c.check_push([missing], "nope", OCI_MANIFEST) == ({missing: None}, None)
    lines = plain.access_lines()[before:]
    assert not any('"GET /v2/ ' in line for line in lines), lines  # no ping: scheme remembered
    assert len([line for line in lines if '"HEAD /v2/check/app/blobs/' in line]) == 4, lines
    # with token auth the first HEADs' 401 brings the challenge; all go again with a token
    ts = TokenServer(registry_dir / "token", {"bob": "hunter2"})
    reg = Registry.start(registry_dir / "tokreg", token=ts)
    try:
        creds = StaticCredentials("bob", "hunter2")
        with client(reg, "tok/app", conf, creds) as c:
            digest = push_image(c, "v1", layer)
        with client(reg, "tok/app", conf, creds) as c:
            sizes, current = c.check_push([sha256(layer), missing], "v1", OCI_MANIFEST)
        assert sizes == {sha256(layer): len(layer), missing: None} and current == digest
        with client(reg, "tok/app", conf, None) as c:
            with pytest.raises(Unauthorized):
                c.check_push([sha256(layer)], "v1", OCI_MANIFEST)
    finally:
        reg.stop()
        ts.close()


def test_a_remembered_scheme_that_went_stale_is_probed_again(registry_dir: Path,
                                                            tmp_path: Path) -> None:
    """The scheme hint says plain http, the registry now speaks TLS only: the first request
    fails, a ping finds https, and the hint is kept for next time."""
    ca = make_ca(registry_dir / "ca")
    reg = Registry.start(registry_dir / "tlsnow", tls=make_cert(ca, registry_dir / "ca"))
    try:
        hints = tmp_path / "hints"
        hints.mkdir()
        (hints / ("scheme-" + reg.host.replace(":", "%3A"))).write_text("http\n")
        conf = cfg(tmp_path, certs_dirs=())  # loopback: insecure, either scheme allowed
        with RegistryClient(reg.host, "stale/app", conf, None, "pull,push", backoff=0.01,
                            hints_dir=str(hints)) as c:
            digest = push_image(c, "v1", b"over tls")
            assert c.get_manifest("v1").digest == digest
        assert (hints / ("scheme-" + reg.host.replace(":", "%3A"))).read_text().strip() == "https"
    finally:
        reg.stop()


def test_mirror_falls_back_to_the_origin_and_serves_when_up(plain: Registry, registry_dir: Path,
                                                            tmp_path: Path) -> None:
    with client(plain, "mirrored/app", cfg(tmp_path)) as c:
        digest = push_image(c, "v1", b"from origin")
    dead = f"http://127.0.0.1:{free_port()}"
    conf = cfg(tmp_path, mirrors={plain.host: (dead,)})
    with RegistryClient(plain.host, "mirrored/app", conf, None, retries=1) as c:
        assert c.get_manifest("v1").digest == digest
        img = c.parse_image_manifest(c.get_manifest("v1"))
        assert c.get_blob_bytes(img.layers[0].digest, 100) == b"from origin"
    # a real pull-through mirror (distribution's proxy mode) in front of the origin
    mirror = Registry.start(registry_dir / "mirror", proxy_remote=plain.url)
    try:
        conf = cfg(tmp_path, mirrors={plain.host: (dead, mirror.url)})
        with RegistryClient(plain.host, "mirrored/app", conf, None, retries=1) as c:
            assert c.get_manifest("v1").digest == digest
        assert any("GET /v2/mirrored/app/manifests/v1" in line for line in mirror.access_lines())
        # pushes never go to mirrors
        with RegistryClient(plain.host, "mirrored/app", conf, None, "pull,push") as c:
            push_image(c, "v2", b"pushed")
        assert not any("PUT " in line for line in mirror.access_lines())
    finally:
        mirror.stop()


def test_retries_5xx_but_not_4xx(plain: Registry, tmp_path: Path) -> None:
    proxy = FlakyProxy(plain.host, fail_first=True)
    try:
        with RegistryClient(proxy.host, "flaky/app", cfg(tmp_path), None, "pull,push",
                            backoff=0.01) as c:
            layer = os.urandom(2000)
            digest = push_image(c, "v1", layer)
            assert c.get_manifest("v1").digest == digest
            out = c.fetch_blob(sha256(layer), len(layer), tmp_path / "f.partial")
            assert out.read_bytes() == layer
            with pytest.raises(NotFound):
                c.get_manifest("missing")
        assert proxy.seen["GET /v2/flaky/app/manifests/v1"] == 2
        # 404 after the first 503: the retry got the 404, and nothing more was tried
        assert proxy.seen["GET /v2/flaky/app/manifests/missing"] == 2
    finally:
        proxy.close()


def test_access_log_names_our_user_agent(plain: Registry, tmp_path: Path) -> None:
    with client(plain, "ua", cfg(tmp_path)) as c:
        c.ping()
    assert any(re.search(r'"GET /v2/ HTTP/1.1" 200 .*dockyard/', line)
               for line in plain.access_lines())


def test_an_upload_the_registry_keeps_failing_starts_a_new_session(plain: Registry,
                                                                   tmp_path: Path) -> None:
    proxy = FlakyProxy(plain.host, fail_puts=4)  # more than the retries of one request
    try:
        blob = os.urandom(10_000)
        sent: list[int] = []
        with RegistryClient(proxy.host, "restart/app", cfg(tmp_path), None, "pull,push",
                            retries=3, backoff=0.01) as c:
            c.upload_blob(sha256(blob), len(blob), io.BytesIO(blob), on_progress=sent.append)
            assert c.blob_exists(sha256(blob)) == len(blob)
        assert len(proxy.failed_puts) == 4 and len(set(proxy.failed_puts)) == 2
        assert sent[-1] == len(blob)
    finally:
        proxy.close()


def test_through_an_http_proxy(plain: Registry, registry_dir: Path, tmp_path: Path) -> None:
    proxy = FlakyProxy(plain.host)
    try:
        conf = cfg(tmp_path, http_proxy=f"http://user:pw@{proxy.host}", proxy_loopback=True)
        with client(plain, "proxied/app", conf) as c:
            digest = push_image(c, "v1", b"via a proxy")
            assert c.get_manifest("v1").digest == digest
        assert f"GET http://{plain.host}/v2/proxied/app/manifests/v1" in proxy.seen
        assert set(proxy.proxy_auth) == {"Basic dXNlcjpwdw=="}
        # NO_PROXY (here from the config) wins
        before = dict(proxy.seen)
        with client(plain, "proxied/app", cfg(tmp_path, http_proxy=f"http://{proxy.host}",
                                               no_proxy="127.0.0.0/8", proxy_loopback=True)) as c:
            assert c.get_manifest("v1").digest == digest
        assert proxy.seen == before
        # https goes through a CONNECT tunnel, TLS verified against the registry's own name
        ca = make_ca(registry_dir / "ca")
        reg = Registry.start(registry_dir / "tls", tls=make_cert(ca, registry_dir / "ca"))
        try:
            certs = tmp_path / "certs.d"
            (certs / reg.host).mkdir(parents=True)
            (certs / reg.host / "ca.crt").write_bytes(ca.cert.read_bytes())
            conf = cfg(tmp_path, https_proxy=proxy.host, proxy_loopback=True,
                       certs_dirs=(str(certs),), loopback_insecure=False)
            with client(reg, "tunnel/app", conf) as c:
                digest = push_image(c, "v1", b"through a tunnel")
                assert c.get_manifest("v1").digest == digest
            assert proxy.connects and set(proxy.connects) == {reg.host}
        finally:
            reg.stop()
    finally:
        proxy.close()


def test_a_dropped_download_resumes_with_a_range_request(plain: Registry, tmp_path: Path) -> None:
    layer = os.urandom(2 * 1024 * 1024)
    with client(plain, "cut/app", cfg(tmp_path)) as c:
        c.upload_blob(sha256(layer), len(layer), io.BytesIO(layer))
    proxy = FlakyProxy(plain.host, cut_blobs=True)
    try:
        seen: list[int] = []
        with RegistryClient(proxy.host, "cut/app", cfg(tmp_path), None, backoff=0.01) as c:
            assert c.blob_exists(sha256(layer)) == len(layer)
            out = c.fetch_blob(sha256(layer), len(layer), tmp_path / "cut.partial", seen.append)
        assert out.read_bytes() == layer and seen[-1] == len(layer)
        assert len(proxy.ranges) == 1 and proxy.ranges[0].startswith("bytes=")
        start = int(proxy.ranges[0][len("bytes="):].rstrip("-"))
        assert 0 < start < len(layer)
    finally:
        proxy.close()


def test_blob_redirects_are_followed_without_the_registry_credentials(
        plain: Registry, tmp_path: Path) -> None:
    proxy = FlakyProxy(plain.host, redirect_blobs=True)
    try:
        layer = os.urandom(4000)
        with RegistryClient(proxy.host, "redir/app", cfg(tmp_path), StaticCredentials("u", "p"),
                            "pull,push") as c:
            push_image(c, "v1", layer)
            assert c.head_manifest("v1").digest == c.get_manifest("v1").digest
            assert c.head_manifest("missing") is None
            out = c.fetch_blob(sha256(layer), len(layer), tmp_path / "r.partial")
            assert out.read_bytes() == layer
        assert any(k.startswith("GET /v2/redir/app/blobs/") for k in proxy.redirected)
    finally:
        proxy.close()
