"""The C shim (runtime/shim.c) against the Python one (runtime/shim.py): the same scenarios
under both (DOCKYARD_SHIM=python forces the Python shim), the log files byte for byte, and
the figures the C shim exists for (PSS of an idle container's shim, `run --rm` latency)."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid

import pytest

from conftest import REPO, TEST_RUNROOT, dy
from test_terminal import Term, lines, set_winsize

pytestmark = pytest.mark.usefixtures("busybox")

DEFAULT_BINARY = REPO / "src" / "dockyard" / "runtime" / "bin" / "dockyard-shim"


def _name() -> str:
    return f"cshim-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def c_binary(tmp_path_factory) -> str:
    """The built C shim (or DOCKYARD_TEST_C_SHIM, e.g. a sanitizer build); built privately
    when scripts/build-shim has not run."""
    if os.environ.get("DOCKYARD_TEST_C_SHIM"):
        return os.environ["DOCKYARD_TEST_C_SHIM"]
    if os.access(DEFAULT_BINARY, os.X_OK):
        return str(DEFAULT_BINARY)
    out = tmp_path_factory.mktemp("cshim") / "dockyard-shim"
    subprocess.run([str(REPO / "scripts" / "build-shim")], env={**os.environ, "OUT": str(out)}, check=True)
    if not os.access(out, os.X_OK):
        pytest.skip("no C compiler: the C shim cannot be built")
    return str(out)


@pytest.fixture(params=["c", "python"])
def shim(request, c_binary, monkeypatch) -> str:
    """Run the test once per shim: dy() passes os.environ on to the CLI."""
    monkeypatch.setenv("DOCKYARD_SHIM", c_binary if request.param == "c" else "python")
    return request.param


@pytest.fixture(scope="module", autouse=True)
def no_c_shim_left():
    yield
    time.sleep(0.5)
    left = [p for p in _shim_pids() if b"shim_entry.py" not in _cmdline(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"C shims left running: {left}"


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _shim_pids() -> list[int]:
    """What tests/conftest.py's leak check should match: either shim, run from the test run root."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        cmd = _cmdline(int(d.rsplit("/", 1)[1]))
        if (b"shim_entry.py" in cmd or b"dockyard-shim" in cmd or b"\0run_dir=" in cmd) and TEST_RUNROOT.encode() in cmd:
            out.append(int(d.rsplit("/", 1)[1]))
    return out


def _inspect(name: str) -> dict:
    return json.loads(dy("inspect", name, check=True).stdout)[0]


