"""RegistryConfig from daemon.json keys; insecure-registry decisions; mirror URLs; proxies."""

from __future__ import annotations

import base64

import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.config import RegistryConfig, default_credentials_path, origin_host
from dockyard.registry.proxy import Proxy, ProxySettings


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
    assert hash(c) == hash(RegistryConfig.from_daemon_json({"insecure-registries": list(c.insecure),
                                                           "max-concurrent-downloads": 6,
                                                           "max-concurrent-uploads": 2}))


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


def test_daemon_json_proxies() -> None:
    c = RegistryConfig.from_daemon_json({"proxies": {
        "http-proxy": "http://p:3128", "https-proxy": "http://u:s@p:3129", "no-proxy": "a.b"}})
    assert (c.http_proxy, c.https_proxy, c.no_proxy) == ("http://p:3128", "http://u:s@p:3129", "a.b")
    with pytest.raises(InvalidArgument):
        RegistryConfig.from_daemon_json({"proxies": {"http-proxy": 3}})


def test_proxy_choice() -> None:
    env = {"HTTPS_PROXY": "http://user:p%40ss@proxy.corp:3128", "http_proxy": "proxy.corp:80",
           "NO_PROXY": "internal.example,.svc.local,10.0.0.0/8,reg.example:5000,192.168.1.1"}
    s = ProxySettings.resolve(RegistryConfig(), env)
    tunnel = s.proxy_for("https", "registry-1.docker.io")
    assert tunnel == Proxy("proxy.corp:3128", "Basic " + base64.b64encode(b"user:p@ss").decode())
    assert s.proxy_for("http", "ghcr.io") == Proxy("proxy.corp:80")
    for direct in ("internal.example", "a.internal.example:443", "x.svc.local", "10.1.2.3:5000",
                   "reg.example:5000", "192.168.1.1:443", "127.0.0.1:5000", "localhost:5000",
                   "[::1]:5000"):
        assert s.proxy_for("https", direct) is None, direct
    for proxied in ("svc.local.evil", "reg.example:5001", "notinternal.example", "192.168.1.2"):
        assert s.proxy_for("https", proxied) is not None, proxied
    # the config wins over the environment; "*" turns proxies off
    c = RegistryConfig(https_proxy="", no_proxy="")
    assert ProxySettings.resolve(c, env).proxy_for("https", "ghcr.io") is None
    assert ProxySettings.resolve(RegistryConfig(no_proxy="*"), env).proxy_for("http", "x") is None
    loop = ProxySettings.resolve(RegistryConfig(proxy_loopback=True), env)
    assert loop.proxy_for("https", "127.0.0.1:5000") is not None
    with pytest.raises(InvalidArgument):
        ProxySettings.resolve(RegistryConfig(https_proxy="socks5://p:1080"), {})
