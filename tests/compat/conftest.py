"""Docker's own clients against `dockyard serve`: the server fixture and client helpers.

The server runs as a subprocess on a unix socket in a temporary directory, over the test data
root (DOCKYARD_ROOT/RUNROOT set by tests/conftest.py), and is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest


def _root_conftest():  # type: ignore[no-untyped-def]
    """tests/conftest.py's helpers. Test modules here import `conftest`, which names this file
    once pytest loaded it, so the root's helpers are re-exported from here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_dockyard_tests_conftest", Path(__file__).parent.parent / "conftest.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


_root = _root_conftest()
dy = _root.dy
BUSYBOX_TAR: str = _root.BUSYBOX_TAR
TEST_ROOT: str = _root.TEST_ROOT
TEST_RUNROOT: str = _root.TEST_RUNROOT
IS_ROOT: bool = _root.IS_ROOT

DOCKER = "/usr/local/bin/docker"


@dataclass
class ApiServer:
    sock: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def start_server(directory: Path, *extra: str) -> ApiServer:
    """Start `dockyard serve -H unix://<directory>/d.sock` and wait until it answers."""
    sock = directory / "d.sock"
    log = directory / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", "-H", f"unix://{sock}", *extra],
                                stdout=out, stderr=subprocess.STDOUT)
    srv = ApiServer(sock, log, proc)
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            srv.stop()
            raise AssertionError(f"dockyard serve did not start:\n{srv.log_text()}")
        time.sleep(0.05)
    return srv


@pytest.fixture(scope="session")
def api_server(busybox: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_server(tmp_path_factory.mktemp("api"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def docker_host(api_server: ApiServer) -> str:
    return api_server.url


@dataclass
class DockerCLI:
    host: str
    config: str

    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=self.config)

    def __call__(self, *args: str, input: bytes | str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True, timeout=timeout,
                           env=self.env())
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def out(self, *args: str, **kw: object) -> str:
        return self(*args, **kw).stdout.strip()  # type: ignore[arg-type]


@pytest.fixture
def docker_cli(docker_host: str, tmp_path_factory: pytest.TempPathFactory) -> DockerCLI:
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed at /usr/local/bin/docker")
    return DockerCLI(docker_host, str(tmp_path_factory.mktemp("docker-config")))


@pytest.fixture
def names(docker_host: str) -> Iterator[list[str]]:
    """Container names made by a test; removed (forcibly) afterwards through the CLI."""
    made: list[str] = []
    yield made
    if made:
        dy("rm", "-f", *made)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
