"""The article's example, runnable: `dockyard build -t flaskdemo examples/flask`, then run it.

The base image python:3.7.12-slim is made offline by scripts/make-python-base.sh (Debian bookworm
with python3-flask; the tar is cached in /var/cache/dockyard) and imported into the test root.
As in the article, the app is published with `-p 8088:1234`: its routes answer on the host's
127.0.0.1:8088, on the container's own address at 1234, and by name from a user network.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import IS_ROOT, REPO, dy

BASE_TAR = "/var/cache/dockyard/python-base.tar"
BASE_IMAGE = "python:3.7.12-slim"
EXAMPLE = REPO / "examples" / "flask"
IMAGE = "flaskdemo"

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root: builds and starts real containers")


def _fetch(name: str, path: str, wait: float = 20.0) -> str:
    """GET http://127.0.0.1:1234{path} from inside the container, retrying while Flask starts."""
    code = ("import urllib.request;"
            f"print(urllib.request.urlopen('http://127.0.0.1:1234{path}', timeout=5).read().decode())")
    deadline = time.monotonic() + wait
    while True:
        p = dy("exec", name, "python", "-c", code)
        if p.returncode == 0:
            return p.stdout
        if time.monotonic() > deadline:
            logs = dy("logs", name)
            raise AssertionError(f"GET {path} in {name} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                                 f"container logs:\n{logs.stdout}\n{logs.stderr}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def python_base() -> str:
    """python:3.7.12-slim in the test root, from the cached Debian tar (built once, ~40 s)."""
    p = subprocess.run([str(REPO / "scripts" / "make-python-base.sh"), BASE_TAR],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"make-python-base.sh failed:\n{p.stdout}\n{p.stderr}"
    if dy("image", "inspect", BASE_IMAGE).returncode != 0:
        dy("import", BASE_TAR, BASE_IMAGE,
           "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "-c", 'CMD ["python3"]', check=True, timeout=300)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def built(python_base: str):
    """`dockyard build -t flaskdemo examples/flask`; removes the image afterwards."""
    h = dy("build", "--help")
    if h.returncode != 0:
        pytest.skip("dockyard build is not available yet: "
                    + ((h.stderr or h.stdout).strip().splitlines() or ["no output"])[-1])
    p = dy("build", "-t", IMAGE, str(EXAMPLE), timeout=600)
    try:
        assert p.returncode == 0, f"dockyard build -t {IMAGE} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        yield p
    finally:
        dy("rmi", "-f", IMAGE)


@pytest.fixture(scope="module")
def app(built):
    """A detached flaskdemo container running the image's CMD (python app.py)."""
    name = f"flaskdemo-test-{os.getpid()}"
    try:
        dy("run", "-d", "--name", name, "-p", "8088:1234", IMAGE, check=True)
        yield name
    finally:
        dy("rm", "-f", name)


def test_base_image_has_flask(python_base):
    p = dy("run", "--rm", "--network", "none", python_base, "python", "-c",
           "import flask; print(flask.__version__)", check=True)
    assert p.stdout.strip().startswith("2."), p.stdout


def test_build_runs_pip_offline_and_tags_the_image(built):
    out = built.stdout + built.stderr
    assert "Requirement already satisfied: flask" in out, out
    ls = dy("image", "ls", check=True).stdout
    assert any(line.split()[:2] == [IMAGE, "latest"] for line in ls.splitlines()), ls


def test_image_config_follows_the_dockerfile(built):
    fmt = "{{json .Config.Cmd}} {{.Config.WorkingDir}} {{json .Config.Labels}} {{json .Config.ExposedPorts}}"
    out = dy("image", "inspect", "--format", fmt, IMAGE, check=True).stdout
    assert '["python","app.py"]' in out, out
    assert " /app " in out, out
    assert '"maintainer":"flask_demo"' in out, out
    assert '"1234/tcp"' in out, out
    env = dy("image", "inspect", "--format", "{{json .Config.Env}}", IMAGE, check=True).stdout
    assert "APP_VERSION=latest" in env, env


def test_container_runs_python_app_py(app):
    ps = dy("ps", "--no-trunc", "--filter", f"name={app}", check=True).stdout
    assert "python app.py" in ps, ps


def test_hello_route(app):
    out = _fetch(app, "/hello?name=Dockyard")
    assert "<h1>Hello, Dockyard!</h1>" in out, out
    assert "<p>Method: GET</p>" in out and "<p>Url: /hello</p>" in out, out


def test_hello_escapes_its_argument(app):
    out = _fetch(app, "/hello?name=%3Cb%3E")
    assert "<h1>Hello, &lt;b&gt;!</h1>" in out, out


def test_index_route(app):
    assert "<h1>Index Page</h1>" in _fetch(app, "/")


def test_workdir_holds_the_build_context(app):
    out = dy("exec", app, "sh", "-c", "pwd; ls", check=True).stdout.split()
    assert out[0] == "/app", out
    assert {"Dockerfile", "app.py", "requirements.txt"} <= set(out[1:]), out


def test_inspect_state_pid(app):
    pid = dy("inspect", "--format", "{{.State.Pid}}", app, check=True).stdout.strip()
    assert pid.isdigit() and int(pid) > 0, pid
    assert os.path.exists(f"/proc/{pid}/ns/pid")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmd = f.read().split(b"\0")
    assert b"app.py" in cmd, cmd


def _host_get(url: str, wait: float = 20.0) -> str:
    import urllib.request

    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_published_port_8088_answers_on_the_host(app):
    _fetch(app, "/")  # up
    out = _host_get("http://127.0.0.1:8088/hello")
    assert "<h1>Hello, " in out and "<p>Url: /hello</p>" in out, out
    assert dy("port", app, check=True).stdout.strip() == "1234/tcp -> 0.0.0.0:8088"


def test_container_ip_answers_on_1234(app):
    _fetch(app, "/")
    ip = dy("inspect", "--format", "{{.NetworkSettings.IPAddress}}", app, check=True).stdout.strip()
    assert "<h1>Index Page</h1>" in _host_get(f"http://{ip}:1234/")


def test_user_network_fetches_by_container_name(built, python_base):
    net = f"flasknet-{os.getpid()}"
    name = f"flaskweb-{os.getpid()}"
    dy("network", "create", net, check=True)
    try:
        dy("run", "-d", "--name", name, "--network", net, IMAGE, check=True)
        code = ("import time,urllib.request\n"
                "for i in range(100):\n"
                "    try:\n"
                f"        print(urllib.request.urlopen('http://{name}:1234/hello?name=net', timeout=5).read().decode()); break\n"
                "    except OSError: time.sleep(0.2)\n")
        p = dy("run", "--rm", "--network", net, python_base, "python", "-c", code, check=True)
        assert "<h1>Hello, net!</h1>" in p.stdout, p.stdout
    finally:
        dy("rm", "-f", name)
        dy("network", "rm", net)