def _shim_pid(name: str) -> int:
    pid = _inspect(name)["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("PPid:")))


def _assert_shim_is(name: str, shim: str) -> int:
    spid = _shim_pid(name)
    cmd = _cmdline(spid)
    assert b"run_dir=" in cmd and (b"shim_entry.py" in cmd) == (shim == "python"), cmd[:200]
    return spid


def _wait_gone(name: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dy("inspect", name).returncode != 0:
            return True
        time.sleep(0.1)
    return False


def _records(log_path: str) -> list[dict]:
    out = []
    for f in sorted(glob.glob(log_path + ".*"), reverse=True) + [log_path]:
        with open(f, "rb") as fh:
            out += [json.loads(line) for line in fh]
    return out


# A deterministic output: unicode, invalid UTF-8 (lone, truncated, overlong, surrogates),
# U+2028/9, control characters, quotes and backslashes, a 40000-byte line, an unterminated end.
TRICKY = (r'printf "caf\303\251 \342\202\254 \360\237\230\200 \342\200\250 \342\200\251\n"; '
          r'printf "bad: \377 \300\200 \355\240\200 \342\202 \360\237 x\n"; '
          r'printf "ctl: \001\002\033[1m \177 \"q\" \\\\ \t\r\b\f\n"; '
          r'head -c 40000 /dev/zero | tr "\000" "a"; echo; '
          r'printf "no newline at the end"')


def test_run_d_logs_unicode_invalid_utf8_long_lines(shim, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sh", "-c", TRICKY + "; sleep 30", check=True)
    _assert_shim_is(name, shim)
    dy("kill", name, check=True)
    assert dy("wait", name, check=True).stdout.strip() == "137"
    recs = _records(_inspect(name)["LogPath"])
    text = "".join(r["log"] for r in recs)
    assert text.startswith("café € 😀 \u2028 \u2029\n")
    assert "bad: \ufffd \ufffd\ufffd \ufffd\ufffd\ufffd \ufffd \ufffd x\n" in text
    assert 'ctl: \x01\x02\x1b[1m \x7f "q" \\ \t\r\b\f\n' in text
    assert "a" * 40000 + "\n" in text and text.endswith("no newline at the end")
    assert all(len(r["log"]) <= 16384 for r in recs if not r["log"].endswith("\n"))
    assert recs[-1]["log"] == "no newline at the end" and recs[-1]["stream"] == "stdout"
    out = dy("logs", name, check=True).stdout
    assert "a" * 40000 in out and "café" in out


def _join_partials(data: bytes) -> bytes:
    out: list[dict] = []
    for line in data.splitlines():
        rec = json.loads(line)
        if out and not out[-1]["log"].endswith("\n") and out[-1]["stream"] == rec["stream"]:
            out[-1]["log"] += rec["log"]
        else:
            out.append(rec)
    return b"\n".join(json.dumps(r, ensure_ascii=False).encode() for r in out)


def test_log_files_identical_between_shims(c_binary, container_cleanup, monkeypatch):
    """The same output through each shim gives the same log files, byte for byte but for
    the timestamps; with rotation (max-size=1k, max-file=3) the same files."""
    lines = "i=0; while [ $i -lt 120 ]; do echo line-$i; i=$((i+1)); done"
    files = {}
    for which in ("c", "python"):
        monkeypatch.setenv("DOCKYARD_SHIM", c_binary if which == "c" else "python")
        for opts in ((), ("--log-opt", "max-size=1k", "--log-opt", "max-file=3")):
            name = _name()
            container_cleanup.append(name)
            # rotation is compared on whole lines only: where partial records fall would move
            # the rotation points
            script = lines if opts else TRICKY + "; echo; " + lines
            p = dy("run", "--name", name, *opts, "busybox", "sh", "-c", script, input=b"")
            assert p.returncode == 0, p.stderr
            log_path = _inspect(name)["LogPath"]
            got = {}
            for f in sorted(glob.glob(log_path + "*")):
                with open(f, "rb") as fh:
                    data = re.sub(rb'"time":"[0-9T:.-]+Z"', b'"time":"T"', fh.read())
                # where a long line is cut into partial records depends on how the pipe reads
                # happened to fall: compare with partial records joined (not for rotated files,
                # whose sizes are compared as they are)
                got[f[len(log_path):]] = _join_partials(data) if not opts else data
            files[which, opts] = got
    for opts in ((), ("--log-opt", "max-size=1k", "--log-opt", "max-file=3")):
        assert files["c", opts] == files["python", opts]
    assert sorted(files["c", ("--log-opt", "max-size=1k", "--log-opt", "max-file=3")]) == ["", ".1", ".2"]


def test_rotation(shim, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    p = dy("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox",
           "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; sleep 0.2; echo bye >&2")
    assert p.returncode == 0, p.stderr
    log_path = _inspect(name)["LogPath"]
    assert sorted(glob.glob(log_path + "*")) == [log_path, log_path + ".1", log_path + ".2"]
    for f in glob.glob(log_path + "*"):
        assert os.path.getsize(f) <= 1024
    out = dy("logs", name, check=True)
    assert out.stdout.splitlines()[-1] == "line-199" and out.stderr == "bye\n"
    assert "line-0\n" not in out.stdout


def test_exit_codes(shim, container_cleanup):
    for code in (0, 3):
        name = _name()
        container_cleanup.append(name)
        assert dy("run", "--name", name, "busybox", "sh", "-c", f"exit {code}").returncode == code
        assert _inspect(name)["State"]["ExitCode"] == code
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sleep", "100", check=True)
    _assert_shim_is(name, shim)
    dy("kill", name, check=True)
    assert dy("wait", name, check=True).stdout.strip() == "137"
    assert _inspect(name)["State"]["ExitCode"] == 137


def test_stdin_pipes(shim):
    p = subprocess.run("echo hi | %s -m dockyard run -i --rm busybox cat" % sys.executable, shell=True,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "hi\n", p.stderr
    # more than the shim queues (1 MiB) before pausing the client, both ways at once
    data = os.urandom(3 << 20)
    p = dy("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo err >&2", input=data)
    assert p.returncode == 0 and p.stdout == data and p.stderr == b"err\n"
    p = dy("run", "--rm", "busybox", "sh", "-c", "head -c 5000000 /dev/zero")
    assert p.returncode == 0 and len(p.stdout) == 5000000


def test_rm_cleanup_by_exit_command_when_the_cli_is_killed(shim):
    name = _name()
    p = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "--rm", "--name", name, "busybox", "sh", "-c",
                          "sleep 1.5; exit 7"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = dy("inspect", "-f", "{{.State.Running}}", name)
            if r.stdout.strip() == "true":
                break
            time.sleep(0.05)
        _assert_shim_is(name, shim)
        p.kill()  # the foreground client promised to clean up and now never will
        p.wait()
        assert _wait_gone(name), "the exit command did not remove the --rm container"
    finally:
        if p.poll() is None:
            p.kill()
        dy("rm", "-f", name)


@pytest.fixture
def terms():
    made: list[Term] = []
    yield made
    for t in made:
        t.close()


def test_run_it_resize_exit_code(shim, container_cleanup, terms):
    name = _name()
    container_cleanup.append(name)
    t = Term("run", "-it", "--rm", "--name", name, "busybox", "sh", rows=24, cols=80)
    terms.append(t)
    t.prompt()
    _assert_shim_is(name, shim)
    assert lines(t.cmd("tty")) == ["/dev/pts/0"]
    assert lines(t.cmd("stty size")) == ["24 80"]
    set_winsize(t.master, 50, 132)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and lines(t.cmd("stty size")) != ["50 132"]:
        time.sleep(0.2)
    assert lines(t.cmd("stty size")) == ["50 132"]
    assert lines(t.cmd("echo caf\u00e9")) == ["caf\u00e9"]
    t.send(b"exit 5\n")
    assert t.wait() == 5
    assert _wait_gone(name)


def test_attach_detach(shim, container_cleanup, terms):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-dit", "--name", name, "busybox", "sh", check=True)
    _assert_shim_is(name, shim)
    a = Term("attach", name, rows=33, cols=77)
    terms.append(a)
    a.send(b"\n")
    a.prompt()
    assert lines(a.cmd("stty size")) == ["33 77"]
    assert lines(a.cmd("echo attached-$((40+2))")) == ["attached-42"]
    a.send(b"\x10\x11")
    assert a.wait(timeout=30) == 0
    assert _inspect(name)["State"]["Running"] is True
    b = Term("attach", name)
    terms.append(b)
    b.send(b"\n")
    b.prompt()
    b.send(b"exit 3\n")
    assert b.wait() == 3
    assert _inspect(name)["State"]["ExitCode"] == 3
    assert "attached-42" in dy("logs", name, check=True).stdout


def test_two_attach_clients_see_the_same_output(shim, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; echo one; echo two >&2; sleep 0.5; exit 6",
       check=True)
    procs = [subprocess.Popen([sys.executable, "-m", "dockyard", "attach", name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert (out, err, p.returncode) == ("one\n", "two\n", 6)


def test_exec_it_and_exec_d(shim, container_cleanup, terms):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, "busybox", "sleep", "1000", check=True)
    xdirs = set(glob.glob(f"{TEST_RUNROOT}/x/*"))
    t = Term("exec", "-it", name, "sh", rows=45, cols=110)
    terms.append(t)
    t.prompt()
    assert lines(t.cmd("stty size")) == ["45 110"]
    assert re.fullmatch(r"/dev/pts/\d+", lines(t.cmd("tty"))[0])
    t.send(b"exit 4\n")
    assert t.wait() == 4
    assert dy("exec", "-d", name, "sh", "-c", "echo made > /tmp/flag").returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and dy("exec", name, "cat", "/tmp/flag").stdout != "made\n":
        time.sleep(0.1)
    assert dy("exec", name, "cat", "/tmp/flag").stdout == "made\n"
    p = dy("exec", "-i", name, "sh", "-c", "cat; exit 9", input="via-exec\n")
    assert (p.stdout, p.returncode) == ("via-exec\n", 9)
    # exec sessions' shims remove their run dirs (remove_run_dir); they are not logged
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(glob.glob(f"{TEST_RUNROOT}/x/*")) - xdirs:
        time.sleep(0.1)
    assert not set(glob.glob(f"{TEST_RUNROOT}/x/*")) - xdirs
    assert "via-exec" not in dy("logs", name).stdout


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


def test_measure_pss_and_latency(c_binary, container_cleanup, monkeypatch, capsys):
    """Report (not assert, but for the C shim's PSS bound) PSS and `run --rm busybox true` time."""
    report = {}
    for which in ("c", "python"):
        monkeypatch.setenv("DOCKYARD_SHIM", c_binary if which == "c" else "python")
        name = _name()
        container_cleanup.append(name)
        dy("run", "-d", "--name", name, "busybox", "sleep", "100", check=True)
        time.sleep(0.5)
        pss = _pss_kib(_assert_shim_is(name, which))
        dy("rm", "-f", name, check=True)
        times = []
        for _ in range(20):
            t0 = time.monotonic()
            dy("run", "--rm", "busybox", "true", check=True)
            times.append(time.monotonic() - t0)
        report[which] = (pss, statistics.median(times) * 1000)
    with capsys.disabled():
        for which, (pss, ms) in report.items():
            print(f"\n{which} shim: PSS {pss} KiB idle, run --rm busybox true median {ms:.1f} ms (20 runs)")
    assert report["c"][0] < 1024


# ---- the attach protocol, spoken directly -----------------------------------------------------


def _connect(cid: str, flags: str):
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(f"{TEST_RUNROOT}/c/{cid}/sock")
    s.sendall(flags.encode() + b"\n")
    return s


def _frame(kind: int, payload: bytes) -> bytes:
    return bytes((kind, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def _read_frames(s, timeout: float = 30) -> list[tuple[int, bytes]]:
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    out = []
    while len(data) >= 8:
        n = int.from_bytes(data[4:8], "big")
        out.append((data[0], data[8:8 + n]))
        data = data[8 + n:]
    assert not data
    return out


def test_protocol_stdin_close_and_exit_frames(shim, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    cid = dy("run", "-d", "-i", "--name", name, "busybox", "sh", "-c",
             "sleep 0.5; cat; echo done >&2; exit 4", check=True).stdout.strip()
    _assert_shim_is(name, shim)
    s = _connect(cid, "stdin=1 stdout=1 stderr=1 stdin_once=0 cleanup=0")
    s.sendall(_frame(5, b"10 20") + _frame(0, b"abc\n") + _frame(0, b"\xff\x00x\n") + _frame(4, b""))
    frames = _read_frames(s)
    s.close()
    out = b"".join(p for k, p in frames if k == 1)
    assert out == b"abc\n\xff\x00x\n"
    assert [p for k, p in frames if k == 2] == [b"done\n"]
    assert frames[-1] == (3, b"4")
    # a client connecting after the end gets the exit code right away... while the shim lives
    assert dy("wait", name, check=True).stdout.strip() == "4"


def test_protocol_client_that_never_reads_is_dropped(shim, container_cleanup):
    """Backpressure: output queued for a client beyond 8 MiB drops that client; the container
    runs on and its output is all in the log."""
    name = _name()
    container_cleanup.append(name)
    cid = dy("run", "-d", "--name", name, "busybox", "sh", "-c",
             "sleep 1; head -c 30000000 /dev/zero | tr '\\000' 'x' | fold -w 1000; echo end", check=True).stdout.strip()
    _assert_shim_is(name, shim)
    s = _connect(cid, "stdin=0 stdout=1 stderr=1")
    assert dy("wait", name, timeout=120, check=True).stdout.strip() == "0"
    frames = _read_frames(s)
    s.close()
    got = sum(len(p) for k, p in frames if k == 1)
    assert 0 < got < 30_000_000 and not any(k == 3 for k, _ in frames)  # dropped, never told the exit
    recs = _records(_inspect(name)["LogPath"])
    assert recs[-1]["log"].endswith("end\n")
    assert sum(len(r["log"]) for r in recs) == 30_000_000 + 30_000 + 3
