"""HTTP proxies for registry traffic: daemon.json `proxies` or HTTP(S)_PROXY / NO_PROXY.

Chosen per request as Go's httpproxy does (so as Docker): NO_PROXY entries are host names
(`example.com` also matches its subdomains, `.example.com` only them), `host:port`, IP
addresses, CIDRs or `*`; loopback hosts are never proxied (unless `proxy_loopback`, for tests).
https goes through a CONNECT tunnel; plain http is sent to the proxy in absolute form.
"""

from __future__ import annotations

import os

from .._record import dataclass
from ..errors import InvalidArgument
from .config import RegistryConfig, split_host_port

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from typing import Mapping


@dataclass(frozen=True)
class Proxy:
    netloc: str  # host:port of the proxy
    authorization: str | None = None  # "Basic …" from the proxy URL's user info

    @classmethod
    def parse(cls, url: str) -> "Proxy":
        from urllib.parse import unquote, urlsplit  # here: only when a proxy is set

        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise InvalidArgument(f"unsupported proxy {url!r}: an http:// proxy URL is needed")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        auth = None
        if parts.username is not None:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            import base64

            auth = "Basic " + base64.b64encode(cred.encode()).decode()
        return cls(f"{host}:{parts.port or 80}", auth)


@dataclass(frozen=True)
class ProxySettings:
    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()
    loopback: bool = False

    @classmethod
    def resolve(cls, config: RegistryConfig,
                env: Mapping[str, str] | None = None) -> "ProxySettings":
        """The config's proxies, else the environment's (upper case first, as Go)."""
        e = os.environ if env is None else env

        def pick(value: str | None, name: str) -> str:
            if value is not None:
                return value
            return e.get(name.upper()) or e.get(name.lower()) or ""

        http = pick(config.http_proxy, "http_proxy")
        https = pick(config.https_proxy, "https_proxy")
        no = pick(config.no_proxy, "no_proxy")
        return cls(Proxy.parse(http) if http else None, Proxy.parse(https) if https else None,
                   tuple(x.strip().lower() for x in no.split(",") if x.strip()),
                   config.proxy_loopback)

    def proxy_for(self, scheme: str, netloc: str) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None:
            return None
        host, port = split_host_port(netloc.lower())
        port = port or (443 if scheme == "https" else 80)
        ip = _ip(host)
        if not self.loopback and (host == "localhost" or (ip is not None and ip.is_loopback)):
            return None
        for entry in self.no_proxy:
            if _matches(entry, host, port, ip):
                return None
        return proxy


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    import ipaddress  # here: only when a proxy is set

    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _matches(entry: str, host: str, port: int,
             ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    if entry == "*":
        return True
    if "/" in entry:
        import ipaddress

        try:
            return ip is not None and ip in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    ehost, eport = split_host_port(entry)
    if eport is not None and eport != port:
        return False
    if ip is not None or _ip(ehost) is not None:
        return _ip(ehost) == ip
    if ehost.startswith("*."):
        ehost = ehost[1:]
    if ehost.startswith("."):
        return host.endswith(ehost)
    return host == ehost or host.endswith("." + ehost)
