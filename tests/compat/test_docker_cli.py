"""The real docker CLI (28) against `dockyard serve`: containers, exec, logs, cp, stats, events,
ports and networks, and a server restart that leaves containers running."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import DOCKER, DockerCLI, dy, start_server, uniq


def test_version_and_info(docker_cli: DockerCLI) -> None:
    out = docker_cli.out("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
    assert out == "1.45 linux"
    info = docker_cli.out("info", "--format", "{{.Driver}} {{.CgroupDriver}} {{.OSType}} {{.DefaultRuntime}}")
    assert info == "overlay2 cgroupfs linux dockyard"
    assert "Storage Driver: overlay2" in docker_cli.out("info")


def test_run_rm_echo(docker_cli: DockerCLI) -> None:
    p = docker_cli("run", "--rm", "busybox", "echo", "hi")
    assert p.stdout == "hi\n"
    p = docker_cli("run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "", "oops\n")
    p = docker_cli("run", "--rm", "busybox", "no-such-command", check=False)
    assert p.returncode == 127 and "executable file not found" in p.stderr


def test_detached_lifecycle(docker_cli: DockerCLI, names: list[str]) -> None:
    name = uniq("api-life")
    names.append(name)
    cid = docker_cli.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                         "echo one; sleep 0.5; echo two >&2; sleep 60")
    assert len(cid) == 64
    assert name in docker_cli.out("ps", "--format", "{{.Names}}")
    pid = int(docker_cli.out("inspect", "--format", "{{.State.Pid}}", name))
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    top = docker_cli.out("top", name)
    assert "PID" in top and "sleep" in top
    deadline = time.monotonic() + 10
    while "two" not in docker_cli("logs", name).stderr and time.monotonic() < deadline:
        time.sleep(0.1)
    p = docker_cli("logs", name)
    assert (p.stdout, p.stderr) == ("one\n", "two\n")
    assert docker_cli.out("logs", "--tail", "1", name) == ""  # the last line went to stderr
    docker_cli("stop", "-t", "1", name)
    assert docker_cli.out("inspect", "--format", "{{.State.Status}}", name) == "exited"
    docker_cli("rm", name)
    assert name not in docker_cli.out("ps", "-a", "--format", "{{.Names}}")


def test_ps_columns_and_changes_from_another_process(docker_cli: DockerCLI, names: list[str]) -> None:
    """`docker ps` as against Docker, and a listing that follows what another process (the
    dockyard CLI on the same data root) changes: the server caches parsed records."""
    import re

    prefix = uniq("api-ps")
    up, down = prefix + "-up", prefix + "-down"
    names.extend([up, down, down + "-b"])
    port = _free_port()
    docker_cli("run", "-d", "--name", up, "-p", f"127.0.0.1:{port}:80", "--label", "k=v", "busybox", "sleep", "60")
    docker_cli("run", "--name", down, "busybox", "sh", "-c", "exit 3", check=False)
    fmt = "{{.Names}}|{{.Image}}|{{.Command}}|{{.Status}}|{{.Ports}}|{{.State}}|{{.Networks}}|{{.Label \"k\"}}"

    def rows(*flags: str) -> list[list[str]]:
        out = docker_cli.out("ps", *flags, "--filter", f"name={prefix}", "--format", fmt)
        return [line.split("|") for line in out.splitlines()]

    got = rows()
    assert len(got) == 1 and got[0][:3] == [up, "busybox", '"sleep 60"']
    assert got[0][3].startswith("Up ") and got[0][4:] == [f"127.0.0.1:{port}->80/tcp", "running", "bridge", "v"]
    got = rows("-a")
    assert [r[0] for r in got] == [down, up]  # newest first
    assert re.fullmatch(r"Exited \(3\) .* ago", got[0][3]) and got[0][4:6] == ["", "exited"]
    table = docker_cli.out("ps", "-a", "--filter", f"name={prefix}").splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(table) == 3
    # another process changes the records: the server's next listing shows it
    dy("stop", "-t", "0", up, check=True)
    assert rows() == []
    assert re.fullmatch(r"Exited \(137\) .*", rows("-a")[1][3]) and rows("-a")[1][4] == ""
    dy("rename", down, down + "-b", check=True)
    assert [r[0] for r in rows("-a")] == [down + "-b", up]
    dy("rm", up, check=True)
    assert [r[0] for r in rows("-a")] == [down + "-b"]


def test_logs_follow_until_exit_and_wait(docker_cli: DockerCLI, names: list[str]) -> None:
    name = uniq("api-follow")
    names.append(name)
    docker_cli("run", "-d", "--name", name, "busybox", "sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.2; done; exit 7")
    p = docker_cli("logs", "-f", name, timeout=20)
    assert p.stdout == "l1\nl2\nl3\n"
    assert docker_cli.out("wait", name) == "7"


def _pty_session(docker_cli: DockerCLI, argv: list[str], lines: list[bytes], want: bytes) -> tuple[bytes, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(docker_cli.env())
        os.execv(DOCKER, [DOCKER, *argv])
    out = b""

    def read_for(seconds: float, until: bytes | None = None) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                out += data
                if until is not None and until in out:
                    return

    try:
        read_for(10, b"# ")
        for line in lines:
            os.write(fd, line)
            read_for(10, want if b"6*7" in line else b"# ")
        read_for(10)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_run_it_through_a_pty(docker_cli: DockerCLI) -> None:
    out, code = _pty_session(docker_cli, ["run", "-it", "--rm", "busybox", "sh"],
                             [b"echo $((6*7))\r", b"exit 5\r"], b"42")
    assert b"42" in out
    assert code == 5


class _Pty:
    """The docker CLI on a pseudo-terminal of a given size, driven step by step."""

    def __init__(self, docker_cli: DockerCLI, argv: list[str], rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.environ.update(docker_cli.env())
            os.execv(DOCKER, [DOCKER, *argv])
        self.out = b""

    def expect(self, want: bytes, seconds: float = 10) -> bytes:
        start = len(self.out)
        end = time.monotonic() + seconds
        while want not in self.out[start:] and time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                self.out += data
        assert want in self.out[start:], (want, self.out[-500:])
        return self.out[start:]

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def resize(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, seconds: float = 10) -> int:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                r, _, _ = select.select([self.fd], [], [], 0)
                if r:
                    self.out += os.read(self.fd, 4096)  # drain: the CLI never blocks on its output
            except OSError:
                pass
            got, status = os.waitpid(self.pid, os.WNOHANG)
            if got:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError(f"the docker CLI did not exit: {self.out[-500:]!r}")


def test_tty_size_resize_and_detach_keys(docker_cli: DockerCLI, names: list[str]) -> None:
    """run -it starts at the terminal's size and follows it (POST /containers/{id}/resize),
    ctrl-p ctrl-q detaches, `attach --detach-keys` takes other keys; exec -it likewise."""
    name = uniq("api-tty")
    names.append(name)
    t = _Pty(docker_cli, ["run", "-it", "--name", name, "busybox", "sh"], 33, 99)
    t.expect(b"# ")
    t.send(b"stty size\r")
    t.expect(b"33 99")
    t.resize(40, 120)
    time.sleep(0.5)  # SIGWINCH -> the CLI's resize request
    t.send(b"stty size\r")
    t.expect(b"40 120")
    t.send(b"\x10\x11")  # the default detach keys
    assert t.wait() == 0
    assert docker_cli.out("inspect", "-f", "{{.State.Running}}", name) == "true"
    t = _Pty(docker_cli, ["attach", "--detach-keys", "ctrl-x,x", name], 25, 80)
    time.sleep(0.5)
    t.send(b"echo again\r")
    t.expect(b"again")
    t.send(b"\x18x")
    assert t.wait() == 1 and t.out.endswith(b"read escape sequence\r\n")  # attach's detach: 1, as Docker's
    assert docker_cli.out("inspect", "-f", "{{.State.Running}}", name) == "true"
    t = _Pty(docker_cli, ["exec", "-it", name, "sh"], 21, 77)
    t.expect(b"# ")
    t.send(b"stty size\r")
    t.expect(b"21 77")
    t.resize(30, 90)
    time.sleep(0.5)  # POST /exec/{id}/resize
    t.send(b"stty size\r")
    t.expect(b"30 90")
    t.send(b"\x10\x11")  # exec's detach: 1, as Docker's; the shell runs on, listed in ExecIDs
    assert t.wait() == 1 and t.out.endswith(b"read escape sequence\r\n")
    assert docker_cli.out("inspect", "-f", "{{len .ExecIDs}}", name) == "1"
    docker_cli("rm", "-f", name)


def test_exec(docker_cli: DockerCLI, names: list[str]) -> None:
    name = uniq("api-exec")
    names.append(name)
    docker_cli("run", "-d", "--name", name, "busybox", "sleep", "60")
    p = docker_cli("exec", name, "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (4, "out\n", "err\n")
    assert docker_cli("exec", "-i", name, "cat", input="piped\n").stdout == "piped\n"
    assert docker_cli("exec", "-e", "X=1", "-w", "/tmp", name, "sh", "-c", "echo $X $PWD").stdout == "1 /tmp\n"
    p = docker_cli("exec", name, "nope", check=False)
    assert p.returncode == 127
    out, code = _pty_session(docker_cli, ["exec", "-it", name, "sh"], [b"echo $((6*7))\r", b"exit 3\r"], b"42")
    assert b"42" in out and code == 3
    docker_cli("rm", "-f", name)


def test_cp_both_ways_diff_export(docker_cli: DockerCLI, names: list[str], tmp_path: Path) -> None:
    name = uniq("api-cp")
    names.append(name)
    docker_cli("run", "-d", "--name", name, "busybox", "sleep", "60")
    src = tmp_path / "in.txt"
    src.write_text("hello from the host\n")
    docker_cli("cp", str(src), f"{name}:/tmp/")
    assert docker_cli.out("exec", name, "cat", "/tmp/in.txt") == "hello from the host"
    docker_cli("exec", name, "sh", "-c", "mkdir -p /data/sub && echo deep > /data/sub/f")
    docker_cli("cp", f"{name}:/data", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "f").read_text() == "deep\n"
    diff = docker_cli.out("diff", name).splitlines()
    assert "A /tmp/in.txt" in diff and "A /data" in diff
    tar = subprocess.run([DOCKER, "export", name], capture_output=True, env=docker_cli.env(), timeout=60)
    assert tar.returncode == 0
    listing = subprocess.run(["tar", "t"], input=tar.stdout, capture_output=True).stdout.decode().split()
    assert "bin/busybox" in listing and "tmp/in.txt" in listing
    docker_cli("rm", "-f", name)


def test_stats_no_stream(docker_cli: DockerCLI, names: list[str]) -> None:
    name = uniq("api-stats")
    names.append(name)
    docker_cli("run", "-d", "--name", name, "busybox", "sleep", "60")
    out = docker_cli.out("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", name)
    fields = out.split()
    assert fields[0] == name and fields[1] == "1" and "/" in out
    docker_cli("rm", "-f", name)


def test_rename_pause_unpause_kill(docker_cli: DockerCLI, names: list[str]) -> None:
    a, b = uniq("api-ren"), uniq("api-ren2")
    names += [a, b]
    docker_cli("run", "-d", "--name", a, "busybox", "sh", "-c", "trap 'exit 9' USR1; while :; do sleep 0.1; done")
    docker_cli("rename", a, b)
    assert docker_cli.out("inspect", "--format", "{{.Name}}", b) == f"/{b}"
    docker_cli("pause", b)
    assert docker_cli.out("inspect", "--format", "{{.State.Status}}", b) == "paused"
    docker_cli("unpause", b)
    assert docker_cli.out("inspect", "--format", "{{.State.Status}}", b) == "running"
    docker_cli("kill", "-s", "USR1", b)
    assert docker_cli.out("wait", b) == "9"
    docker_cli("rm", b)


def test_events_since_until(docker_cli: DockerCLI) -> None:
    start = time.time()
    name = uniq("api-ev")
    docker_cli("run", "--rm", "--name", name, "busybox", "true")
    time.sleep(0.2)
    out = docker_cli.out("events", "--since", f"{start:.3f}", "--until", f"{time.time():.3f}",
                         "--filter", f"container={name}", "--format", "{{.Type}} {{.Action}}", timeout=20)
    assert out.splitlines() == ["container create", "container start", "container die", "container destroy"]


def test_events_follow(docker_cli: DockerCLI) -> None:
    name = uniq("api-evf")
    p = subprocess.Popen([DOCKER, "events", "--filter", f"container={name}", "--format", "{{.Action}}"],
                         stdout=subprocess.PIPE, env=docker_cli.env())
    try:
        time.sleep(0.5)
        docker_cli("run", "--rm", "--name", name, "busybox", "true")
        out = b""
        assert p.stdout is not None
        fd = p.stdout.fileno()
        while out.count(b"\n") < 4:
            r, _, _ = select.select([fd], [], [], 10)
            assert r, f"events so far: {out!r}"
            out += os.read(fd, 4096)
        assert out.decode().split() == ["create", "start", "die", "destroy"]
    finally:
        p.terminate()
        p.wait(10)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def test_publish_and_user_network(docker_cli: DockerCLI, names: list[str]) -> None:
    name, net = uniq("api-web"), uniq("api-net")
    names.append(name)
    port = _free_port()
    docker_cli("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
               "mkdir /www && echo served > /www/index.html && httpd -f -p 80 -h /www")
    assert docker_cli.out("port", name) == f"80/tcp -> 127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    body = ""
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read().decode()
            break
        except OSError:
            time.sleep(0.1)
    assert body == "served\n"
    docker_cli("rm", "-f", name)
    p = docker_cli("network", "create", net, check=False)
    if p.returncode != 0:
        pytest.skip(f"network endpoints not available: {p.stderr}")
    try:
        out = docker_cli.out("run", "--rm", "--network", net, "busybox", "sh", "-c", "ip -4 -o addr show eth0")
        assert "eth0" in out and "inet " in out
    finally:
        docker_cli("network", "rm", net)


def test_restarted_server_keeps_containers(docker_cli: DockerCLI, names: list[str], tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    cli = DockerCLI(srv.url, docker_cli.config)
    name = uniq("api-restart")
    names.append(name)
    try:
        cli("run", "-d", "--name", name, "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.2; done")
        srv.stop()
        srv = start_server(tmp_path)
        assert cli.out("inspect", "--format", "{{.State.Running}}", name) == "true"
        time.sleep(0.5)
        assert "tick" in cli.out("logs", "--tail", "2", name)
        # attach through the new server sees fresh output; detach by closing it
        p = subprocess.Popen([DOCKER, "attach", "--no-stdin", name], stdout=subprocess.PIPE, env=cli.env())
        assert p.stdout is not None
        r, _, _ = select.select([p.stdout.fileno()], [], [], 10)
        assert r and os.read(p.stdout.fileno(), 4096).startswith(b"tick")
        p.kill()
        p.wait()
        cli("rm", "-f", name)
    finally:
        srv.stop()


def _make_certs(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "cext.cnf").write_text("extendedKeyUsage=clientAuth\n")
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=dockyard-test-ca")
    for name, subj, ext in (("server", "/CN=localhost", "ext.cnf"), ("client", "/CN=client", "cext.cnf")):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subj)
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", f"{name}-cert.pem", "-days", "1", "-extfile", ext)


def test_tcp_needs_tls_or_loopback(docker_cli: DockerCLI, tmp_path: Path) -> None:
    import shutil
    import sys

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    p = subprocess.run([sys.executable, "-m", "dockyard", "serve", "-H", "tcp://0.0.0.0:1"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0 and "refusing plain TCP" in p.stderr
    _make_certs(tmp_path)
    port = _free_port()
    log = open(tmp_path / "tls.log", "wb")
    srv = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                            "--tlscacert", str(tmp_path / "ca.pem"), "--tlscert", str(tmp_path / "server-cert.pem"),
                            "--tlskey", str(tmp_path / "server-key.pem")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and srv.poll() is None, (tmp_path / "tls.log").read_text()
                time.sleep(0.05)
        tls = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(tmp_path / "ca.pem"),
               "--tlscert", str(tmp_path / "client-cert.pem"), "--tlskey", str(tmp_path / "client-key.pem")]
        assert docker_cli.out(*tls, "run", "--rm", "busybox", "echo", "over-tls") == "over-tls"
        # without a client certificate the handshake is refused
        p = docker_cli("-H", f"tcp://127.0.0.1:{port}", "--tls", "--tlscacert", str(tmp_path / "ca.pem"), "version",
                       check=False, timeout=30)
        assert p.returncode != 0
    finally:
        os.kill(srv.pid, 15)
        srv.wait(10)
        log.close()


def test_login_checks_the_registry(docker_cli: DockerCLI, tmp_path: Path) -> None:
    """POST /auth: the engine asks the registry (Debian's docker-registry, without auth here)."""
    import shutil

    registry = shutil.which("docker-registry")
    if not registry:
        pytest.skip("docker-registry is not installed")
    port = _free_port()
    (tmp_path / "reg.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n"
                                      f"http:\n  addr: 127.0.0.1:{port}\n")
    reg = subprocess.Popen([registry, "serve", str(tmp_path / "reg.yml")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        p = docker_cli("login", "-u", "me", "--password-stdin", f"127.0.0.1:{port}", input="pw\n")
        assert "Login Succeeded" in p.stdout
    finally:
        reg.terminate()
        reg.wait(10)
    p = docker_cli("login", "-u", "me", "--password-stdin", f"127.0.0.1:{port}", input="pw\n", check=False)
    assert p.returncode != 0 and "Error response from daemon" in p.stderr


def test_binary_stdin_passes_untouched(docker_cli: DockerCLI, names: list[str]) -> None:
    """Without a TTY the detach keys are not looked for (Docker): any byte reaches the process."""
    import hashlib

    data = bytes(range(256)) * 2000 + b"\x10\x11" * 100
    want = hashlib.md5(data).hexdigest()
    p = subprocess.run([DOCKER, "run", "-i", "--rm", "busybox", "md5sum"], input=data, capture_output=True,
                       env=docker_cli.env(), timeout=60)
    assert p.stdout.decode().split()[0] == want, p.stderr
    name = uniq("api-bin")
    names.append(name)
    docker_cli("run", "-d", "--name", name, "busybox", "sleep", "60")
    p = subprocess.run([DOCKER, "exec", "-i", name, "md5sum"], input=data, capture_output=True, env=docker_cli.env(),
                       timeout=60)
    assert p.stdout.decode().split()[0] == want, p.stderr
    docker_cli("rm", "-f", name)


def test_update_resources(docker_cli: DockerCLI, names: list[str]) -> None:
    name = uniq("api-upd")
    names.append(name)
    docker_cli("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "60")
    docker_cli("update", "-m", "128m", "--memory-swap", "256m", "--cpus", "0.5", name)
    assert docker_cli.out("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", name) == \
        "134217728 500000000"
    if docker_cli.out("info", "--format", "{{.CgroupVersion}}") == "1":
        limit = docker_cli.out("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert limit == "134217728"
    docker_cli("rm", "-f", name)
