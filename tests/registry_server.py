"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

`Registry.start(tmp, tls=..., htpasswd=..., token=...)` writes a config, starts
`docker-registry serve` on a free port, waits until it answers, and `stop()` ends it by PID.
Its access log (Apache combined format, on stdout) is in `access_log`, so tests can see 206s.
`make_ca`/`make_cert` make a CA and server or client certificates with `openssl`;
`TokenServer` is a small token issuer (RS256 JWTs signed by `openssl dgst`, the cert in the
header's x5c) that counts its requests; `FlakyProxy` sits in front of a registry to answer
503s, redirect blobs to another host name, or cut a download in half.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
HTPASSWD_BIN = shutil.which("htpasswd")

needs_registry = pytest.mark.skipif(
    not os.path.exists(REGISTRY_BIN), reason="docker-registry (Debian package) is not installed")
needs_htpasswd = pytest.mark.skipif(
    HTPASSWD_BIN is None, reason="htpasswd (apache2-utils) is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class CA:
    cert: Path
    key: Path


def make_ca(d: Path, name: str = "dockyard-test-ca") -> CA:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", f"/CN={name}", cwd=d)
    return CA(d / "ca.crt", d / "ca.key")


def make_cert(ca: CA, d: Path, name: str = "server", client: bool = False) -> tuple[Path, Path]:
    """A server (or client) certificate for 127.0.0.1 / localhost signed by `ca`."""
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                   f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
             cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


def make_htpasswd(path: Path, users: dict[str, str]) -> Path:
    lines = []
    for user, password in users.items():
        out = subprocess.run([HTPASSWD_BIN or "htpasswd", "-Bbn", user, password], check=True,
                             capture_output=True, text=True).stdout.strip()
        lines.append(out)
    path.write_text("\n".join(lines) + "\n")
    return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry tokens for any requested scope to known users (or anyone if
    `users` is None); `requests` records (account, scopes) of every token request."""

    def __init__(self, d: Path, users: dict[str, str] | None, service: str = "dockyard-test",
                 issuer: str = "dockyard-test-issuer", ttl: int = 300) -> None:
        self.dir = d
        self.users = users
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.requests: list[tuple[str | None, list[str]]] = []
        d.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out",
                 "token.crt", "-days", "2", "-subj", "/CN=dockyard-test-token", cwd=d)
        self.cert = d / "token.crt"
        self.key = d / "token.key"
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ts = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                scopes = q.get("scope", [])
                account = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if ts.users is not None and ts.users.get(user) != pw:
                        ts.requests.append((user, scopes))
                        return self._send(401, {"details": "incorrect username or password"})
                    account = user
                elif ts.users is not None:
                    ts.requests.append((None, scopes))
                    return self._send(401, {"details": "authentication required"})
                ts.requests.append((account, scopes))
                access = []
                for s in scopes:
                    typ, _, rest = s.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": typ, "name": name, "actions": actions.split(",")})
                now = int(time.time())
                token = ts.sign({"iss": ts.issuer, "sub": account or "", "aud": ts.service,
                                 "exp": now + ts.ttl, "nbf": now - 10, "iat": now,
                                 "jti": os.urandom(8).hex(), "access": access})
                self._send(200, {"token": token, "access_token": token, "expires_in": ts.ttl})

            def _send(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Registry:
    dir: Path
    port: int
    scheme: str
    proc: subprocess.Popen | None = None
    storage: Path = field(init=False)
    access_log: Path = field(init=False)
    error_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.storage = self.dir / "storage"
        self.access_log = self.dir / "access.log"
        self.error_log = self.dir / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @classmethod
    def start(cls, d: Path, tls: tuple[Path, Path] | None = None, htpasswd: Path | None = None,
              token: TokenServer | None = None, proxy_remote: str | None = None,
              client_ca: Path | None = None) -> "Registry":
        d.mkdir(parents=True, exist_ok=True)
        reg = cls(d, free_port(), "https" if tls else "http")
        lines = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: false",
                 "storage:", "  filesystem:", f"    rootdirectory: {reg.storage}",
                 "  delete:", "    enabled: true", "  maintenance:", "    uploadpurging:",
                 "      enabled: false", "http:", f"  addr: 127.0.0.1:{reg.port}",
                 f"  secret: {os.urandom(16).hex()}"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
            if client_ca:
                lines += ["    clientcas:", f"      - {client_ca}"]
        if htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: dockyard-test", f"    path: {htpasswd}"]
        elif token:
            lines += ["auth:", "  token:", f"    realm: {token.realm}", f"    service: {token.service}",
                      f"    issuer: {token.issuer}", f"    rootcertbundle: {token.cert}"]
        if proxy_remote:
            lines += ["proxy:", f"  remoteurl: {proxy_remote}"]
        cfg = d / "config.yml"
        cfg.write_text("\n".join(lines) + "\n")
        out = open(reg.access_log, "wb")
        err = open(reg.error_log, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        reg.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        out.close()
        err.close()
        try:
            reg._wait()
        except BaseException:
            reg.stop()
            raise
        return reg

    def _wait(self) -> None:
        if self.scheme == "https":  # a TLS handshake is enough (client certs may be required)
            self._wait_port()
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.error_log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer within 15 s")

    def _wait_port(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.error_log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not listen within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def blob_data_path(self, repository: str, digest: str) -> Path:
        hexd = digest.partition(":")[2]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data")

    def access_lines(self) -> list[str]:
        return self.access_log.read_text(errors="replace").splitlines()


class FlakyProxy:
    """Forwards to the registry `target`; with `fail_first`, answers 503 to the first try of
    every request (but /v2/); with `redirect_blobs`, answers blob GETs with a 307 to the
    registry itself (as a registry that keeps blobs in object storage); with `cut_blobs`, the
    first GET of each blob sends half of it and drops the connection; the first `fail_puts`
    upload PUTs get a 502. `ranges` lists the Range headers that came. It is also a forward
    proxy: absolute-form requests are passed on, CONNECT opens a tunnel (`connects`)."""

    def __init__(self, target: str, fail_first: bool = False, redirect_blobs: bool = False,
                 cut_blobs: bool = False, fail_puts: int = 0) -> None:
        self.seen: dict[str, int] = {}
        self.redirected: list[str] = []
        self.ranges: list[str] = []
        self.failed_puts: list[str] = []
        self.connects: list[str] = []
        self.proxy_auth: list[str | None] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                key = f"{self.command} {self.path}"
                proxy.seen[key] = proxy.seen.get(key, 0) + 1
                if self.headers.get("Proxy-Authorization"):
                    proxy.proxy_auth.append(self.headers["Proxy-Authorization"])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "PUT" and "/blobs/uploads/" in self.path and fail_puts > len(
                        [k for k in proxy.failed_puts]):
                    proxy.failed_puts.append(key)
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fail_first and proxy.seen[key] == 1 and self.path != "/v2/":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if redirect_blobs and self.path == "/v2/" and not self.headers.get("Authorization"):
                    self.send_response(401)  # ask for Basic credentials (not checked)
                    self.send_header("WWW-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.startswith("/storage/"):
                    if self.headers.get("Authorization"):
                        self.send_response(400)  # "object storage" must not see registry creds
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.path = self.path[len("/storage"):]
                elif redirect_blobs and self.command == "GET" and "/blobs/sha256:" in self.path:
                    proxy.redirected.append(key)
                    self.send_response(307)  # another host name for the same server
                    self.send_header("Location", f"http://localhost:{self.server.server_address[1]}"
                                                 f"/storage{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("Range"):
                    proxy.ranges.append(self.headers["Range"])
                conn = http.client.HTTPConnection(target)
                headers = dict(self.headers.items())  # Host kept: Locations name the proxy
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                length = r.getheader("Content-Length") if self.command == "HEAD" else len(data)
                self.send_header("Content-Length", str(length or 0))
                self.end_headers()
                conn.close()
                if self.command == "HEAD":
                    return
                if (cut_blobs and self.command == "GET" and "/blobs/sha256:" in self.path
                        and proxy.seen[key] == 1 and len(data) > 1):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def do_CONNECT(self) -> None:  # a forward proxy's tunnel, for https
                proxy.connects.append(self.path)
                proxy.proxy_auth.append(self.headers.get("Proxy-Authorization"))
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True

                def pipe(src: socket.socket, dst: socket.socket) -> None:
                    try:
                        while data := src.recv(65536):
                            dst.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for s in (src, dst):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass

                t = threading.Thread(target=pipe, args=(upstream, self.connection), daemon=True)
                t.start()
                pipe(self.connection, upstream)
                t.join(5)
                upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_or_skip(d: Path, users: dict[str, str] | None = None) -> Registry:
    """A registry in `d` for a test that needs one (htpasswd auth for `users`, if given), or
    the test is skipped when Debian's docker-registry (or, for `users`, htpasswd) is missing."""
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry (Debian package) is not installed")
    if users and HTPASSWD_BIN is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    htpasswd = make_htpasswd(d.parent / f"{d.name}.htpasswd", users) if users else None
    return Registry.start(d, htpasswd=htpasswd)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def registry_dir(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("registry")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def plain_registry(registry_dir: Path):
    reg = Registry.start(registry_dir / "plain")
    yield reg
    reg.stop()
