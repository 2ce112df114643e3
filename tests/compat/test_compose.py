"""docker-compose 1.29 (Debian's, over the Docker SDK) against `dockyard serve`: a two-service
project with a build, a published port, a named volume and a user network; `up -d`, `ps`,
`logs`, `exec -T`, `run --rm`, `up` again (up-to-date, then --force-recreate), `down -v --rmi
local`, after which nothing of the project is left. The build goes through the docker CLI
(compose's default) and through compose's own SDK call.

busybox-static's wget crashes on name lookups (glibc NSS), so connectivity is checked by
address and names with `nslookup`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
DOCKER = "/usr/local/bin/docker"

pytestmark = pytest.mark.skipif(not os.path.exists(COMPOSE),
                                reason="docker-compose is not installed (Debian package docker-compose)")

WEB_DOCKERFILE = """FROM busybox
RUN mkdir -p /www
CMD ["sh", "-c", "echo hello-compose > /www/index.html && echo web-started && exec httpd -f -p 8000 -h /www"]
"""

COMPOSE_FILE = """version: "3.7"
services:
  web:
    build: ./web
    ports:
      - "127.0.0.1:{port}:8000"
    volumes:
      - data:/www
    networks:
      - appnet
  client:
    image: busybox
    command: ["sleep", "300"]
    networks:
      - appnet
volumes:
  data:
networks:
  appnet:
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Project:
    def __init__(self, host: str, directory: Path, name: str, cli_build: bool) -> None:
        self.dir, self.name = directory, name
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0",
                    "COMPOSE_DOCKER_CLI_BUILD": "1" if cli_build else "0",
                    "DOCKER_CONFIG": str(directory / ".docker")}

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([COMPOSE, "-p", self.name, *args], cwd=self.dir, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def docker(self, *args: str) -> str:
        p = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"docker {' '.join(args)}: {p.stderr}"
        return p.stdout


@pytest.mark.parametrize("cli_build", [True, False], ids=["docker-cli-build", "sdk-build"])
def test_two_service_project(docker_host: str, tmp_path: Path, cli_build: bool) -> None:
    port = _free_port()
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    proj = Project(docker_host, tmp_path, f"dy{uuid.uuid4().hex[:8]}", cli_build)
    label = f"label=com.docker.compose.project={proj.name}"
    try:
        proj.compose("up", "-d")
        ps = proj.compose("ps").stdout
        assert f"{proj.name}_web_1" in ps and f"{proj.name}_client_1" in ps
        assert ps.count(" Up ") == 2, ps
        assert f"127.0.0.1:{port}->8000/tcp" in ps

        web_ip = proj.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                             f"{proj.name}_web_1").strip()
        client_ip = proj.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                f"{proj.name}_client_1").strip()
        assert web_ip and client_ip and web_ip != client_ip
        got, why = "", ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # httpd starts right after the container does
            ran = proj.compose("exec", "-T", "client", "wget", "-q", "-O", "-", f"http://{web_ip}:8000/",
                               check=False)
            got, why = ran.stdout, f"exit {ran.returncode}: {ran.stderr.strip()[-300:]}"
            if got:
                break
            time.sleep(0.2)
        assert got == "hello-compose\n", why
        lookup = proj.compose("exec", "-T", "client", "nslookup", "web").stdout
        assert web_ip in lookup, lookup
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.read() == b"hello-compose\n"
        logs = proj.compose("logs", "--no-color", "web").stdout
        assert "web-started" in logs
        assert proj.compose("run", "--rm", "-T", "client", "echo", "ran-ok").stdout == "ran-ok\n"
        again = proj.compose("up", "-d")
        assert f"{proj.name}_web_1 is up-to-date" in again.stderr, again.stderr
        # recreating reads the image's ContainerConfig (Docker >= 25 broke this for compose 1.29)
        proj.compose("up", "-d", "--force-recreate")
        assert proj.compose("ps").stdout.count(" Up ") == 2
        assert proj.compose("exec", "-T", "web", "cat", "/www/index.html").stdout == "hello-compose\n"
    finally:
        down = proj.compose("down", "-v", "--rmi", "local", check=False)
    assert down.returncode == 0, down.stderr
    assert proj.docker("ps", "-aq", "--filter", label).strip() == ""
    assert proj.docker("volume", "ls", "-q", "--filter", label).strip() == ""
    assert proj.docker("network", "ls", "-q", "--filter", label).strip() == ""
    assert f"{proj.name}_web" not in proj.docker("images", "--format", "{{.Repository}}")
