"""Container verbs end to end through the CLI, checked against Docker's behaviour (issue 2, Containers)."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

HEX64 = re.compile(r"^[0-9a-f]{64}$")
TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)$")


def uniq(prefix: str = "qa") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def inspect(ref: str) -> dict:
    return json.loads(dy("inspect", ref, check=True).stdout)[0]


def wait_until(pred, timeout: float = 30, step: float = 0.1):
    """Poll pred() until truthy (timeout only to avoid hanging, never the assertion)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def run_d(cleanup: list[str], *args: str, name: str | None = None) -> tuple[str, str]:
    name = name or uniq()
    cleanup.append(name)
    p = dy("run", "-d", "--name", name, *args, check=True)
    return name, p.stdout.strip()


def gone(ref: str) -> bool:
    """`docker inspect` of a missing object: exit 1, "No such object" (Docker's generic inspect)."""
    q = dy("inspect", ref)
    return q.returncode != 0 and "No such" in q.stderr


# ---- run -----------------------------------------------------------------------------------


def test_run_rm_echo(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "busybox", "echo", "hi")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hi\n"
    # --rm: the container is gone once run returns
    assert gone(name)


def test_run_exit_code(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "busybox", "sh", "-c", "exit 3")
    assert p.returncode == 3, p.stderr


def test_run_stdout_and_stderr_separate(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    assert p.returncode == 0
    assert p.stdout == "out\n"
    assert p.stderr == "err\n"


def test_run_env_and_env_file(container_cleanup, tmp_path):
    envf = tmp_path / "env.list"
    envf.write_text("# comment\nFROMFILE=filevalue\n\nSHARED=fromfile\n")
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-e", "FOO=bar baz", "--env-file", str(envf), "-e", "SHARED=fromflag",
           "busybox", "env")
    assert p.returncode == 0, p.stderr
    env = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert env["FOO"] == "bar baz"
    assert env["FROMFILE"] == "filevalue"
    assert env["SHARED"] == "fromflag"  # -e after --env-file wins, as in Docker
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOSTNAME"]  # Docker always sets HOSTNAME
    assert "DOCKYARD_ROOT" not in env  # the host's environment does not leak in


def test_run_env_passthrough_from_caller(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-e", "QA_PASS", "busybox", "sh", "-c", 'echo "[$QA_PASS]"',
           env={"QA_PASS": "passed-through"})
    assert p.stdout == "[passed-through]\n", p.stderr


