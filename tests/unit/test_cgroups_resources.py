"""Pure tests of the cgroup package: OCI resource parsing, host detection, path rules.

Nothing here touches the real cgroup filesystem (see tests/integration/test_cgroups.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.runtime.cgroups import (
    CgroupInfo,
    CgroupManager,
    DeviceRule,
    Resources,
    V1Manager,
    V2Manager,
    open_manager,
    parse_proc_cgroup,
    shares_to_weight,
)
from dockyard.runtime.cgroups import v1 as v1_module
from dockyard.runtime.cgroups.base import limit_or_none, parse_flat_keyed, relative_cgroup_path
from dockyard.runtime.cgroups.detect import info_from_mountinfo, parse_mountinfo
from dockyard.runtime.cgroups.resources import blkio_weight_to_io_weight, valid_cpu_list

MiB = 1024 * 1024

# A docker-run-like linux.resources object (docker run --memory 64m --cpus 0.1 ...).
DOCKER_LIKE = {
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    ],
    "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB,
               "disableOOMKiller": False},
    "cpu": {"shares": 512, "quota": 10000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 10},
    "blockIO": {"weight": 500},
}


# ---- Resources.from_oci --------------------------------------------------------------


def test_none_and_empty_mean_no_limits() -> None:
    assert Resources.from_oci(None) == Resources()
    assert Resources.from_oci({}) == Resources()
    assert Resources.from_oci(None).is_empty()


def test_docker_like_spec_parses() -> None:
    r = Resources.from_oci(DOCKER_LIKE)
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period) == (512, 10000, 100000)
    assert (r.cpuset_cpus, r.cpuset_mems) == ("0-1", "0")
    assert (r.memory_limit, r.memory_swap, r.memory_reservation) == (64 * MiB, 128 * MiB, 32 * MiB)
    assert r.disable_oom_killer is False
    assert r.pids_limit == 10
    assert r.blkio_weight == 500
    assert r.devices == (
        DeviceRule(allow=False, type="a", major=None, minor=None, access="rwm"),
        DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"),
        DeviceRule(allow=True, type="c", major=136, minor=None, access="rwm"),
        DeviceRule(allow=True, type="b", major=None, minor=None, access="m"),
    )
    assert [d.to_v1() for d in r.devices] == ["a *:* rwm", "c 1:3 rwm", "c 136:* rwm", "b *:* m"]
    assert r.ignored == ()
    assert not r.is_empty()
    hash(r)  # frozen and hashable


def test_zero_means_unset_like_runc() -> None:
    r = Resources.from_oci({
        "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": " "},
        "memory": {"limit": 0, "swap": 0, "reservation": 0},
        "pids": {"limit": 0},
        "blockIO": {"weight": 0},
    })
    assert r == Resources()


@pytest.mark.parametrize("given,expected", [(1, 2), (2, 2), (1024, 1024), (262144, 262144),
                                            (10**9, 262144)])
def test_cpu_shares_clamped_like_the_kernel(given: int, expected: int) -> None:
    assert Resources.from_oci({"cpu": {"shares": given}}).cpu_shares == expected


@pytest.mark.parametrize("cpu,fragment", [
    ({"shares": -1}, "cpu.shares"),
    ({"quota": 999}, "cpu.quota"),
    ({"quota": -2}, "cpu.quota"),
    ({"period": 999}, "cpu.period"),
    ({"period": 1000001}, "cpu.period"),
    ({"shares": "1024"}, "expected an integer"),
    ({"quota": True}, "expected an integer"),
    ({"quota": 1.5}, "expected an integer"),
    ({"cpus": "3-1"}, "cpu.cpus"),
    ({"cpus": "0,,1"}, "cpu.cpus"),
    ({"cpus": "all"}, "cpu.cpus"),
    ({"mems": 0}, "cpu.mems"),
])
def test_bad_cpu_values(cpu: dict, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Resources.from_oci({"cpu": cpu})
    assert fragment in str(exc.value)
    assert "linux.resources.cpu" in str(exc.value)


def test_unlimited_values() -> None:
    r = Resources.from_oci({"cpu": {"quota": -1, "period": 1000000},
                            "memory": {"limit": -1, "swap": -1, "reservation": -1},
                            "pids": {"limit": -1}})
    assert (r.cpu_quota, r.cpu_period) == (-1, 1000000)
    assert (r.memory_limit, r.memory_swap, r.memory_reservation) == (-1, -1, -1)
    assert r.pids_limit == -1


def test_negative_pids_limit_means_unlimited() -> None:
    assert Resources.from_oci({"pids": {"limit": -5}}).pids_limit == -1


def test_swap_minus_one_alone_is_fine() -> None:
    assert Resources.from_oci({"memory": {"swap": -1}}).memory_swap == -1


@pytest.mark.parametrize("memory,fragment", [
    ({"limit": -2}, "memory.limit -2"),
    ({"reservation": -7}, "memory.reservation"),
    ({"limit": 64 * MiB, "swap": 32 * MiB}, "at least the memory limit"),
    ({"swap": 32 * MiB}, "needs a memory limit"),
    ({"limit": -1, "swap": 32 * MiB}, "needs a memory limit"),
    ({"limit": 32 * MiB, "reservation": 64 * MiB}, "must not exceed"),
    ({"limit": "64m"}, "expected an integer"),
    ({"disableOOMKiller": "yes"}, "disableOOMKiller"),
])
def test_bad_memory_values(memory: dict, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Resources.from_oci({"memory": memory})
    assert fragment in str(exc.value)


def test_disable_oom_killer() -> None:
    assert Resources.from_oci({"memory": {"disableOOMKiller": True}}).disable_oom_killer is True
    assert Resources.from_oci({"memory": {"disableOOMKiller": None}}).disable_oom_killer is False


@pytest.mark.parametrize("weight", [1, 9, 1001])
def test_bad_blkio_weight(weight: int) -> None:
    with pytest.raises(InvalidArgument, match="blockIO.weight"):
        Resources.from_oci({"blockIO": {"weight": weight}})


@pytest.mark.parametrize("rule,fragment", [
    ({"type": "c", "access": "rwm"}, "allow"),
    ({"allow": "yes"}, "allow"),
    ({"allow": True, "type": "x"}, "type"),
    ({"allow": True, "type": "c", "major": -3}, "major"),
    ({"allow": True, "type": "c", "minor": "1"}, "minor"),
    ({"allow": True, "access": "rwx"}, "access"),
    ("c 1:3 rwm", "expected an object"),
])
def test_bad_device_rules(rule: object, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Resources.from_oci({"devices": [{"allow": False}, rule]})
    assert "devices[1]" in str(exc.value) and fragment in str(exc.value)


def test_device_access_is_normalised() -> None:
    (rule,) = Resources.from_oci({"devices": [{"allow": True, "type": "c", "major": 5,
                                               "minor": 1, "access": "mwrr"}]}).devices
    assert rule.access == "rwm" and rule.to_v1() == "c 5:1 rwm"


def test_devices_must_be_a_list() -> None:
    with pytest.raises(InvalidArgument, match="devices"):
        Resources.from_oci({"devices": {"allow": False}})


@pytest.mark.parametrize("bad", [[], "x", 5])
def test_resources_and_sections_must_be_objects(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        Resources.from_oci(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="linux.resources.memory"):
        Resources.from_oci({"memory": bad})


def test_unenforced_fields_are_reported_not_rejected() -> None:
    r = Resources.from_oci({
        "memory": {"limit": 64 * MiB, "kernel": 1 << 30, "swappiness": 0, "kernelTCP": None},
        "cpu": {"realtimeRuntime": 950000},
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
        "network": {},
        "unified": {"memory.high": "50M"},
    })
    assert r.memory_limit == 64 * MiB
    assert r.ignored == ("blockIO.throttleReadBpsDevice", "cpu.realtimeRuntime",
                         "hugepageLimits", "memory.kernel", "unified")
    # `ignored` is informational: it does not change equality
    assert r == Resources(memory_limit=64 * MiB)


# ---- conversions ------------------------------------------------------------------------


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000)])
def test_shares_to_weight_matches_runc(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight
    assert shares_to_weight(shares) == 1 + ((shares - 2) * 9999) // 262142


@pytest.mark.parametrize("blkio,io", [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("text,ok", [("0", True), ("0-3,5", True), ("1,2,3", True), ("3-1", False),
                                     ("", False), ("0-", False), ("-1", False), ("0 1", False)])
def test_valid_cpu_list(text: str, ok: bool) -> None:
    assert valid_cpu_list(text) is ok


def test_limit_or_none_treats_page_counter_max_as_unlimited() -> None:
    assert limit_or_none(9223372036854771712) is None
    assert limit_or_none(64 * MiB) == 64 * MiB
    assert limit_or_none(None) is None


def test_parse_flat_keyed() -> None:
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\ngarbage\nbad x"
    assert parse_flat_keyed(text) == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}


# ---- host detection ------------------------------------------------------------------------

HYBRID = """\
23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

