"""Terminals (issue 2): `run -it busybox sh` and `exec -it` give a working terminal - pty, window
size and resize, Ctrl-C reaches the container, Ctrl-P Ctrl-Q detaches - tested by driving a real pty."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

PROMPT = re.compile(rb"/ # $|/ # \x1b\[[0-9;]*[A-Za-z]*$")


def uniq(prefix: str = "tty") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Term:
    """The dockyard CLI on the slave side of a fresh pty (its controlling terminal); we hold the master."""

    def __init__(self, *args: str, rows: int = 40, cols: int = 100):
        self.master, slave = os.openpty()
        set_winsize(slave, rows, cols)

        def child_setup() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([sys.executable, "-m", "dockyard", *args], stdin=slave, stdout=slave,
                                     stderr=slave, preexec_fn=child_setup, close_fds=True)
        os.close(slave)
        self.buf = b""
        self.seen = b""

    def read_some(self, timeout: float) -> bool:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd closed (the CLI exited)
            data = b""
        if not data:
            time.sleep(0.05)
            return False
        self.buf += data
        self.seen += data
        return True

    def expect(self, pattern: bytes | re.Pattern, timeout: float = 30) -> re.Match:
        """Wait for pattern in the output not consumed yet; consume up to the end of the match."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            if time.monotonic() > end or (self.proc.poll() is not None and not self.read_some(0.2)):
                m = rx.search(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    return m
                raise AssertionError(f"{rx.pattern!r} not seen; exit={self.proc.poll()}; output:\n{self.seen!r}")
            self.read_some(0.2)

    def prompt(self, timeout: float = 30) -> None:
        self.expect(b"/ # ", timeout)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def cmd(self, line: str, timeout: float = 30) -> bytes:
        """Type a command, return its output (between the echoed line and the next prompt)."""
        self.send(line.encode() + b"\n")
        self.expect(line.encode(), timeout)  # the echo
        m = self.expect(re.compile(rb"(.*?)/ # ", re.S), timeout)
        return m.group(1)

    def wait(self, timeout: float = 60) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self.read_some(0.1)
        return self.proc.wait(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def terms():
    made: list[Term] = []
    yield made
    for t in made:
        t.close()


def start(terms: list[Term], *args: str, **kw) -> Term:
    t = Term(*args, **kw)
    terms.append(t)
    return t


def state(name: str) -> dict:
    return json.loads(dy("inspect", name, check=True).stdout)[0]["State"]


def lines(out: bytes) -> list[str]:
    return [line.strip() for line in out.decode(errors="replace").replace("\r", "").split("\n") if line.strip()]


# ---- run -it ---------------------------------------------------------------------------------


def test_run_it_shell_ps_tty_and_exit_code(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-it", "--rm", "--name", name, "busybox", "sh", rows=40, cols=100)
    t.prompt()
    out = lines(t.cmd("ps"))
    assert re.match(r"PID\s+USER\s+(TIME\s+)?COMMAND$", out[0]), out
    procs = [r.split() for r in out[1:]]
    assert procs[0][:2] == ["1", "root"] and procs[0][-1] in ("sh", "/bin/sh"), out  # article: PID 1 is the shell
    assert len(procs) == 2 and "ps" in " ".join(procs[1][2:]), out  # busybox shows a forked applet as "{ps} sh"
    assert lines(t.cmd("tty")) == ["/dev/pts/0"]
    assert lines(t.cmd("stty size")) == ["40 100"]  # the window size set on our pty before starting
    assert lines(t.cmd("echo $TERM")) == ["xterm"]
    t.send(b"exit 5\n")
    assert t.wait() == 5
    assert dy("inspect", name).returncode != 0  # --rm


def test_run_it_window_resize(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-it", "--rm", "--name", name, "busybox", "sh", rows=24, cols=80)
    t.prompt()
    assert lines(t.cmd("stty size")) == ["24 80"]
    set_winsize(t.master, 50, 132)  # the kernel sends SIGWINCH to the CLI, which must forward the size
    deadline = time.monotonic() + 20
    got = None
    while time.monotonic() < deadline:
        got = lines(t.cmd("stty size"))
        if got == ["50 132"]:
            break
        time.sleep(0.2)
    assert got == ["50 132"]
    t.send(b"exit\n")
    assert t.wait() == 0


def test_ctrl_c_reaches_the_container(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-it", "--rm", "--name", name, "busybox", "sh")
    t.prompt()
    t.send(b"sleep 100\n")
    t.expect(b"sleep 100")
    # wait until the sleep runs in the container before interrupting it
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "sleep 100" not in dy("top", name).stdout:
        time.sleep(0.1)
    assert "sleep 100" in dy("top", name).stdout
    t0 = time.monotonic()
    t.send(b"\x03")
    t.prompt(timeout=30)
    assert time.monotonic() - t0 < 90  # the prompt came back: sleep 100 did not run out
    assert lines(t.cmd("echo rc=$?")) == ["rc=130"]  # sleep died of SIGINT
    assert state(name)["Running"] is True  # only the foreground job was interrupted, the shell lives
    assert "sleep" not in dy("top", name).stdout
    t.send(b"exit 0\n")
    assert t.wait() == 0


def test_detach_with_ctrl_p_ctrl_q_then_attach(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-it", "--name", name, "busybox", "sh")
    t.prompt()
    t.cmd("echo before-detach")
    t.send(b"\x10\x11")
    assert t.wait(timeout=30) == 0  # the CLI leaves; the container keeps running
    st = state(name)
    assert st["Running"] is True
    ps = dy("ps", "-f", f"name={name}", "--format", "{{.Names}} {{.Status}}", check=True).stdout.split()
    assert ps[:2] == [name, "Up"]

    a = start(terms, "attach", name)
    a.send(b"\n")
    a.prompt()
    assert lines(a.cmd("echo attached-$((40+2))")) == ["attached-42"]
    assert lines(a.cmd("echo $$")) == ["1"]  # the same shell, still PID 1
    a.send(b"exit 3\n")
    assert a.wait() == 3
    st = state(name)
    assert st["Running"] is False and st["ExitCode"] == 3


def test_detach_keys_override(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-it", "--detach-keys", "ctrl-x,x", "--name", name, "busybox", "sh")
    t.prompt()
    t.send(b"\x10\x11")  # the default keys now pass through to the container
    t.send(b"echo still-here\n")
    t.expect(b"still-here\r\n")
    t.prompt()
    t.send(b"\x18x")
    assert t.wait(timeout=30) == 0
    assert state(name)["Running"] is True


def test_run_dit_then_attach(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    cid = dy("run", "-dit", "--name", name, "busybox", "sh", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert state(name)["Running"] is True
    a = start(terms, "attach", name, rows=33, cols=77)
    a.send(b"\n")
    a.prompt()
    assert lines(a.cmd("stty size")) == ["33 77"]  # attach sends its window size
    a.send(b"\x10\x11")
    assert a.wait(timeout=30) == 0
    assert state(name)["Running"] is True
    dy("stop", "-t", "1", name, check=True)


def test_tty_without_stdin(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-t", "--rm", "--name", name, "busybox", "sh", "-c", "tty; stty size; exit 4",
              rows=30, cols=90)
    t.expect(b"/dev/pts/0\r\n")
    t.expect(b"30 90\r\n")
    assert t.wait() == 4


def test_tty_output_uses_crlf(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-t", "--rm", "--name", name, "busybox", "printf", "a\\nb\\n")
    assert t.wait() == 0
    t.expect(b"a\r\nb\r\n")


def test_interactive_pipes_without_tty(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "-i", "--rm", "--name", name, "busybox", "sh", "-c", "wc -l; echo done", input="one\ntwo\nthree\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["3", "done"]
    # without -i stdin is not connected
    name2 = uniq()
    container_cleanup.append(name2)
    p = dy("run", "--rm", "--name", name2, "busybox", "sh", "-c", "wc -c", input="ignored\n")
    assert p.stdout.strip() == "0"


def test_kill_the_cli_keeps_the_container(container_cleanup, terms):
    name = uniq()
    container_cleanup.append(name)
    t = start(terms, "run", "-it", "--name", name, "busybox", "sh")
    t.prompt()
    os.kill(t.proc.pid, signal.SIGKILL)
    t.proc.wait()
    time.sleep(0.3)
    assert state(name)["Running"] is True
    a = start(terms, "attach", name)
    a.send(b"\n")
    a.prompt()
    a.send(b"exit 2\n")
    assert a.wait() == 2


# ---- exec -it --------------------------------------------------------------------------------


def _exec_available() -> bool:
    return dy("exec", "--help").returncode == 0


def test_exec_it(container_cleanup, terms):
    if not _exec_available():
        pytest.skip("dockyard exec is not implemented yet")
    name = uniq()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sleep", "1000", check=True)
    t = start(terms, "exec", "-it", name, "sh", rows=45, cols=110)
    t.prompt()
    out = lines(t.cmd("ps"))
    procs = [r.split() for r in out[1:]]
    assert procs[0][:2] == ["1", "root"] and procs[0][-2:] == ["sleep", "1000"], out
    assert any(p[-1] in ("sh", "/bin/sh") for p in procs[1:]), out
    assert re.fullmatch(r"/dev/pts/\d+", lines(t.cmd("tty"))[0])
    assert lines(t.cmd("stty size")) == ["45 110"]
    # Ctrl-C interrupts the exec'd foreground job, not the container
    t.send(b"sleep 100\n")
    t.expect(b"sleep 100")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "sleep 100" not in dy("top", name).stdout:
        time.sleep(0.1)
    t.send(b"\x03")
    t.prompt()
    assert lines(t.cmd("echo rc=$?")) == ["rc=130"]
    t.send(b"exit 4\n")
    assert t.wait() == 4
    assert state(name)["Running"] is True  # the container's PID 1 is untouched


def test_exec_non_tty(container_cleanup):
    if not _exec_available():
        pytest.skip("dockyard exec is not implemented yet")
    name = uniq()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sleep", "1000", check=True)
    p = dy("exec", "-e", "QA=1", "-w", "/tmp", "-u", "1000:1000", name, "sh", "-c", 'echo $QA $(pwd) $(id -u); exit 6')
    assert p.returncode == 6, p.stderr
    assert p.stdout.split() == ["1", "/tmp", "1000"]
    p = dy("exec", "-i", name, "cat", input="piped\n")
    assert p.stdout == "piped\n"
