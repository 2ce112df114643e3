"""Resource limits that work (issue 2: "And they work: ..."), not only the values in the cgroup files."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import subprocess
import time

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

# CPU-bound loop; prints the elapsed time measured inside the container from /proc/uptime
LOOP = ("read a _ < /proc/uptime; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; "
        "read b _ < /proc/uptime; echo $a $b")


def uniq(prefix: str = "lim") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def inspect(ref: str) -> dict:
    return json.loads(dy("inspect", ref, check=True).stdout)[0]


def _elapsed(cleanup: list[str], *flags: str) -> float:
    name = uniq()
    cleanup.append(name)
    p = dy("run", "--rm", "--name", name, *flags, "busybox", "sh", "-c", LOOP, timeout=300)
    assert p.returncode == 0, p.stderr
    a, b = (float(x) for x in p.stdout.split())
    return b - a


def test_cpu_quota_slows_a_cpu_bound_loop(container_cleanup):
    free = _elapsed(container_cleanup)
    limited = _elapsed(container_cleanup, "--cpu-quota=10000", "--cpu-period=100000")
    free2 = _elapsed(container_cleanup)
    base = max(min(free, free2), 0.05)  # /proc/uptime has 10 ms resolution
    assert limited >= 5 * base, f"unlimited {free:.2f}s/{free2:.2f}s, quota 10%: {limited:.2f}s"


def test_cpus_flag_slows_a_cpu_bound_loop(container_cleanup):
    free = _elapsed(container_cleanup)
    limited = _elapsed(container_cleanup, "--cpus", "0.1")
    assert limited >= 5 * max(free, 0.05), f"unlimited {free:.2f}s, --cpus 0.1: {limited:.2f}s"


def test_cpu_quota_throttling_is_accounted(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    cid = dy("run", "-d", "--name", name, "--cpu-quota=10000", "--cpu-period=100000", "busybox",
             "sh", "-c", "while :; do :; done", check=True).stdout.strip()
    stat = f"/sys/fs/cgroup/cpu/dockyard/{cid}/cpu.stat"
    end = time.monotonic() + 30
    throttled = 0
    while time.monotonic() < end:
        with open(stat) as f:
            throttled = int(re.search(r"^nr_throttled (\d+)", f.read(), re.M).group(1))
        if throttled >= 3:
            break
        time.sleep(0.1)
    assert throttled >= 3


def test_cpuset_pins_the_container(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "--cpuset-cpus", "0", "busybox", "grep", "Cpus_allowed_list",
           "/proc/self/status")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["Cpus_allowed_list:", "0"]


def test_memory_hog_is_oom_killed(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    # tail keeps the current (never-ending, newline-free) line of /dev/zero in memory
    p = dy("run", "--name", name, "-m", "16m", "--memory-swap", "16m", "busybox", "tail", "/dev/zero", timeout=120)
    assert p.returncode == 137, p.stderr
    st = inspect(name)["State"]
    assert st["OOMKilled"] is True
    assert st["ExitCode"] == 137
    assert st["Status"] == "exited"
    # within the limit nothing is killed
    name2 = uniq()
    container_cleanup.append(name2)
    p = dy("run", "--name", name2, "-m", "64m", "--memory-swap", "64m", "busybox", "sh", "-c",
           "head -c 8000000 /dev/zero | tr '\\0' a | (read -r x; echo ${#x})")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "8000000"
    assert inspect(name2)["State"]["OOMKilled"] is False


def test_oom_in_child_only_not_pid1(container_cleanup):
    # the hog is a child; PID 1 survives and reports; Docker still marks OOMKilled
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--name", name, "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
           "tail /dev/zero; echo child=$?")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "child=137"
    assert inspect(name)["State"]["OOMKilled"] is True


def test_memory_limit_seen_by_stats(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    cid = dy("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "100", check=True).stdout.strip()
    with open(f"/sys/fs/cgroup/memory/dockyard/{cid}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 32 * 1024 * 1024
    out = dy("stats", "--no-stream", "--format", "{{.MemUsage}}", name, check=True).stdout
    assert out.strip().endswith("/ 32MiB"), out


def _pids_file(cid: str, fname: str) -> str:
    with open(f"/sys/fs/cgroup/pids/dockyard/{cid}/{fname}") as f:
        return f.read()


def test_fork_bomb_is_contained(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    cid = dy("run", "-d", "--name", name, "--pids-limit", "30", "busybox", "sh", "-c",
             "bomb() { bomb | bomb & }; bomb; sleep 1000", check=True).stdout.strip()
    assert _pids_file(cid, "pids.max").strip() == "30"
    # wait until the kernel has refused forks (the bomb hit the limit)
    end = time.monotonic() + 60
    samples = []
    while time.monotonic() < end:
        samples.append(int(_pids_file(cid, "pids.current")))
        refused = int(re.search(r"^max (\d+)", _pids_file(cid, "pids.events"), re.M).group(1))
        if refused > 0 and len(samples) > 20:
            break
        time.sleep(0.05)
    assert refused > 0, "the fork bomb never reached the limit"
    assert max(samples) <= 30, samples
    if os.path.exists(f"/sys/fs/cgroup/pids/dockyard/{cid}/pids.peak"):
        assert int(_pids_file(cid, "pids.peak")) <= 30
    # the host is fine: it can still fork and exec
    assert subprocess.run(["true"], timeout=30).returncode == 0
    assert dy("ps", "-q", "--no-trunc", check=True).returncode == 0
    # the container can be removed, with every process of the bomb
    tasks = _pids_file(cid, "tasks").split()
    assert tasks
    p = dy("rm", "-f", name, timeout=120)
    assert p.returncode == 0, p.stderr
    assert not glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}")
    alive = [t for t in tasks if os.path.exists(f"/proc/{t}") and _in_cgroup(t, cid)]
    assert not alive, alive


def _in_cgroup(pid: str, cid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return cid in f.read()
    except OSError:
        return False


def test_pids_limit_refuses_fork(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    # PID 1 (sh) + 5 sleeps = 6 > 5: the last fork fails
    p = dy("run", "--rm", "--name", name, "--pids-limit", "5", "busybox", "sh", "-c",
           "for i in 1 2 3 4 5; do sleep 30 & done 2>&1; echo done; kill $(jobs -p) 2>/dev/null; true")
    assert "can't fork" in p.stdout + p.stderr or "Resource temporarily unavailable" in p.stdout + p.stderr, \
        p.stdout + p.stderr


def test_kernel_memory_refused(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = dy("ps", "-aq", "--no-trunc", check=True).stdout.split()
    p = dy("run", "--rm", "--name", name, "--kernel-memory", "10m", "busybox", "true")
    assert p.returncode == 125
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "kernel-memory" in lines[0] and "Traceback" not in p.stderr
    assert dy("ps", "-aq", "--no-trunc", check=True).stdout.split() == before


def test_memory_below_minimum_refused(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-m", "4m", "busybox", "true")
    assert p.returncode == 125
    assert "Minimum memory limit allowed is 6MB" in p.stderr


def test_memory_swap_smaller_than_memory_refused(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "-m", "32m", "--memory-swap", "16m", "busybox", "true")
    assert p.returncode == 125
    assert "Minimum memoryswap limit should be larger than memory limit" in p.stderr