COMOUNTED = """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
35 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct
36 31 0:32 / /sys/fs/cgroup/net_cls,net_prio rw shared:13 - cgroup cgroup rw,net_cls,net_prio
37 31 0:33 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
"""


def test_hybrid_host_with_empty_unified_is_v1() -> None:
    info = info_from_mountinfo(HYBRID)
    assert info.version == 1 and info.driver == "cgroupfs"
    assert info.mountpoint == Path("/sys/fs/cgroup")
    assert info.controllers == ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer",
                                "memory", "pids")
    mounts = info.controller_mounts()
    assert mounts["cpu"] == Path("/sys/fs/cgroup/cpu")
    assert mounts["cpuacct"] == Path("/sys/fs/cgroup/cpuacct")
    assert "name=systemd" not in mounts


def test_comounted_controllers_share_a_directory() -> None:
    info = info_from_mountinfo(COMOUNTED)
    mounts = info.controller_mounts()
    assert mounts["cpu"] == mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert mounts["net_cls"] == Path("/sys/fs/cgroup/net_cls,net_prio")
    mgr = open_manager("/dockyard/abc", info)
    assert mgr.paths["cpu"] == mgr.paths["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct/dockyard/abc")
    assert isinstance(mgr, V1Manager)
    assert mgr._unique_dirs().count(Path("/sys/fs/cgroup/cpu,cpuacct/dockyard/abc")) == 1


