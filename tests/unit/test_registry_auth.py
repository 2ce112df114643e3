"""The credentials file (auths, credsStore, credHelpers) with a fake docker-credential helper."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.errors import FailedPrecondition
from dockyard.registry.auth import DOCKER_HUB_KEY, load_credentials, server_key
from dockyard.registry.config import RegistryConfig

HELPER = r'''#!/bin/sh
# A fake docker-credential helper keeping one JSON file per server in $HELPER_DIR.
set -e
action="$1"
input=$(cat)
case "$action" in
  store)
    key=$(printf '%s' "$input" | python3 -c 'import json,sys,hashlib; print(hashlib.md5(json.load(sys.stdin)["ServerURL"].encode()).hexdigest())')
    printf '%s' "$input" > "$HELPER_DIR/$key" ;;
  get)
    key=$(printf '%s' "$input" | python3 -c 'import sys,hashlib; print(hashlib.md5(sys.stdin.read().encode()).hexdigest())')
    if [ -f "$HELPER_DIR/$key" ]; then cat "$HELPER_DIR/$key"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase)
    key=$(printf '%s' "$input" | python3 -c 'import sys,hashlib; print(hashlib.md5(sys.stdin.read().encode()).hexdigest())')
    rm -f "$HELPER_DIR/$key" ;;
esac
'''


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "docker-credential-test"
    prog.write_text(HELPER)
    prog.chmod(0o755)
    store = tmp_path / "helper-store"
    store.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("HELPER_DIR", str(store))
    return store


def conf(tmp_path: Path) -> RegistryConfig:
    return RegistryConfig(credentials_path=str(tmp_path / "docker" / "config.json"))


def test_save_get_erase_in_the_file(tmp_path: Path) -> None:
    c = conf(tmp_path)
    path = Path(c.credentials_path)
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {}, "psFormat": "table {{.ID}}"}))
    store = load_credentials(c)
    assert store.get("localhost:5000") is None
    store.save("localhost:5000", "alice", "pa:ss")
    store.save("docker.io", "bob", "pw")
    doc = json.loads(path.read_text())
    assert doc["psFormat"] == "table {{.ID}}"
    assert base64.b64decode(doc["auths"]["localhost:5000"]["auth"]) == b"alice:pa:ss"
    assert DOCKER_HUB_KEY in doc["auths"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_credentials(c)
    assert again.get("localhost:5000") == ("alice", "pa:ss")
    assert again.get("registry-1.docker.io") == ("bob", "pw")
    assert again.get("index.docker.io") == ("bob", "pw")
    assert again.erase("localhost:5000") is True
    assert again.erase("localhost:5000") is False
    assert load_credentials(c).get("localhost:5000") is None
    assert load_credentials(c).get("docker.io") == ("bob", "pw")


def test_entries_keyed_by_url_and_username_password(tmp_path: Path) -> None:
    c = conf(tmp_path)
    Path(c.credentials_path).parent.mkdir()
    Path(c.credentials_path).write_text(json.dumps({"auths": {
        "https://reg.example:5000/v2/": {"username": "u", "password": "p"},
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:tok").decode()}}}))
    store = load_credentials(c)
    assert store.get("reg.example:5000") == ("u", "p")
    assert store.get("docker.io") == ("hub", "tok")
    assert server_key("https://reg.example:5000/v2/") == "reg.example:5000"


def test_missing_file_is_empty_and_save_creates_it(tmp_path: Path) -> None:
    c = conf(tmp_path)
    store = load_credentials(c)
    assert store.get("x:1") is None
    store.save("x:1", "u", "p")
    assert load_credentials(c).get("x:1") == ("u", "p")


def test_creds_store_helper(tmp_path: Path, helper: Path) -> None:
    c = conf(tmp_path)
    Path(c.credentials_path).parent.mkdir()
    Path(c.credentials_path).write_text(json.dumps({"credsStore": "test"}))
    store = load_credentials(c)
    assert store.get("localhost:5000") is None
    store.save("localhost:5000", "carol", "pw1")
    doc = json.loads(Path(c.credentials_path).read_text())
    assert doc["auths"] == {"localhost:5000": {}} and doc["credsStore"] == "test"
    assert len(list(helper.iterdir())) == 1
    assert load_credentials(c).get("localhost:5000") == ("carol", "pw1")
    assert load_credentials(c).erase("localhost:5000") is True
    assert list(helper.iterdir()) == []
    assert load_credentials(c).erase("localhost:5000") is False
    assert load_credentials(c).get("localhost:5000") is None


def test_cred_helpers_per_host(tmp_path: Path, helper: Path) -> None:
    c = conf(tmp_path)
    Path(c.credentials_path).parent.mkdir()
    Path(c.credentials_path).write_text(json.dumps({"credHelpers": {"reg.example": "test"}}))
    store = load_credentials(c)
    store.save("reg.example", "dave", "pw2")
    store.save("other.example", "erin", "pw3")
    doc = json.loads(Path(c.credentials_path).read_text())
    assert doc["auths"]["reg.example"] == {}
    assert "auth" in doc["auths"]["other.example"]
    assert store.uses_helper("reg.example") and not store.uses_helper("other.example")
    assert load_credentials(c).get("reg.example") == ("dave", "pw2")


def test_missing_helper_is_a_clear_error(tmp_path: Path) -> None:
    c = conf(tmp_path)
    Path(c.credentials_path).parent.mkdir()
    Path(c.credentials_path).write_text(json.dumps({"credsStore": "nonexistent-xyz"}))
    with pytest.raises(FailedPrecondition) as e:
        load_credentials(c).get("localhost:5000")
    assert "docker-credential-nonexistent-xyz" in str(e.value)
