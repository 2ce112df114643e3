"""Registry credentials in a `~/.docker/config.json`-compatible file.

`auths` entries hold `auth` (base64 "user:password") or `username`/`password`;
`credHelpers` (per host) and `credsStore` (default) name `docker-credential-<name>` programs
spoken to with the docker-credential-helpers protocol (`get`/`store`/`erase` on stdin/stdout).
Docker Hub's key is `https://index.docker.io/v1/`.
"""

from __future__ import annotations

import os

from .._record import dataclass
from .._util import atomic_write
from ..errors import FailedPrecondition, InvalidArgument
from .config import DOCKER_HUB, RegistryConfig, canonical_registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # Credentials: a structural interface for type checkers


DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_NOT_FOUND = "credentials not found in native keychain"


class Credentials(Protocol):
    """Anything that answers `get(host) -> (user, password) | None`."""

    def get(self, host: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class StaticCredentials:
    """Fixed credentials for every host (used by `login` before anything is saved)."""

    username: str
    password: str

    def get(self, host: str) -> tuple[str, str] | None:
        return (self.username, self.password)


def server_key(host: str) -> str:
    """The key a host's credentials are stored under (Docker Hub's legacy URL for docker.io)."""
    h = host_of(host)
    return DOCKER_HUB_KEY if canonical_registry(h) == DOCKER_HUB else h


def host_of(key: str) -> str:
    """`https://host:5000/v2/` → `host:5000` (Docker's ConvertToHostname)."""
    k = key
    for prefix in ("https://", "http://"):
        if k.startswith(prefix):
            k = k[len(prefix):]
    return k.split("/", 1)[0]


class CredentialStore:
    """The credentials file (read once, re-read before each write) plus its helpers."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path = path
        self._data = data

    # --- reading ------------------------------------------------------------------------
    def _helper_for(self, key: str) -> str | None:
        helpers = self._data.get("credHelpers") or {}
        host = host_of(key)
        for k, v in helpers.items():
            if host_of(k) == host or (key == DOCKER_HUB_KEY and server_key(k) == key):
                return str(v)
        store = self._data.get("credsStore")
        return str(store) if store else None

    def uses_helper(self, host: str) -> bool:
        """True when `host`'s credentials are kept by a docker-credential helper."""
        return self._helper_for(server_key(host)) is not None

    def _auth_entry(self, key: str) -> tuple[str, dict[str, Any]] | None:
        auths = self._data.get("auths") or {}
        if key in auths:
            return key, auths[key]
        for k, v in auths.items():
            if server_key(k) == key:
                return k, v
        return None

    def get(self, host: str) -> tuple[str, str] | None:
        key = server_key(host)
        helper = self._helper_for(key)
        if helper:
            got = _run_helper(helper, "get", key)
            if got is not None:
                import json

                try:
                    doc = json.loads(got)
                    user, secret = str(doc.get("Username", "")), str(doc.get("Secret", ""))
                except (ValueError, AttributeError):
                    raise FailedPrecondition(
                        f"docker-credential-{helper} get: invalid answer for {key}") from None
                if user or secret:
                    return (user, secret)
            # Docker falls back to the file when a helper knows nothing
        found = self._auth_entry(key)
        if found is None:
            return None
        entry = found[1] or {}
        if entry.get("auth"):
            import base64

            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument(f"{self.path}: invalid auth entry for {key}") from None
            return (user, password)
        if entry.get("username"):
            return (str(entry["username"]), str(entry.get("password", "")))
        return None

    # --- writing ------------------------------------------------------------------------
    def save(self, host: str, user: str, password: str) -> None:
        key = server_key(host)
        self._reload()
        helper = self._helper_for(key)
        auths = self._data.setdefault("auths", {})
        old = self._auth_entry(key)
        if old is not None and old[0] != key:
            del auths[old[0]]
        import json

        if helper:
            payload = json.dumps({"ServerURL": key, "Username": user, "Secret": password})
            _run_helper(helper, "store", payload)
            auths[key] = {}
        else:
            import base64

            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            auths[key] = {"auth": token}
        self._write()

    def erase(self, host: str) -> bool:
        """Forget `host`'s credentials (in its helper too); False when the file had no entry
        for it (Docker's "Not logged in")."""
        key = server_key(host)
        self._reload()
        helper = self._helper_for(key)
        if helper:
            _run_helper(helper, "erase", key)
        auths = self._data.get("auths") or {}
        removed = False
        for k in [k for k in auths if server_key(k) == key]:
            del auths[k]
            removed = True
        if removed:
            self._write()
        return removed

    def _reload(self) -> None:
        self._data = _read_file(self.path)

    def _write(self) -> None:
        import json

        text = json.dumps(self._data, indent="\t") + "\n"
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        atomic_write(self.path, text, mode=0o600)


def load_credentials(config: RegistryConfig) -> CredentialStore:
    return CredentialStore(config.credentials_path, _read_file(config.credentials_path))


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise FailedPrecondition(f"cannot read {path}: {e.strerror}") from None
    if not raw.strip():
        return {}
    import json  # here: most users of a local registry have no credentials file

    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"{path}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: not a JSON object")
    return doc


def _run_helper(name: str, action: str, stdin: str) -> str | None:
    """Run `docker-credential-NAME ACTION`; None when it reports no credentials."""
    import subprocess

    prog = f"docker-credential-{name}"
    try:
        p = subprocess.run([prog, action], input=stdin.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise FailedPrecondition(
            f"{prog} not found in PATH (named by credsStore/credHelpers in the docker config)"
        ) from None
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"{prog} {action}: timed out") from None
    out = p.stdout.decode(errors="replace").strip()
    if p.returncode != 0:
        msg = out or p.stderr.decode(errors="replace").strip()
        if action == "get" and _HELPER_NOT_FOUND in msg:
            return None
        if action == "erase" and _HELPER_NOT_FOUND in msg:
            return None
        raise FailedPrecondition(f"{prog} {action}: {msg or f'exit status {p.returncode}'}")
    return out