def test_pure_v2_host(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    text = f"30 23 0:26 / {tmp_path} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    info = info_from_mountinfo(text, root=tmp_path)
    assert info.version == 2 and info.mountpoint == tmp_path
    assert info.controllers == ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
    mgr = open_manager("/dockyard/" + "a" * 64, info)
    assert isinstance(mgr, V2Manager) and mgr.version == 2
    assert mgr.paths == {"": tmp_path / "dockyard" / ("a" * 64)}


def test_no_cgroups_mounted() -> None:
    with pytest.raises(Unsupported, match="no cgroup"):
        info_from_mountinfo("23 1 0:21 / /sys rw - sysfs sysfs rw\n")


def test_mountinfo_escapes_and_optional_fields() -> None:
    line = r"40 31 0:37 / /mnt/my\040cg rw,relatime shared:1 master:2 - cgroup cgroup rw,pids,xattr"
    (entry,) = parse_mountinfo(line + "\n")
    assert entry.mountpoint == "/mnt/my cg" and entry.fstype == "cgroup"
    assert entry.super_options == ("rw", "pids", "xattr")


def test_parse_proc_cgroup() -> None:
    text = ("9:name=systemd:/\n4:memory:/dockyard/abc\n2:cpu,cpuacct:/dockyard/abc\n"
            "0::/user.slice\n")
    assert parse_proc_cgroup(text) == {"name=systemd": "/", "memory": "/dockyard/abc",
                                       "cpu": "/dockyard/abc", "cpuacct": "/dockyard/abc",
                                       "": "/user.slice"}
    assert parse_proc_cgroup("0::/\n") == {"": "/"}


# ---- paths and managers (no filesystem writes) -----------------------------------------------


def test_v1_paths_follow_docker_layout() -> None:
    info = CgroupInfo(version=1, mountpoint=Path("/sys/fs/cgroup"), controllers=("cpu", "memory"))
    mgr = open_manager("/dockyard/" + "f" * 64, info)
    assert mgr.version == 1
    interface = [n for n, v in vars(CgroupManager).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))]
    assert "destroy" in interface and all(hasattr(mgr, n) for n in interface)  # the structural interface
    assert mgr.paths == {"cpu": Path("/sys/fs/cgroup/cpu/dockyard/" + "f" * 64),
                         "memory": Path("/sys/fs/cgroup/memory/dockyard/" + "f" * 64)}