def test_run_workdir(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-w", "/tmp", "busybox", "pwd")
    assert p.stdout == "/tmp\n", p.stderr
    # Docker creates a missing working directory
    name2 = uniq()
    container_cleanup.append(name2)
    p = dy("run", "--rm", "--name", name2, "-w", "/does/not/exist", "busybox", "pwd")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "/does/not/exist\n"


def test_run_user_uid_gid(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-u", "1000:1000", "busybox", "id")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("uid=1000 gid=1000"), p.stdout
    name2 = uniq()
    container_cleanup.append(name2)
    p = dy("run", "--rm", "--name", name2, "-u", "nobody", "busybox", "id", "-u")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "65534"


def test_run_hostname(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-h", "qa-host", "busybox", "sh", "-c", "hostname; cat /etc/hostname")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "qa-host\nqa-host\n"


def test_run_entrypoint(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "from entrypoint\n"


def test_run_label_in_inspect(container_cleanup):
    name, cid = run_d(container_cleanup, "-l", "qa.role=tester", "--label", "qa.empty", "busybox", "true")
    cfg = inspect(name)["Config"]
    assert cfg["Labels"]["qa.role"] == "tester"
    assert cfg["Labels"]["qa.empty"] == ""
    out = dy("inspect", "--format", '{{index .Config.Labels "qa.role"}}', name, check=True).stdout
    assert out.strip() == "tester"


def test_run_detached_returns_id_while_running(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    assert HEX64.match(cid), cid
    st = inspect(cid)
    assert st["Id"] == cid
    assert st["State"]["Running"] is True
    assert st["State"]["Status"] == "running"
    assert os.path.exists(f"/proc/{st['State']['Pid']}")
    # the short ID and a unique prefix resolve too
    assert inspect(cid[:12])["Id"] == cid


def test_create_then_start(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    cid = dy("create", "--name", name, "busybox", "sh", "-c", "echo started; exit 4", check=True).stdout.strip()
    assert HEX64.match(cid)
    assert inspect(name)["State"]["Status"] == "created"
    p = dy("start", "-a", name)
    assert p.stdout == "started\n", p.stderr
    assert p.returncode == 4
    assert inspect(name)["State"]["ExitCode"] == 4


# ---- ps ------------------------------------------------------------------------------------


def test_ps_filters_and_formats(container_cleanup):
    tag = secrets.token_hex(4)
    run_name, run_id = run_d(container_cleanup, "-l", f"qa.ps={tag}", "busybox", "sleep", "100")
    ex_name, ex_id = run_d(container_cleanup, "-l", f"qa.ps={tag}", "busybox", "true")
    assert dy("wait", ex_name, check=True).stdout.strip() == "0"

    ps = dy("ps", check=True).stdout
    assert run_name in ps and run_id[:12] in ps
    assert ex_name not in ps  # exited: only with -a
    assert re.search(rf"{run_id[:12]}.*Up ", ps)
    assert ex_name in dy("ps", "-a", check=True).stdout

    out = dy("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}", check=True).stdout.split()
    assert ex_name in out and run_name not in out
    out = dy("ps", "-a", "-f", "status=running", "--format", "{{.Names}}", check=True).stdout.split()
    assert run_name in out and ex_name not in out

    out = dy("ps", "-a", "-f", f"name={run_name}", "--format", "{{.Names}}", check=True).stdout.split()
    assert out == [run_name]

    out = dy("ps", "-a", "-f", f"label=qa.ps={tag}", "--format", "{{.Names}}", check=True).stdout.split()
    assert sorted(out) == sorted([run_name, ex_name])
    out = dy("ps", "-a", "-f", f"label=qa.ps={tag}", "-f", "status=exited", "-q", check=True).stdout.split()
    assert out == [ex_id[:12]]

    q = dy("ps", "-q", check=True).stdout.split()
    assert run_id[:12] in q and all(re.fullmatch(r"[0-9a-f]{12}", x) for x in q)
    q = dy("ps", "-q", "--no-trunc", check=True).stdout.split()
    assert run_id in q
    assert run_id in dy("ps", "--no-trunc", check=True).stdout

    out = dy("ps", "-a", "-f", f"label=qa.ps={tag}", "--format", "{{.ID}} {{.Status}}", check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines[run_id[:12]].startswith("Up")
    assert lines[ex_id[:12]].startswith("Exited (0)")

    table = dy("ps", "-f", f"name={run_name}", "--format", "table {{.Names}}\t{{.Image}}", check=True).stdout
    rows = table.splitlines()
    assert rows[0].split() == ["NAMES", "IMAGE"]
    assert rows[1].split() == [run_name, "busybox"]


# ---- logs / wait ---------------------------------------------------------------------------


def test_logs_tail_timestamps_since(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "sh", "-c", "echo one; echo two; sleep 1.2; echo three; echo oops >&2")
    assert dy("wait", name, check=True).stdout.strip() == "0"

    p = dy("logs", name, check=True)
    assert p.stdout == "one\ntwo\nthree\n"
    assert p.stderr == "oops\n"

    p = dy("logs", "--tail", "1", name, check=True)
    assert p.stdout + p.stderr == "oops\n"
    p = dy("logs", "--tail", "2", name, check=True)
    assert p.stdout == "three\n" and p.stderr == "oops\n"

    p = dy("logs", "-t", name, check=True)
    lines = p.stdout.splitlines()
    assert len(lines) == 3
    stamps = []
    for line, text in zip(lines, ["one", "two", "three"]):
        m = TS.match(line)
        assert m, line
        assert m.group(2) == text
        stamps.append(datetime.fromisoformat(m.group(1)[:26].rstrip("Z") + "+00:00"))
    # --since between "two" and "three" (the container slept 1.2 s between them)
    mid = stamps[1] + (stamps[2] - stamps[1]) / 2
    since = mid.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    p = dy("logs", "--since", since, name, check=True)
    assert p.stdout == "three\n", (since, p.stdout)
    # a relative --since that covers everything, and one in the future
    assert dy("logs", "--since", "1h", name, check=True).stdout == "one\ntwo\nthree\n"
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = dy("logs", "--since", future, name, check=True)
    assert p.stdout == "" and p.stderr == ""


def test_log_file_is_docker_json(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sh", "-c", "echo hello; echo bad >&2")
    dy("wait", name, check=True)
    path = inspect(name)["LogPath"]
    assert path.endswith(f"{cid}-json.log")
    with open(path) as f:
        entries = [json.loads(line) for line in f]
    assert [(e["log"], e["stream"]) for e in entries] == [("hello\n", "stdout"), ("bad\n", "stderr")]
    assert all(e["time"].endswith("Z") for e in entries)


def test_wait_prints_exit_code(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "sh", "-c", "sleep 0.5; exit 7")
    p = dy("wait", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "7"
    st = inspect(name)["State"]
    assert st["ExitCode"] == 7 and st["Status"] == "exited" and st["Running"] is False
    assert st["FinishedAt"] > st["StartedAt"]


# ---- stop / kill / restart / rm ------------------------------------------------------------


def test_stop_kills_after_timeout(container_cleanup):
    # sleep is PID 1 without a TERM handler: the kernel ignores SIGTERM for it, so stop must SIGKILL
    name, _ = run_d(container_cleanup, "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    p = dy("stop", "-t", "1", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == name
    st = inspect(name)["State"]
    assert st["Status"] == "exited" and st["Running"] is False
    assert st["ExitCode"] == 137
    assert st["Pid"] == 0
    assert not os.path.exists(f"/proc/{pid}") or "sleep" not in open(f"/proc/{pid}/comm").read()


def test_stop_graceful_with_handler(container_cleanup):
    script = 'trap "echo bye; exit 0" TERM; echo ready; while true; do sleep 0.1; done'
    name, _ = run_d(container_cleanup, "busybox", "sh", "-c", script)
    assert wait_until(lambda: "ready" in dy("logs", name).stdout)
    p = dy("stop", "-t", "30", name)
    assert p.returncode == 0, p.stderr
    st = inspect(name)["State"]
    assert st["ExitCode"] == 0  # handled SIGTERM, not killed
    assert "bye" in dy("logs", name).stdout


def test_stop_signal_flag(container_cleanup):
    script = 'trap "echo usr1; exit 9" USR1; echo ready; while true; do sleep 0.1; done'
    name, _ = run_d(container_cleanup, "--stop-signal", "SIGUSR1", "busybox", "sh", "-c", script)
    assert wait_until(lambda: "ready" in dy("logs", name).stdout)
    dy("stop", "-t", "30", name, check=True)
    assert inspect(name)["State"]["ExitCode"] == 9
    assert "usr1" in dy("logs", name).stdout


def test_kill_with_signal_to_trap_script(container_cleanup):
    script = 'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.1; done'
    name, _ = run_d(container_cleanup, "busybox", "sh", "-c", script)
    assert wait_until(lambda: "ready" in dy("logs", name).stdout)
    p = dy("kill", "-s", "TERM", name)
    assert p.returncode == 0, p.stderr
    assert dy("wait", name, check=True).stdout.strip() == "42"
    assert "got-term" in dy("logs", name).stdout


def test_kill_default_sigkill(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "sleep", "100")
    dy("kill", name, check=True)
    assert dy("wait", name, check=True).stdout.strip() == "137"
    # killing a stopped container is an error
    p = dy("kill", name)
    assert p.returncode != 0 and "is not running" in p.stderr


def test_restart(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    before = inspect(name)["State"]
    p = dy("restart", "-t", "1", name)
    assert p.returncode == 0, p.stderr
    after = inspect(name)["State"]
    assert after["Running"] is True
    assert after["Pid"] != before["Pid"] and after["Pid"] > 0
    assert after["StartedAt"] > before["StartedAt"]
    assert os.path.exists(f"/sys/fs/cgroup/memory/dockyard/{cid}")


def test_rm_refuses_running_then_force(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    p = dy("rm", name)
    assert p.returncode != 0
    assert "running" in p.stderr.lower() and "force" in p.stderr.lower()
    assert inspect(name)["State"]["Running"] is True  # untouched
    p = dy("rm", "-f", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == name
    assert gone(name)
    assert not os.path.exists(f"/sys/fs/cgroup/pids/dockyard/{cid}")


def test_rm_stopped_releases_layer(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "true")
    dy("wait", name, check=True)
    gd = inspect(name)["GraphDriver"]["Data"]
    upper = gd["UpperDir"]
    assert os.path.isdir(upper)
    dy("rm", name, check=True)
    assert not os.path.exists(upper)
    assert not os.path.exists(os.path.dirname(gd["MergedDir"]))


# ---- pause / rename ------------------------------------------------------------------------


def test_pause_unpause(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    freezer = f"/sys/fs/cgroup/freezer/dockyard/{cid}/freezer.state"
    p = dy("pause", name)
    assert p.returncode == 0, p.stderr
    st = inspect(name)["State"]
    assert st["Paused"] is True and st["Status"] == "paused" and st["Running"] is True
    with open(freezer) as f:
        assert f.read().strip() == "FROZEN"
    assert "Paused" in dy("ps", "-f", f"name={name}", check=True).stdout
    p = dy("unpause", name)
    assert p.returncode == 0, p.stderr
    st = inspect(name)["State"]
    assert st["Paused"] is False and st["Status"] == "running"
    with open(freezer) as f:
        assert f.read().strip() == "THAWED"
    # unpausing a running container is an error
    p = dy("unpause", name)
    assert p.returncode != 0 and "not paused" in p.stderr


def test_rename(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    new = uniq("renamed")
    container_cleanup.append(new)
    p = dy("rename", name, new)
    assert p.returncode == 0, p.stderr
    assert inspect(new)["Name"] == "/" + new
    assert inspect(cid)["Name"] == "/" + new
    assert gone(name)
    # the old name is free again
    run_d(container_cleanup, "busybox", "true", name=name)


# ---- inspect / top / stats -----------------------------------------------------------------


def test_inspect_shape(container_cleanup):
    name, cid = run_d(container_cleanup, "-m", "64m", "busybox", "sleep", "100")
    c = inspect(name)
    for key in ("Id", "Name", "State", "Config", "HostConfig", "GraphDriver", "Mounts", "Image", "LogPath",
                "RestartCount", "Created", "Path", "Args"):
        assert key in c, key
    assert c["Id"] == cid and c["Name"] == "/" + name
    st = c["State"]
    for key in ("Status", "Running", "Paused", "Pid", "ExitCode", "OOMKilled", "StartedAt", "FinishedAt"):
        assert key in st, key
    assert st["OOMKilled"] is False and st["ExitCode"] == 0 and st["Paused"] is False
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", st["StartedAt"])
    assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert c["Path"] == "sleep" and c["Args"] == ["100"]
    assert c["Config"]["Cmd"] == ["sleep", "100"] and c["Config"]["Image"] == "busybox"
    assert c["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert c["Image"].startswith("sha256:")
    assert c["Image"] == json.loads(dy("image", "inspect", "busybox", check=True).stdout)[0]["Id"]
    assert c["Mounts"] == []
    assert c["RestartCount"] == 0
    assert c["GraphDriver"]["Name"] == "overlay2"
    data = c["GraphDriver"]["Data"]
    for key in ("LowerDir", "UpperDir", "MergedDir", "WorkDir"):
        assert key in data, key
    for d in data["LowerDir"].split(":") + [data["UpperDir"], data["WorkDir"]]:
        assert os.path.isdir(d), d
    # the -init layer is the first lower dir, as in Docker
    assert data["LowerDir"].split(":")[0].endswith("-init/diff")
    with open("/proc/mounts") as f:
        assert any(line.split()[1] == data["MergedDir"] and line.split()[2] == "overlay" for line in f)
    assert os.path.isfile(c["LogPath"])

    pid = dy("inspect", "--format", "{{.State.Pid}}", name, check=True).stdout.strip()
    assert pid == str(st["Pid"]) and int(pid) > 1
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "sleep"
    j = dy("inspect", "--format", "{{json .State}}", name, check=True).stdout
    assert json.loads(j)["Pid"] == st["Pid"]


def test_inspect_several_and_missing(container_cleanup):
    a, _ = run_d(container_cleanup, "busybox", "true")
    b, _ = run_d(container_cleanup, "busybox", "true")
    out = json.loads(dy("inspect", a, b, check=True).stdout)
    assert [x["Name"] for x in out] == ["/" + a, "/" + b]
    p = dy("inspect", a, "qa-missing-" + secrets.token_hex(4))
    assert p.returncode == 1
    assert "No such" in p.stderr
    assert json.loads(p.stdout)[0]["Name"] == "/" + a


def test_top_host_pid(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    p = dy("top", name)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    header = lines[0].split()
    assert "PID" in header and "CMD" in header
    col = header.index("PID")
    rows = [line.split() for line in lines[1:]]
    assert [r[col] for r in rows] == [str(pid)]
    assert "sleep 100" in lines[1]

    p = dy("top", name, "-o", "pid,comm")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert lines[1].split() == [str(pid), "sleep"]


def test_top_shows_all_processes(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "sh", "-c", "sleep 100 & sleep 200 & wait")
    assert wait_until(lambda: len(dy("top", name).stdout.splitlines()) == 4)
    rows = dy("top", name, check=True).stdout.splitlines()[1:]
    assert [r.split()[-2:] for r in rows[1:]] == [["sleep", "100"], ["sleep", "200"]]
    assert "sh -c" in rows[0]


def test_top_stopped_container_errors(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "true")
    dy("wait", name, check=True)
    p = dy("top", name)
    assert p.returncode != 0 and "is not running" in p.stderr


def test_stats_no_stream(container_cleanup):
    name, cid = run_d(container_cleanup, "-m", "64m", "--pids-limit", "50", "busybox", "sleep", "100")
    p = dy("stats", "--no-stream", name)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "MEM USAGE / LIMIT" in lines[0] and "CPU %" in lines[0] and "PIDS" in lines[0]
    row = [line for line in lines[1:] if cid[:12] in line]
    assert len(row) == 1, p.stdout
    assert name in row[0]
    m = re.search(r"([\d.]+\s*[KMG]i?B|[\d.]+B)\s*/\s*64MiB", row[0])
    assert m, row[0]
    assert re.search(r"\s1\s*$", row[0]), row[0]  # PIDS column: only sleep


def test_container_prune(container_cleanup):
    ex, ex_id = run_d(container_cleanup, "busybox", "true")
    up, up_id = run_d(container_cleanup, "busybox", "sleep", "100")
    dy("wait", ex, check=True)
    p = dy("container", "prune", "-f")
    assert p.returncode == 0, p.stderr
    assert ex_id in p.stdout
    assert "Total reclaimed space" in p.stdout
    assert dy("inspect", ex).returncode != 0
    assert inspect(up)["State"]["Running"] is True


# ---- system --------------------------------------------------------------------------------


def test_info():
    p = dy("info")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "Storage Driver: overlay2" in out
    assert "Cgroup Driver: cgroupfs" in out
    assert "Cgroup Version: 1" in out
    assert re.search(r"Kernel Version: " + re.escape(os.uname().release), out)
    assert re.search(r"Containers: \d+", out)
    assert re.search(r"Images: \d+", out)
    assert os.environ["DOCKYARD_ROOT"] in out  # Docker Root Dir


def test_info_counts_containers(container_cleanup):
    def count(key):
        return int(re.search(rf"{key}: (\d+)", dy("info", check=True).stdout).group(1))
    before = count("Running")
    run_d(container_cleanup, "busybox", "sleep", "100")
    assert count("Running") == before + 1


def test_version():
    p = dy("version")
    assert p.returncode == 0, p.stderr
    assert re.search(r"Version:\s+\S+", p.stdout)
    assert dy("--version").stdout.startswith("Dockyard version ")
    out = dy("version", "--format", "{{.Client.Version}}")
    assert out.returncode == 0 and out.stdout.strip()


# ---- images --------------------------------------------------------------------------------


def test_images_and_image_inspect():
    p = dy("images")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert re.search(r"^busybox\s+latest\s+[0-9a-f]{12}\s", p.stdout, re.M)
    img = json.loads(dy("image", "inspect", "busybox", check=True).stdout)[0]
    for key in ("Id", "RepoTags", "RepoDigests", "Created", "Config", "Architecture", "Os", "Size", "RootFS",
                "GraphDriver", "Metadata"):
        assert key in img, key
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", img["Id"])
    assert "busybox:latest" in img["RepoTags"]
    assert img["RootFS"]["Type"] == "layers"
    assert img["RootFS"]["Layers"] and all(re.fullmatch(r"sha256:[0-9a-f]{64}", x) for x in img["RootFS"]["Layers"])
    assert img["GraphDriver"]["Name"] == "overlay2"
    assert img["Os"] == "linux"
    assert os.path.isdir(img["GraphDriver"]["Data"]["UpperDir"])
    q = dy("images", "-q", "busybox", check=True).stdout.split()
    assert q == [img["Id"][7:19]]


def test_tag_and_untag():
    tag = f"qa-tag-{secrets.token_hex(4)}:v1"
    p = dy("tag", "busybox", tag)
    assert p.returncode == 0, p.stderr
    try:
        img = json.loads(dy("image", "inspect", tag, check=True).stdout)[0]
        assert tag in img["RepoTags"] and "busybox:latest" in img["RepoTags"]
        assert tag.split(":")[0] in dy("images", check=True).stdout
    finally:
        p = dy("rmi", tag)
    assert p.returncode == 0, p.stderr
    assert f"Untagged: {tag}" in p.stdout
    assert "Deleted" not in p.stdout  # busybox:latest still holds the image
    assert dy("image", "inspect", "busybox").returncode == 0
    assert dy("image", "inspect", tag).returncode != 0


def test_rmi_refuses_image_in_use(container_cleanup):
    # a distinct image (own config, shared layer) so removing it never touches busybox
    repo = f"qa-rmi-{secrets.token_hex(4)}"
    tar = "/var/cache/dockyard/busybox-rootfs.tar"
    dy("import", "-c", f"ENV QA_RMI={repo}", tar, repo, check=True)
    name = uniq()
    container_cleanup.append(name)
    try:
        dy("create", "--name", name, repo, "true", check=True)
        p = dy("rmi", repo)
        assert p.returncode != 0
        assert "container" in p.stderr and "must force" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
        assert dy("image", "inspect", repo).returncode == 0
        dy("rm", name, check=True)
        p = dy("rmi", repo)
        assert p.returncode == 0, p.stderr
        assert "Deleted: sha256:" in p.stdout
    finally:
        dy("rm", "-f", name)
        dy("rmi", "-f", repo)
    assert dy("image", "inspect", repo).returncode != 0
    # the shared layer is still there for busybox
    assert dy("run", "--rm", "busybox", "true").returncode == 0


def test_sigkill_exit_code_is_always_137(container_cleanup):
    """The recorded exit code must come from the shim's wait status, never a fallback: kill
    several `sleep` containers (PID 1, no handler) and stop others; every one exits 137."""
    names = [run_d(container_cleanup, "busybox", "sleep", "100")[0] for _ in range(8)]
    for i, name in enumerate(names):
        if i % 2:
            dy("kill", name, check=True)
        else:
            dy("stop", "-t", "0", name, check=True)
    codes = {name: inspect(name)["State"]["ExitCode"] for name in names}
    assert set(codes.values()) == {137}, codes
    assert {dy("wait", n, check=True).stdout.strip() for n in names} == {"137"}
