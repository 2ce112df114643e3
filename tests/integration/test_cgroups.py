"""The cgroup drivers against the real kernel (root only).

Every test works under /dockyard-test-cg/<random hex> (never /dockyard, which the
engine uses), kills the processes it started by PID and destroys its cgroups, even on
failure; the module fixture finally removes the /dockyard-test-cg parents.

Each test runs for both drivers where the host allows:
* "v1": the host's v1 hierarchies, when the host is cgroup v1 (or hybrid);
* "v2": the host's unified hierarchy - /sys/fs/cgroup on a pure v2 host, or the
  (usually controller-less) cgroup2 at /sys/fs/cgroup/unified on a hybrid host.
A test needing a controller the hierarchy lacks is skipped with the reason.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.errors import Unsupported
from dockyard.runtime.cgroups import (
    CgroupInfo,
    CgroupManager,
    Resources,
    cgroup_of_pid,
    detect,
    open_manager,
)
from dockyard.runtime.cgroups.detect import parse_mountinfo

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0,
                       reason="cgroup tests need root on Linux"),
]

PARENT = "dockyard-test-cg"
MiB = 1024 * 1024
BUSY = "while True: pass"


# ---- host discovery ---------------------------------------------------------------------


def _host_info() -> CgroupInfo | None:
    try:
        return detect()
    except (Unsupported, OSError):
        return None


def _v2_info() -> CgroupInfo | None:
    """The unified hierarchy: the host's if it is v2, else a hybrid host's cgroup2 mount."""
    host = _host_info()
    if host is not None and host.version == 2:
        return host
    try:
        mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return None
    for m in mounts:
        if m.fstype == "cgroup2" and m.root == "/":
            mp = Path(m.mountpoint)
            controllers = tuple((mp / "cgroup.controllers").read_text().split())
            return CgroupInfo(version=2, mountpoint=mp, controllers=controllers)
    return None


HOST = _host_info()
V2 = _v2_info()


def _all_roots() -> list[Path]:
    roots = []
    if HOST is not None and HOST.version == 1:
        roots.extend(HOST.controller_mounts().values())
    if V2 is not None:
        roots.append(V2.mountpoint)
    return list(dict.fromkeys(roots))


def _remove_tree(top: Path) -> None:
    """Kill whatever is left under `top` and rmdir it bottom-up (best effort)."""
    if not top.is_dir():
        return
    dirs = [Path(d) for d, _, _ in os.walk(top)]
    for d in reversed(dirs):
        for _ in range(50):
            try:
                procs = (d / "cgroup.procs").read_text().split()
            except OSError:
                procs = []
            for pid in procs:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for state, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if (d / state).exists():
                    try:
                        (d / state).write_text(value)
                    except OSError:
                        pass
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


@pytest.fixture(scope="module", autouse=True)
def _remove_test_parents() -> Iterator[None]:
    yield
    for root in _all_roots():
        _remove_tree(root / PARENT)
    leftovers = [str(r / PARENT) for r in _all_roots() if (r / PARENT).exists()]
    assert not leftovers, f"could not remove test cgroups: {leftovers}"


# ---- per-test harness --------------------------------------------------------------------


@dataclass
class Harness:
    mgr: CgroupManager
    info: CgroupInfo
    name: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def spawn(self, code: str, add: bool = True, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        p = subprocess.Popen([sys.executable, "-c", code], **kw)
        self.procs.append(p)
        if add:
            self.mgr.add_pid(p.pid)
        return p

    def sleeper(self) -> subprocess.Popen:
        p = subprocess.Popen(["sleep", "300"])
        self.procs.append(p)
        self.mgr.add_pid(p.pid)
        return p

    def has(self, controller: str) -> bool:
        if self.mgr.version == 1:
            return controller in self.mgr.paths
        return controller in (self.mgr.paths[""] / "cgroup.controllers").read_text().split()

    def require(self, controller: str) -> None:
        if not self.has(controller):
            where = self.info.mountpoint if self.mgr.version == 2 else "this host's v1 mounts"
            pytest.skip(f"cgroup v{self.mgr.version} at {where} has no {controller} controller")

    def file(self, controller: str, name: str) -> Path:
        key = controller if self.mgr.version == 1 else ""
        return self.mgr.paths[key] / name

    def read(self, controller: str, name: str) -> str:
        return self.file(controller, name).read_text().strip()

    def cleanup(self) -> None:
        try:
            if self.mgr.is_frozen():
                self.mgr.thaw()
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass
        try:  # also whatever our processes forked
            self.mgr.kill_all(signal.SIGKILL)
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.mgr.destroy()
        finally:
            for path in set(self.mgr.paths.values()):
                _remove_tree(path)


def _info_for(version: int) -> CgroupInfo:
    if version == 1:
        if HOST is None or HOST.version != 1:
            pytest.skip("host has no cgroup v1 hierarchies (pure cgroup v2)")
        return HOST
    if V2 is None:
        pytest.skip("no cgroup2 hierarchy is mounted on this host")
    return V2


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def cg(request: pytest.FixtureRequest) -> Iterator[Harness]:
    info = _info_for(request.param)
    name = secrets.token_hex(8)
    mgr = open_manager(f"/{PARENT}/{name}", info)
    h = Harness(mgr=mgr, info=info, name=name)
    try:
        mgr.create()
        yield h
    finally:
        h.cleanup()


#: use on a test to run it for one driver only
only_v1 = pytest.mark.parametrize("cg", [1], ids=["v1"], indirect=True)
only_v2 = pytest.mark.parametrize("cg", [2], ids=["v2"], indirect=True)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ---- lifecycle ---------------------------------------------------------------------------


def test_create_is_idempotent_and_lays_out_paths(cg: Harness) -> None:
    cg.mgr.create()
    for key, path in cg.mgr.paths.items():
        assert path.is_dir(), key
        assert path.parent.name == PARENT and path.name == cg.name
        root = cg.info.controller_mounts()[key] if cg.mgr.version == 1 else cg.info.mountpoint
        assert path == root / PARENT / cg.name
    if cg.mgr.version == 1:
        assert set(cg.mgr.paths) == set(cg.info.controllers)


@only_v1
def test_new_v1_cpuset_inherits_cpus_and_mems(cg: Harness) -> None:
    v1 = cg
    v1.require("cpuset")
    leaf = v1.mgr.paths["cpuset"]
    for name in ("cpuset.cpus", "cpuset.mems"):
        assert (leaf / name).read_text().strip()
        assert (leaf / name).read_text() == (leaf.parent / name).read_text()


def test_add_pid_and_pids(cg: Harness) -> None:
    assert cg.mgr.pids() == []
    a, b = cg.sleeper(), cg.sleeper()
    assert cg.mgr.pids() == sorted([a.pid, b.pid])
    where = cgroup_of_pid(a.pid)
    expected = f"/{PARENT}/{cg.name}"
    if cg.mgr.version == 1:
        for controller in cg.mgr.paths:
            assert where[controller] == expected, controller
    else:  # also on a hybrid host: the "0::" line is the unified hierarchy
        assert where[""] == expected


def test_destroy_is_idempotent_and_keeps_the_parent(cg: Harness) -> None:
    p = cg.sleeper()
    p.kill()
    p.wait()
    cg.mgr.destroy()
    for path in cg.mgr.paths.values():
        assert not path.exists()
        assert path.parent.is_dir()  # the shared parent stays
    cg.mgr.destroy()


def test_destroy_removes_sub_cgroups(cg: Harness) -> None:
    for path in set(cg.mgr.paths.values()):
        (path / "inner" / "deeper").mkdir(parents=True)
    cg.mgr.destroy()
    assert not any(path.exists() for path in cg.mgr.paths.values())


def test_destroy_with_live_tasks_fails_with_ebusy(cg: Harness) -> None:
    cg.sleeper()
    cg.mgr.destroy_timeout = 0.2  # type: ignore[attr-defined]
    with pytest.raises(OSError) as exc:
        cg.mgr.destroy()
    assert exc.value.errno == errno.EBUSY
    assert PARENT in str(exc.value) and cg.name in str(exc.value)


def test_pids_includes_sub_cgroups(cg: Harness) -> None:
    p = cg.sleeper()
    for path in set(cg.mgr.paths.values()):
        (path / "inner").mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new v1 cpuset starts empty
            if (path / name).exists():
                (path / "inner" / name).write_text((path / name).read_text())
        (path / "inner" / "cgroup.procs").write_text(str(p.pid))
    assert cg.mgr.pids() == [p.pid]
    cg.mgr.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    cg.mgr.destroy()
    assert not any(path.exists() for path in cg.mgr.paths.values())


# ---- limits --------------------------------------------------------------------------


@only_v1
def test_apply_v1_limits_read_back(cg: Harness) -> None:
    v1 = cg
    for c in ("cpu", "cpuset", "memory", "pids", "devices"):
        v1.require(c)
    v1.sleeper()
    res = Resources.from_oci({
        "cpu": {"shares": 512, "quota": 10000, "period": 100000, "cpus": "0", "mems": "0"},
        "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB},
        "pids": {"limit": 10},
        "blockIO": {"weight": 500},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 136, "access": "rw"}],
    })
    v1.mgr.apply(res)
    assert v1.read("cpu", "cpu.cfs_quota_us") == "10000"
    assert v1.read("cpu", "cpu.cfs_period_us") == "100000"
    assert v1.read("cpu", "cpu.shares") == "512"
    assert v1.read("cpuset", "cpuset.cpus") == "0"
    assert v1.read("cpuset", "cpuset.mems") == "0"
    assert v1.read("memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert v1.read("memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    has_memsw = v1.file("memory", "memory.memsw.limit_in_bytes").exists()
    if has_memsw:
        assert v1.read("memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert v1.read("pids", "pids.max") == "10"
    assert v1.read("devices", "devices.list").splitlines() == ["c 1:3 rwm", "c 136:* rw"]
    for name in ("blkio.weight", "blkio.bfq.weight"):
        if v1.file("blkio", name).exists():
            assert v1.read("blkio", name).split()[-1] == "500"
            break

    # grow: memsw has to be raised before the memory limit
    v1.mgr.apply(Resources.from_oci({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}}))
    assert v1.read("memory", "memory.limit_in_bytes") == str(256 * MiB)
    if has_memsw:
        assert v1.read("memory", "memory.memsw.limit_in_bytes") == str(512 * MiB)
    # shrink: the other way round
    v1.mgr.apply(Resources.from_oci({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}))
    assert v1.read("memory", "memory.limit_in_bytes") == str(32 * MiB)
    if has_memsw:
        assert v1.read("memory", "memory.memsw.limit_in_bytes") == str(32 * MiB)
    # back to unlimited
    v1.mgr.apply(Resources.from_oci({"memory": {"limit": -1, "swap": -1},
                                     "cpu": {"quota": -1}, "pids": {"limit": -1}}))
    assert int(v1.read("memory", "memory.limit_in_bytes")) >= 1 << 62
    assert v1.read("cpu", "cpu.cfs_quota_us") == "-1"
    assert v1.read("pids", "pids.max") == "max"
    st = v1.mgr.stats()
    assert st.memory_limit is None and st.pids_limit is None


@only_v1
def test_apply_v1_disable_oom_killer(cg: Harness) -> None:
    v1 = cg
    v1.require("memory")
    v1.mgr.apply(Resources(memory_limit=64 * MiB, disable_oom_killer=True))
    assert "oom_kill_disable 1" in v1.read("memory", "memory.oom_control")


@only_v2
def test_apply_v2_limits(cg: Harness) -> None:
    cg.mgr.apply(Resources())  # nothing asked: never an error
    asks = {
        "cpu": Resources(cpu_quota=10000, cpu_period=100000, cpu_shares=1024),
        "cpuset": Resources(cpuset_cpus="0", cpuset_mems="0"),
        "memory": Resources(memory_limit=64 * MiB, memory_swap=128 * MiB,
                            memory_reservation=32 * MiB),
        "pids": Resources(pids_limit=10),
    }
    for controller, res in asks.items():
        if not cg.has(controller):
            with pytest.raises(Unsupported) as exc:
                cg.mgr.apply(res)
            assert f"the {controller} controller is not available" in str(exc.value)
            assert str(cg.mgr.paths[""]) in str(exc.value)
            continue
        cg.mgr.apply(res)
        if controller == "cpu":
            assert cg.read("", "cpu.max") == "10000 100000"
            assert cg.read("", "cpu.weight") == "39"
        elif controller == "cpuset":
            assert cg.read("", "cpuset.cpus") == "0"
        elif controller == "memory":
            assert cg.read("", "memory.max") == str(64 * MiB)
            assert cg.read("", "memory.low") == str(32 * MiB)
            if cg.file("", "memory.swap.max").exists():
                assert cg.read("", "memory.swap.max") == str(64 * MiB)
        elif controller == "pids":
            assert cg.read("", "pids.max") == "10"
    # device rules need eBPF on v2: accepted and skipped
    cg.mgr.apply(Resources.from_oci({"devices": [{"allow": False, "access": "rwm"}]}))


# ---- freezer -----------------------------------------------------------------------------


def test_freeze_and_thaw(cg: Harness) -> None:
    if cg.mgr.version == 1:
        cg.require("freezer")
    elif not cg.file("", "cgroup.freeze").exists():
        pytest.skip("this kernel has no cgroup v2 freezer (cgroup.freeze)")
    busy = cg.spawn(BUSY)
    time.sleep(0.2)
    assert not cg.mgr.is_frozen()
    cg.mgr.freeze()
    assert cg.mgr.is_frozen()
    if cg.mgr.version == 1:
        assert cg.read("freezer", "freezer.state") == "FROZEN"
        assert _state(busy.pid) == "D"  # v1 frozen tasks sleep uninterruptibly
    else:
        assert "frozen 1" in cg.read("", "cgroup.events")
    before = _cpu_ticks(busy.pid)
    time.sleep(0.3)
    assert _cpu_ticks(busy.pid) == before, "a frozen task kept running"
    cg.mgr.freeze()  # idempotent
    cg.mgr.thaw()
    assert not cg.mgr.is_frozen()
    assert _wait_for(lambda: _cpu_ticks(busy.pid) > before), "a thawed task did not run"
    assert _state(busy.pid) in ("R", "S")


def test_kill_all_reaches_frozen_tasks(cg: Harness) -> None:
    procs = [cg.sleeper() for _ in range(3)]
    can_freeze = (cg.has("freezer") if cg.mgr.version == 1
                  else cg.file("", "cgroup.freeze").exists())
    if can_freeze:
        cg.mgr.freeze()
    cg.mgr.kill_all(signal.SIGKILL)
    for p in procs:
        assert p.wait(timeout=10) == -signal.SIGKILL
    if can_freeze:
        assert not cg.mgr.is_frozen()
    assert _wait_for(lambda: cg.mgr.pids() == [])
    cg.mgr.destroy()


def test_kill_all_other_signal(cg: Harness) -> None:
    p = cg.sleeper()
    cg.mgr.kill_all(signal.SIGTERM)
    assert p.wait(timeout=10) == -signal.SIGTERM


# ---- accounting ------------------------------------------------------------------------


def test_stats(cg: Harness) -> None:
    cg.spawn(BUSY)
    if cg.has("memory") and cg.has("pids"):
        cg.mgr.apply(Resources(memory_limit=64 * MiB, pids_limit=10))
    assert _wait_for(lambda: cg.mgr.stats().cpu_usage_ns > 50_000_000)
    st = cg.mgr.stats()
    assert st.cpu_usage_ns > 0
    assert st.pids_current == 1
    assert st.oom_kill_count == 0
    if st.cpu_user_ns is not None:
        assert st.cpu_user_ns > 0
    if cg.has("memory"):
        assert st.memory_usage > 0
        assert st.memory_limit == 64 * MiB
        assert st.memory_stat
    if cg.has("pids"):
        assert st.pids_limit == 10
    if cg.mgr.version == 1 and cg.has("cpuacct"):
        assert st.per_cpu_usage_ns
        assert sum(st.per_cpu_usage_ns) > 0


HOG = """
import sys
sys.stdin.readline()
block = b"x" * (200 * 1024 * 1024)
print("survived", len(block))
"""


def test_memory_hog_is_oom_killed(cg: Harness) -> None:
    cg.require("memory")
    if cg.mgr.version == 1 and "oom_kill " not in cg.read("memory", "memory.oom_control"):
        pytest.skip("memory.oom_control has no oom_kill counter (kernel < 4.13)")
    cg.mgr.apply(Resources(memory_limit=32 * MiB, memory_swap=32 * MiB))
    hog = cg.spawn(HOG, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert cg.mgr.oom_kill_count() == 0
    out, _ = hog.communicate(b"go\n", timeout=60)
    assert hog.returncode == -signal.SIGKILL, out
    assert cg.mgr.oom_kill_count() >= 1
    assert cg.mgr.stats().oom_kill_count >= 1


FORKER = """
import os, sys, time
sys.stdin.readline()
children = []
result = "no EAGAIN"
for _ in range(50):
    try:
        pid = os.fork()
    except BlockingIOError:
        result = "EAGAIN"
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children.append(pid)
print(result, len(children), flush=True)
sys.stdin.readline()
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


def test_fork_beyond_pids_max_gets_eagain(cg: Harness) -> None:
    cg.require("pids")
    cg.mgr.apply(Resources(pids_limit=10))
    forker = cg.spawn(FORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert forker.stdin is not None and forker.stdout is not None
    forker.stdin.write("go\n")
    forker.stdin.flush()
    result, count = forker.stdout.readline().split()
    assert result == "EAGAIN"
    assert int(count) == 9  # the forker itself is the 10th task
    st = cg.mgr.stats()
    assert st.pids_current == 10 and st.pids_limit == 10
    assert len(cg.mgr.pids()) == 10
    forker.stdin.write("done\n")
    forker.stdin.flush()
    assert forker.wait(timeout=10) == 0