@pytest.mark.parametrize("bad", ["", "/", "//", "/dockyard/../etc", "a/./b", "x\0y"])
def test_bad_cgroups_paths(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="cgroupsPath"):
        relative_cgroup_path(bad)


def test_systemd_cgroups_path_unsupported() -> None:
    with pytest.raises(Unsupported, match="systemd"):
        relative_cgroup_path("system.slice:docker:abc")


def test_relative_path_is_taken_from_the_root() -> None:
    assert str(relative_cgroup_path("dockyard/abc")) == "dockyard/abc"
    assert str(relative_cgroup_path("/dockyard/abc/")) == "dockyard/abc"


def test_open_manager_rejects_unknown_versions_and_drivers() -> None:
    with pytest.raises(Unsupported, match="version 3"):
        open_manager("/x", CgroupInfo(version=3))
    with pytest.raises(Unsupported, match="systemd"):
        open_manager("/x", CgroupInfo(version=2, driver="systemd"))


def test_v1_limit_for_unmounted_controller_is_unsupported(tmp_path: Path) -> None:
    info = CgroupInfo(version=1, mountpoint=tmp_path, controllers=("cpu",))
    mgr = open_manager("/t/x", info)
    with pytest.raises(Unsupported) as exc:
        mgr.apply(Resources(cpu_shares=512, pids_limit=10))
    assert "pids controller is not mounted" in str(exc.value)
    mgr.apply(Resources())  # nothing asked: nothing to do, no error
    assert not (tmp_path / "cpu" / "t").exists()  # nothing was written before the check


def test_v2_limit_for_unavailable_controller_is_unsupported(tmp_path: Path) -> None:
    leaf = tmp_path / "t" / "x"
    leaf.mkdir(parents=True)
    (leaf / "cgroup.controllers").write_text("cpu pids\n")
    mgr = open_manager("/t/x", CgroupInfo(version=2, mountpoint=tmp_path))
    with pytest.raises(Unsupported) as exc:
        mgr.apply(Resources(memory_limit=64 * MiB, blkio_weight=100, pids_limit=5))
    msg = str(exc.value)
    assert "memory, io controllers are not available" in msg and str(leaf) in msg
    assert not (leaf / "pids.max").exists()
    mgr.apply(Resources())
    # device rules need eBPF on v2: skipped, not an error
    mgr.apply(Resources(devices=(DeviceRule(allow=False),)))


@pytest.mark.parametrize("current,new_limit,new_swap,order", [
    # growing: memsw must go up before the memory limit
    (128 * MiB, 256 * MiB, 512 * MiB, ["memsw", "limit"]),
    (128 * MiB, 64 * MiB, -1, ["memsw", "limit"]),
    # shrinking (or from unlimited): memory limit first, then memsw
    (512 * MiB, 32 * MiB, 64 * MiB, ["limit", "memsw"]),
    (9223372036854771712, 32 * MiB, 32 * MiB, ["limit", "memsw"]),
])
def test_v1_memory_write_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, current: int,
                               new_limit: int, new_swap: int, order: list[str]) -> None:
    (tmp_path / "memory.memsw.limit_in_bytes").write_text(f"{current}\n")
    writes: list[tuple[str, str]] = []
    monkeypatch.setattr(v1_module, "write_value",
                        lambda path, value: writes.append((path.name, str(value))))
    v1_module._apply_memory(tmp_path, Resources(memory_limit=new_limit, memory_swap=new_swap))
    names = {"memory.limit_in_bytes": "limit", "memory.memsw.limit_in_bytes": "memsw"}
    assert [names[n] for n, _ in writes] == order
    assert dict(writes) == {"memory.limit_in_bytes": str(new_limit),
                            "memory.memsw.limit_in_bytes": str(new_swap)}


def test_v1_swap_ignored_without_swap_accounting(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    writes: list[tuple[str, str]] = []
    monkeypatch.setattr(v1_module, "write_value",
                        lambda path, value: writes.append((path.name, str(value))))
    v1_module._apply_memory(tmp_path, Resources(memory_limit=64 * MiB, memory_swap=128 * MiB,
                                                disable_oom_killer=True))
    assert writes == [("memory.limit_in_bytes", str(64 * MiB)), ("memory.oom_control", "1")]
