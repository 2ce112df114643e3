"""RegistryConfig from daemon.json keys; insecure-registry decisions; mirror URLs."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.config import RegistryConfig, default_credentials_path, origin_host


def test_from_daemon_json() -> None:
    c = RegistryConfig.from_daemon_json({
        "insecure-registries": ["myreg:5000", "10.0.0.0/8"],
        "registry-mirrors": ["https://mirror.example/"],
        "registry-mirrors-by-host": {"ghcr.io": ["http://10.1.2.3:5000"],
                                     "index.docker.io": ["https://second.example"]},
        "max-concurrent-downloads": 6, "max-concurrent-uploads": 2, "debug": True})
    assert c.insecure == ("myreg:5000", "10.0.0.0/8")
    assert c.mirrors_for("docker.io") == ("https://mirror.example", "https://second.example")
    assert c.mirrors_for("ghcr.io") == ("http://10.1.2.3:5000",)
    assert c.mirrors_for("quay.io") == ()
    assert (c.max_concurrent_downloads, c.max_concurrent_uploads) == (6, 2)
    assert RegistryConfig.from_daemon_json({}) == RegistryConfig()


@pytest.mark.parametrize("doc", [
    {"insecure-registries": "x"},
    {"insecure-registries": ["http://x:5000"]},
    {"registry-mirrors": ["ftp://m"]},
    {"registry-mirrors": ["mirror.example"]},
    {"registry-mirrors-by-host": {"x": "http://m"}},
    {"max-concurrent-downloads": 0},
    {"max-concurrent-uploads": "3"},
])
def test_invalid_settings(doc: dict) -> None:
    with pytest.raises(InvalidArgument):
        RegistryConfig.from_daemon_json(doc)


def test_insecure_hosts() -> None:
    c = RegistryConfig(insecure=("myreg:5000", "10.0.0.0/8", "plain.example"))
    assert c.is_insecure("127.0.0.1:5000") and c.is_insecure("localhost:5000")
    assert c.is_insecure("[::1]:5000") and c.is_insecure("127.3.4.5")
    assert c.is_insecure("myreg:5000")
    # (a name that matches no entry would be resolved for the CIDR check: keep that offline)
    by_name = RegistryConfig(insecure=("myreg:5000",), loopback_insecure=False)
    assert not by_name.is_insecure("myreg:5001") and not by_name.is_insecure("other")
    assert c.is_insecure("10.20.30.40:443") and not c.is_insecure("11.0.0.1")
    assert c.is_insecure("plain.example:8080")
    assert not RegistryConfig(loopback_insecure=False).is_insecure("127.0.0.1:5000")


def test_credentials_path_and_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", "/tmp/dc")
    assert default_credentials_path() == "/tmp/dc/config.json"
    assert RegistryConfig().credentials_path == "/tmp/dc/config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", "/home/u")
    assert default_credentials_path() == "/home/u/.docker/config.json"
    assert origin_host("docker.io") == "registry-1.docker.io"
    assert origin_host("localhost:5000") == "localhost:5000"
