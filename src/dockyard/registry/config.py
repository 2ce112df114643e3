"""Registry settings: insecure registries, mirrors, certs.d directories, concurrency, credentials.

`RegistryConfig.from_daemon_json` reads the keys Docker's daemon.json uses
(`insecure-registries`, `registry-mirrors`, `max-concurrent-downloads`,
`max-concurrent-uploads`, `proxies`) plus Dockyard's `registry-mirrors-by-host: {host: [urls]}`, which
gives mirrors to any registry, not only Docker Hub.
"""

from __future__ import annotations

import os

from .._record import dataclass, field
from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

DOCKER_HUB = "docker.io"
DOCKER_HUB_ORIGIN = "registry-1.docker.io"
DEFAULT_CERTS_DIRS = ("/etc/dockyard/certs.d", "/etc/docker/certs.d")
_LOOPBACK = ("127.0.0.0/8", "::1/128")

if TYPE_CHECKING:
    import ipaddress


def default_credentials_path() -> str:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (as the docker CLI)."""
    d = os.environ.get("DOCKER_CONFIG")
    if d:
        return os.path.join(d, "config.json")
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


@dataclass(frozen=True)
class RegistryConfig:
    """How to reach registries. Loopback registries are always insecure (plain HTTP allowed),
    as in Docker, unless `loopback_insecure` is turned off (tests of strict TLS do that)."""

    insecure: tuple[str, ...] = ()
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    certs_dirs: tuple[str, ...] = DEFAULT_CERTS_DIRS
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    credentials_path: str = field(default_factory=default_credentials_path)
    loopback_insecure: bool = True
    #: proxies (None: HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment)
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None
    #: send loopback registries through the proxy too (tests; Docker never does)
    proxy_loopback: bool = False

    @classmethod
    def from_daemon_json(cls, d: Mapping[str, Any], **overrides: Any) -> "RegistryConfig":
        """Parse the registry keys of a daemon.json document (unknown keys are ignored)."""
        insecure = tuple(_str_list(d, "insecure-registries"))
        for entry in insecure:
            _validate_insecure(entry)
        mirrors: dict[str, tuple[str, ...]] = {}
        hub = [normalize_mirror(u) for u in _str_list(d, "registry-mirrors")]
        if hub:
            mirrors[DOCKER_HUB] = tuple(hub)
        by_host = d.get("registry-mirrors-by-host") or {}
        if not isinstance(by_host, dict):
            raise InvalidArgument("registry-mirrors-by-host must be an object of host: [urls]")
        for host, urls in by_host.items():
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise InvalidArgument(f"registry-mirrors-by-host[{host!r}] must be a list of URLs")
            key = canonical_registry(str(host))
            mirrors[key] = mirrors.get(key, ()) + tuple(normalize_mirror(u) for u in urls)
        kw: dict[str, Any] = {"insecure": insecure, "mirrors": mirrors}
        proxies = d.get("proxies") or {}
        if not isinstance(proxies, dict):
            raise InvalidArgument("proxies must be an object (http-proxy, https-proxy, no-proxy)")
        for key, attr in (("http-proxy", "http_proxy"), ("https-proxy", "https_proxy"),
                          ("no-proxy", "no_proxy")):
            if key in proxies:
                if not isinstance(proxies[key], str):
                    raise InvalidArgument(f"proxies.{key} must be a string")
                kw[attr] = proxies[key]
        for key, attr in (("max-concurrent-downloads", "max_concurrent_downloads"),
                          ("max-concurrent-uploads", "max_concurrent_uploads")):
            if key in d:
                v = d[key]
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise InvalidArgument(f"invalid {key}: {v!r} (a positive integer is needed)")
                kw[attr] = v
        kw.update(overrides)
        return cls(**kw)

    def mirrors_for(self, domain: str) -> tuple[str, ...]:
        return tuple(self.mirrors.get(canonical_registry(domain), ()))

    def is_insecure(self, host: str) -> bool:
        """True when plain HTTP (and unverified TLS) is allowed for `host[:port]`."""
        name, _port = split_host_port(host)
        if host in self.insecure or name in self.insecure:
            return True
        if not any("/" in e for e in self.insecure):  # only loopback to check: no ipaddress
            quick = _loopback_literal(name)
            if quick is not None:
                return quick and self.loopback_insecure
        import ipaddress  # here: not every command needs it

        nets = [ipaddress.ip_network(e, strict=False) for e in self.insecure if "/" in e]
        if self.loopback_insecure:
            nets.extend(ipaddress.ip_network(n) for n in _LOOPBACK)
        if not nets:
            return False
        for ip in _addresses(name):
            if any(ip.version == n.version and ip in n for n in nets):
                return True
        return False


def _loopback_literal(name: str) -> bool | None:
    """Whether `name` is a loopback address, for `localhost` and IP literals (None: a name
    to resolve, or a literal ipaddress should judge)."""
    if name == "localhost" or name == "::1":
        return True
    parts = name.split(".")
    if len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255
                               for p in parts):
        return parts[0] == "127"
    return None


def split_host_port(host: str) -> tuple[str, int | None]:
    """`localhost:5000` → ("localhost", 5000); `[::1]:5000` → ("::1", 5000)."""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:]
        return host[1:end], int(rest[1:]) if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, int(port)
    return host, None


def canonical_registry(domain: str) -> str:
    """docker.io's aliases → `docker.io`; other names unchanged."""
    d = domain.lower()
    if d in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return DOCKER_HUB
    return domain


def origin_host(domain: str) -> str:
    """The host that serves a reference's domain (docker.io is served by registry-1)."""
    return DOCKER_HUB_ORIGIN if canonical_registry(domain) == DOCKER_HUB else domain


def normalize_mirror(url: str) -> str:
    """Check a mirror URL (http or https, no query) and drop its trailing slash."""
    from urllib.parse import urlsplit  # here: only when mirrors are configured

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"invalid mirror: {url!r} (an http:// or https:// URL is needed)")
    if parts.query or parts.fragment:
        raise InvalidArgument(f"invalid mirror: {url!r} (no query or fragment allowed)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _str_list(d: Mapping[str, Any], key: str) -> list[str]:
    v = d.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{key} must be a list of strings")
    return list(v)


def _validate_insecure(entry: str) -> None:
    if "://" in entry:
        raise InvalidArgument(f"insecure registry {entry} should not contain '://'")
    if "/" in entry:
        import ipaddress

        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise InvalidArgument(f"insecure registry {entry} is not a valid CIDR or host") from None


def _addresses(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    import ipaddress
    import socket

    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    if name == "localhost":
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    return out
