"""Isolation, as the Docker article shows it: namespaces, rootfs, /proc /sys /dev, security defaults,
cgroups named by the container ID (issue 2, Containers: Isolation / Security defaults / Resource limits)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
CAP_NET_ADMIN = 12


def uniq(prefix: str = "iso") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def inspect(ref: str) -> dict:
    return json.loads(dy("inspect", ref, check=True).stdout)[0]


def run(cleanup: list[str], *args: str) -> subprocess.CompletedProcess:
    """`run --rm --name <unique>` in the foreground; returns the finished CLI process."""
    name = uniq()
    cleanup.append(name)
    return dy("run", "--rm", "--name", name, *args)


def out(cleanup: list[str], *args: str) -> str:
    p = run(cleanup, *args)
    assert p.returncode == 0, f"run {args} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def run_d(cleanup: list[str], *args: str) -> tuple[str, str]:
    name = uniq()
    cleanup.append(name)
    cid = dy("run", "-d", "--name", name, *args, check=True).stdout.strip()
    return name, cid


def status_field(text: str, key: str) -> str:
    m = re.search(rf"^{key}:\s*(\S+)", text, re.M)
    assert m, f"{key} not in\n{text}"
    return m.group(1)


def host_status(key: str) -> str:
    with open("/proc/self/status") as f:
        return status_field(f.read(), key)


# ---- PID namespace -------------------------------------------------------------------------


def test_ps_sees_only_the_container(container_cleanup):
    text = out(container_cleanup, "busybox", "sh", "-c", "ps; true")
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["PID", "USER"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 2, text  # sh and ps, nothing of the host
    assert rows[0][0] == "1" and rows[0][1] == "root" and "sh -c" in lines[1]
    assert "ps" in lines[2]


def test_command_is_pid_1(container_cleanup):
    assert out(container_cleanup, "busybox", "sh", "-c", "echo $$").strip() == "1"


def test_top_pid_is_host_pid(container_cleanup):
    """Article: the container's PID 1 is an ordinary host process with another PID."""
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    assert pid > 1
    with open(f"/proc/{pid}/status") as f:
        st = f.read()
    # NSpid: host PID, then PID 1 in the container's namespace
    assert re.search(rf"^NSpid:\s+{pid}\s+1$", st, re.M), st
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"100"]


# ---- namespaces ----------------------------------------------------------------------------


def _ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_namespaces_differ_from_host(container_cleanup):
    name, _ = run_d(container_cleanup, "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    for kind in ("pid", "mnt", "uts", "ipc", "net"):
        assert _ns(pid, kind) != _ns("self", kind), kind
    # two containers do not share either
    name2, _ = run_d(container_cleanup, "busybox", "sleep", "100")
    pid2 = inspect(name2)["State"]["Pid"]
    for kind in ("pid", "mnt", "uts", "ipc", "net"):
        assert _ns(pid, kind) != _ns(pid2, kind), kind


def test_network_host_shares_net_ns(container_cleanup):
    name, _ = run_d(container_cleanup, "--network", "host", "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    assert _ns(pid, "net") == _ns("self", "net")
    assert _ns(pid, "pid") != _ns("self", "pid")
    assert inspect(name)["HostConfig"]["NetworkMode"] == "host"


def test_hostname_is_short_id(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sh", "-c", "hostname; cat /etc/hostname; echo $HOSTNAME")
    assert dy("wait", name, check=True).stdout.strip() == "0"
    assert dy("logs", name, check=True).stdout.split() == [cid[:12]] * 3
    assert inspect(name)["Config"]["Hostname"] == cid[:12]
    assert os.uname().nodename != cid[:12]


def test_etc_hosts_and_resolv(container_cleanup):
    text = out(container_cleanup, "-h", "qa-h", "busybox", "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf")
    hosts, resolv = text.split("---\n")
    assert re.search(r"^127\.0\.0\.1\s+localhost", hosts, re.M)
    assert resolv.strip() == "" or re.search(r"^(nameserver|search|options) ", resolv, re.M)


# ---- network -------------------------------------------------------------------------------


def _ifaces(proc_net_dev: str) -> list[str]:
    return [line.split(":")[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line]


def test_network_none_is_private_loopback(container_cleanup):
    text = out(container_cleanup, "--network", "none", "busybox", "sh", "-c",
               "cat /proc/net/dev; echo ---; ip link; echo ---; ip addr show lo")
    dev, link, addr = text.split("---\n")
    assert _ifaces(dev) == ["lo"]
    assert re.search(r"^1: lo: <LOOPBACK,UP", link, re.M), link
    assert len(re.findall(r"^\d+: ", link, re.M)) == 1
    assert "inet 127.0.0.1/8" in addr


def test_default_network_is_its_own_namespace_with_lo_and_eth0(container_cleanup):
    text = out(container_cleanup, "busybox", "sh", "-c", "cat /proc/net/dev")
    assert sorted(_ifaces(text)) == ["eth0", "lo"]


def test_loopback_works_inside(container_cleanup):
    # traffic to 127.0.0.1 inside the container's own namespace only
    p = run(container_cleanup, "busybox", "sh", "-c",
            "nc -l -p 4321 -e echo pong & sleep 0.3; echo ping | nc 127.0.0.1 4321; wait")
    if "applet not found" in p.stderr or "invalid option" in p.stderr:
        pytest.skip("busybox nc lacks -l/-e")
    assert p.returncode == 0, p.stderr
    assert "pong" in p.stdout


def test_network_none(container_cleanup):
    text = out(container_cleanup, "--network", "none", "busybox", "cat", "/proc/net/dev")
    assert _ifaces(text) == ["lo"]


def test_network_host_sees_host_interfaces(container_cleanup):
    with open("/proc/net/dev") as f:
        host = sorted(_ifaces(f.read()))
    text = out(container_cleanup, "--network", "host", "busybox", "cat", "/proc/net/dev")
    assert sorted(_ifaces(text)) == host


# ---- rootfs and mounts ---------------------------------------------------------------------


def _mounts(text: str) -> dict[str, tuple[str, str, set[str]]]:
    res = {}
    for line in text.splitlines():
        dev, mnt, fstype, opts = line.split()[:4]
        res[mnt] = (dev, fstype, set(opts.split(",")))
    return res


def test_rootfs_is_overlay(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sh", "-c", "cat /proc/mounts")
    dy("wait", name, check=True)
    text = dy("logs", name, check=True).stdout
    assert text.splitlines()[0].startswith("overlay / overlay ")
    gd = inspect(name)["GraphDriver"]["Data"]
    root_opts = _mounts(text)["/"][2]
    assert f"upperdir={gd['UpperDir']}" in root_opts
    assert f"workdir={gd['WorkDir']}" in root_opts
    assert f"lowerdir={gd['LowerDir']}" in root_opts


def test_writes_go_to_upper_dir(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sh", "-c", "echo data > /newfile; rm /bin/ls")
    assert dy("wait", name, check=True).stdout.strip() == "0"
    upper = inspect(name)["GraphDriver"]["Data"]["UpperDir"]
    with open(os.path.join(upper, "newfile")) as f:
        assert f.read() == "data\n"
    st = os.lstat(os.path.join(upper, "bin", "ls"))  # overlayfs whiteout: char device 0:0
    assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0 and (st.st_mode & 0o170000) == 0o020000
    # the image is untouched: a new container still has /bin/ls and no /newfile
    text = out(container_cleanup, "busybox", "sh", "-c", "ls /bin/ls; ls /newfile 2>&1; true")
    assert "/bin/ls" in text and "No such file" in text


def test_pivot_root_not_chroot(container_cleanup, tmp_path):
    marker = tmp_path / f"host-marker-{secrets.token_hex(4)}"
    marker.write_text("host")
    text = out(container_cleanup, "busybox", "sh", "-c",
               f"readlink /proc/1/root; ls {marker} 2>&1; ls /proc/1/root/{tmp_path} 2>&1; true")
    lines = text.splitlines()
    assert lines[0] == "/"
    assert "No such file" in lines[1] and "No such file" in lines[2]
    # the namespace's root (what setns(CLONE_NEWNS) gives) holds only the container's tree:
    # with chroot the host's whole tree would still be there
    name, _ = run_d(container_cleanup, "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    p = subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "cat", "/proc/self/mounts"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    mounts = _mounts(p.stdout)
    assert mounts["/"][1] == "overlay"
    with open("/proc/self/mounts") as f:
        host_points = set(_mounts(f.read()))
    standard = {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"}
    leaked = {m for m in mounts if m in host_points and m not in standard and not m.startswith(("/sys/fs/cgroup", "/proc/"))}
    assert not leaked, leaked
    p = subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "ls", str(tmp_path)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0  # host paths are not reachable from the container's mount namespace


def test_sys_and_proc_sys_read_only(container_cleanup):
    script, expect = "exec 2>&1; touch /sys/qa; echo x > /proc/sys/kernel/hostname; ", 2
    if os.path.exists("/proc/sysrq-trigger"):  # absent on this kernel
        script, expect = script + "echo h > /proc/sysrq-trigger; ", 3
    p = run(container_cleanup, "busybox", "sh", "-c", script + "true")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert len(lines) == expect, p.stdout
    assert all("Read-only file system" in line for line in lines), p.stdout
    m = _mounts(out(container_cleanup, "busybox", "cat", "/proc/mounts"))
    assert "ro" in m["/sys"][2]
    assert m["/proc/sys"][1] == "proc" and "ro" in m["/proc/sys"][2]
    for path in ("/proc/bus", "/proc/fs", "/proc/irq"):
        if os.path.exists(path):
            assert "ro" in m[path][2], path
    assert "rw" in m["/proc"][2]


def test_masked_paths(container_cleanup):
    # /proc/kcore does not exist on this kernel; timer_list does and has content on the host
    with open("/proc/timer_list") as f:
        assert len(f.read()) > 0
    text = out(container_cleanup, "busybox", "sh", "-c",
               "wc -c < /proc/timer_list; wc -c < /proc/keys; ls -A /proc/acpi | wc -l; ls -A /sys/firmware | wc -l;"
               " wc -c < /proc/kcore 2>/dev/null || echo absent")
    vals = text.split()
    assert vals[:4] == ["0", "0", "0", "0"], text
    if os.path.exists("/proc/kcore"):
        assert vals[4] == "0"
    m = _mounts(out(container_cleanup, "busybox", "cat", "/proc/mounts"))
    assert "/proc/timer_list" in m and "/proc/keys" in m and "/sys/firmware" in m
    if os.path.exists("/sys/firmware"):
        assert "ro" in m["/sys/firmware"][2]


def test_privileged_lifts_masks_and_ro(container_cleanup):
    text = out(container_cleanup, "--privileged", "busybox", "sh", "-c",
               "wc -c < /proc/timer_list; grep -c /proc/sys /proc/mounts; true")
    vals = text.split()
    assert int(vals[0]) > 0, text
    assert vals[1] == "0", text  # no read-only /proc/sys bind


def test_dev_nodes(container_cleanup):
    text = out(container_cleanup, "busybox", "sh", "-c",
               "exec 2>&1; ls -l /dev; echo ---; cat /proc/mounts; echo ---; echo x > /dev/null && head -c 4 /dev/zero | wc -c;"
               " head -c 4 /dev/urandom | wc -c; echo x > /dev/full; true")
    ls, mounts, io = text.split("---\n")
    entries = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in ls.splitlines()[1:]}
    for node, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                                 "urandom": (1, 9), "tty": (5, 0)}.items():
        assert node in entries, (node, ls)
        assert entries[node].startswith("c"), entries[node]
        assert re.search(rf"\s{major},\s*{minor}\s", entries[node]), entries[node]
    for link, target in {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
                         "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}.items():
        assert link in entries and entries[link].startswith("l") and entries[link].endswith(f"-> {target}"), link
    m = _mounts(mounts)
    assert m["/dev"][1] == "tmpfs"
    assert m["/dev/pts"][1] == "devpts" and "ptmxmode=666" in m["/dev/pts"][2]
    assert m["/dev/shm"][1] == "tmpfs"
    assert m["/dev/mqueue"][1] == "mqueue"
    assert io.split()[:2] == ["4", "4"]
    assert "No space left on device" in io


def test_dev_pts_is_private(container_cleanup):
    # the container's devpts is its own instance: a host pty is not there
    master, slave = os.openpty()
    try:
        assert any(p.isdigit() for p in os.listdir("/dev/pts"))
        text = out(container_cleanup, "busybox", "ls", "/dev/pts")
    finally:
        os.close(master)
        os.close(slave)
    assert text.split() == ["ptmx"]


def test_device_cgroup_denies_host_disk(container_cleanup):
    # default device allow list: mknod of a block device works (CAP_MKNOD) but opening it is denied
    p = run(container_cleanup, "busybox", "sh", "-c", "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda")
    assert p.returncode != 0
    assert "Operation not permitted" in p.stderr


def test_device_flag(container_cleanup):
    text = out(container_cleanup, "--device", "/dev/zero:/dev/qazero", "busybox", "sh", "-c",
               "ls -l /dev/qazero; head -c 3 /dev/qazero | wc -c")
    assert re.search(r"^c.*\s1,\s*5\s.*/dev/qazero$", text, re.M), text
    assert text.split()[-1] == "3"


# ---- capabilities and privileges -----------------------------------------------------------


def _caps(cleanup, *flags: str) -> dict[str, int]:
    text = out(cleanup, *flags, "busybox", "cat", "/proc/self/status")
    return {k: int(status_field(text, k), 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")}


def test_default_capabilities(container_cleanup):
    caps = _caps(container_cleanup)
    assert caps["CapEff"] == DOCKER_DEFAULT_CAPS, hex(caps["CapEff"])
    assert caps["CapPrm"] == DOCKER_DEFAULT_CAPS
    assert caps["CapBnd"] == DOCKER_DEFAULT_CAPS
    assert caps["CapInh"] == 0 and caps["CapAmb"] == 0


def test_cap_drop_all(container_cleanup):
    caps = _caps(container_cleanup, "--cap-drop", "ALL")
    assert caps["CapEff"] == 0 and caps["CapBnd"] == 0
    p = run(container_cleanup, "--cap-drop", "ALL", "busybox", "chown", "1:1", "/tmp")
    assert p.returncode != 0 and "Operation not permitted" in p.stderr


def test_cap_add_net_admin(container_cleanup):
    caps = _caps(container_cleanup, "--cap-add", "NET_ADMIN")
    assert caps["CapEff"] == DOCKER_DEFAULT_CAPS | (1 << CAP_NET_ADMIN), hex(caps["CapEff"])
    caps = _caps(container_cleanup, "--cap-add", "CAP_NET_ADMIN", "--cap-drop", "CHOWN")
    assert caps["CapEff"] == (DOCKER_DEFAULT_CAPS | (1 << CAP_NET_ADMIN)) & ~1
    # and it works: set lo down is refused without it and allowed with it
    p = run(container_cleanup, "busybox", "ip", "link", "set", "lo", "down")
    assert p.returncode != 0
    p = run(container_cleanup, "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "set", "lo", "down")
    assert p.returncode == 0, p.stderr


def test_privileged_gets_host_caps(container_cleanup):
    caps = _caps(container_cleanup, "--privileged")
    host_bnd = int(host_status("CapBnd"), 16)
    assert caps["CapEff"] == host_bnd, (hex(caps["CapEff"]), hex(host_bnd))
    assert caps["CapBnd"] == host_bnd


def test_non_root_user_has_no_effective_caps(container_cleanup):
    caps = _caps(container_cleanup, "-u", "1000")
    assert caps["CapEff"] == 0
    assert caps["CapBnd"] == DOCKER_DEFAULT_CAPS


def test_no_new_privileges(container_cleanup):
    text = out(container_cleanup, "busybox", "cat", "/proc/self/status")
    assert status_field(text, "NoNewPrivs") == "0"
    text = out(container_cleanup, "--security-opt", "no-new-privileges", "busybox", "cat", "/proc/self/status")
    assert status_field(text, "NoNewPrivs") == "1"
    text = out(container_cleanup, "--security-opt", "no-new-privileges:true", "busybox", "cat", "/proc/self/status")
    assert status_field(text, "NoNewPrivs") == "1"


def test_read_only_rootfs(container_cleanup):
    p = run(container_cleanup, "--read-only", "busybox", "sh", "-c",
            "touch /x 2>&1; echo ok > /dev/shm/f && cat /dev/shm/f; echo data > /dev/null && echo devnull")
    assert "Read-only file system" in p.stdout
    assert "ok" in p.stdout and "devnull" in p.stdout
    p = run(container_cleanup, "busybox", "sh", "-c", "touch /x && echo wrote")
    assert p.stdout.strip() == "wrote"


# ---- ulimits / sysctl / shm / init -----------------------------------------------------------


def test_ulimit_nofile(container_cleanup):
    text = out(container_cleanup, "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert text.split() == ["1024", "2048"]
    text = out(container_cleanup, "--ulimit", "nproc=500", "busybox", "sh", "-c", "ulimit -u; ulimit -Hu")
    assert text.split() == ["500", "500"]


def test_sysctl_is_per_container(container_cleanup):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_fwd = f.read().strip()
    with open("/proc/sys/kernel/msgmax") as f:
        host_msgmax = f.read().strip()
    # a new netns inherits ip_forward from the host (devconf_inherit_init_net=0): set the other value
    flipped = "0" if host_fwd == "1" else "1"
    text = out(container_cleanup, "--sysctl", f"net.ipv4.ip_forward={flipped}", "--sysctl", "kernel.msgmax=12345",
               "busybox", "sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert text.split() == [flipped, "12345"]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == host_fwd
    with open("/proc/sys/kernel/msgmax") as f:
        assert f.read().strip() == host_msgmax


def test_sysctl_not_namespaced_is_refused(container_cleanup):
    # Docker accepts only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)
    with open("/proc/sys/vm/swappiness") as f:
        before = f.read()
    try:
        p = run(container_cleanup, "--sysctl", "vm.swappiness=7", "busybox", "true")
        with open("/proc/sys/vm/swappiness") as f:
            after = f.read()
    finally:
        with open("/proc/sys/vm/swappiness", "w") as f:
            f.write(before)
    assert after == before, "a --sysctl for a host-wide knob changed the host"
    assert p.returncode == 125, p.stderr
    assert "Traceback" not in p.stderr and "vm.swappiness" in p.stderr


def test_sysctl_with_host_network_refused(container_cleanup):
    knob = "/proc/sys/net/ipv4/tcp_keepalive_probes"  # per-netns and harmless if it did leak
    with open(knob) as f:
        before = f.read().strip()
    flipped = "8" if before != "8" else "7"
    try:
        p = run(container_cleanup, "--network", "host", "--sysctl", f"net.ipv4.tcp_keepalive_probes={flipped}",
                "busybox", "true")
        with open(knob) as f:
            after = f.read().strip()
    finally:
        with open(knob, "w") as f:
            f.write(before)
    assert after == before, "a net.* sysctl with --network host changed the host"
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "net.ipv4.tcp_keepalive_probes" in p.stderr


def test_shm_size(container_cleanup):
    text = out(container_cleanup, "--shm-size", "8m", "busybox", "df", "-k", "/dev/shm")
    assert text.splitlines()[1].split()[1] == "8192", text
    text = out(container_cleanup, "busybox", "df", "-k", "/dev/shm")
    assert text.splitlines()[1].split()[1] == "65536", text


def test_ipc_namespace_private(container_cleanup):
    # a POSIX message queue made in one container is not visible in another
    qname = f"qa{secrets.token_hex(3)}"
    name, _ = run_d(container_cleanup, "busybox", "sh", "-c", f"touch /dev/mqueue/{qname} && echo made; sleep 100")
    for _ in range(100):
        if "made" in dy("logs", name).stdout:
            break
        time.sleep(0.1)
    assert "made" in dy("logs", name).stdout
    text = out(container_cleanup, "busybox", "ls", "-A", "/dev/mqueue")
    assert qname not in text


def test_init_is_pid1_reaper(container_cleanup):
    text = out(container_cleanup, "--init", "busybox", "ps", "-o", "pid,ppid,comm,args")
    rows = [line.split(None, 3) for line in text.splitlines()[1:]]
    assert len(rows) == 2, text
    pid1, cmd = rows
    assert pid1[0] == "1" and pid1[2] != "ps"
    assert cmd[:3] == ["2", "1", "ps"]  # the command is the init's child
    assert "dockyard run" not in pid1[3], "the host's CLI command line leaks into the container as PID 1's args"


def test_init_reaps_zombies(container_cleanup):
    # (sleep &) orphans sleep to PID 1; when it exits, PID 1 must reap it
    script = "(sleep 0.2 &); (sleep 0.2 &); sleep 1.5; ps -o stat,comm"
    text = out(container_cleanup, "--init", "busybox", "sh", "-c", script)
    stats = [line.split()[0] for line in text.splitlines()[1:]]
    assert not any(s.startswith("Z") for s in stats), text
    assert "sleep" not in text


def test_init_forwards_signals_and_exit_code(container_cleanup):
    name, _ = run_d(container_cleanup, "--init", "busybox", "sh", "-c",
                    'trap "exit 11" TERM; echo ready; while true; do sleep 0.1; done')
    for _ in range(100):
        if "ready" in dy("logs", name).stdout:
            break
        time.sleep(0.1)
    dy("stop", "-t", "20", name, check=True)
    assert inspect(name)["State"]["ExitCode"] == 11
    p = run(container_cleanup, "--init", "busybox", "sh", "-c", "exit 6")
    assert p.returncode == 6


# ---- cgroups -------------------------------------------------------------------------------


def _cg(ctrl: str, cid: str, fname: str) -> str:
    with open(f"/sys/fs/cgroup/{ctrl}/dockyard/{cid}/{fname}") as f:
        return f.read().strip()


def test_cgroup_per_container_holds_pid(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    pid = inspect(name)["State"]["Pid"]
    for ctrl in CONTROLLERS:
        tasks = _cg(ctrl, cid, "tasks").split()
        assert str(pid) in tasks, (ctrl, tasks)
    with open(f"/proc/{pid}/cgroup") as f:
        cg = f.read()
    assert re.search(rf":memory:/dockyard/{cid}$", cg, re.M), cg
    assert re.search(rf":pids:/dockyard/{cid}$", cg, re.M), cg
    # the article's check: the cpu controller, unlimited by default
    assert _cg("cpu", cid, "cpu.cfs_quota_us") == "-1"
    assert _cg("cpu", cid, "cpu.cfs_period_us") == "100000"


def test_cgroup_limits_in_controller_files(container_cleanup):
    name, cid = run_d(container_cleanup, "--cpu-period=100000", "--cpu-quota=10000", "-m", "64m",
                      "--memory-reservation", "32m", "--pids-limit", "20", "--cpuset-cpus", "0",
                      "--cpu-shares", "512", "--blkio-weight", "300", "busybox", "sleep", "100")
    assert _cg("cpu", cid, "cpu.cfs_period_us") == "100000"
    assert _cg("cpu", cid, "cpu.cfs_quota_us") == "10000"
    assert _cg("cpu", cid, "cpu.shares") == "512"
    assert _cg("memory", cid, "memory.limit_in_bytes") == str(64 * 1024 * 1024)
    assert _cg("memory", cid, "memory.soft_limit_in_bytes") == str(32 * 1024 * 1024)
    assert _cg("pids", cid, "pids.max") == "20"
    assert _cg("cpuset", cid, "cpuset.cpus") == "0"
    if os.path.exists(f"/sys/fs/cgroup/blkio/dockyard/{cid}/blkio.weight"):
        assert _cg("blkio", cid, "blkio.weight") == "300"
    hc = inspect(name)["HostConfig"]
    assert (hc["CpuPeriod"], hc["CpuQuota"], hc["Memory"], hc["PidsLimit"], hc["CpusetCpus"], hc["CpuShares"]) == \
        (100000, 10000, 64 * 1024 * 1024, 20, "0", 512)


def test_cgroup_cpus_flag(container_cleanup):
    name, cid = run_d(container_cleanup, "--cpus", "0.5", "busybox", "sleep", "100")
    quota, period = int(_cg("cpu", cid, "cpu.cfs_quota_us")), int(_cg("cpu", cid, "cpu.cfs_period_us"))
    assert quota / period == pytest.approx(0.5)
    assert inspect(name)["HostConfig"]["NanoCpus"] == 500_000_000


def test_cgroup_memory_swap(container_cleanup):
    name, cid = run_d(container_cleanup, "-m", "32m", "--memory-swap", "64m", "busybox", "sleep", "100")
    assert _cg("memory", cid, "memory.limit_in_bytes") == str(32 * 1024 * 1024)
    path = f"/sys/fs/cgroup/memory/dockyard/{cid}/memory.memsw.limit_in_bytes"
    if os.path.exists(path):
        assert _cg("memory", cid, "memory.memsw.limit_in_bytes") == str(64 * 1024 * 1024)


def test_cgroup_devices_default_list(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    allowed = _cg("devices", cid, "devices.list").splitlines()
    assert "a *:* rwm" not in allowed
    for rule in ("c 1:3 rwm", "c 1:5 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 136:* rwm"):
        assert rule in allowed, (rule, allowed)
    name2, cid2 = run_d(container_cleanup, "--privileged", "busybox", "sleep", "100")
    assert "a *:* rwm" in _cg("devices", cid2, "devices.list").splitlines()


def test_cgroups_removed_with_container(container_cleanup):
    name, cid = run_d(container_cleanup, "busybox", "sleep", "100")
    for ctrl in CONTROLLERS:
        assert os.path.isdir(f"/sys/fs/cgroup/{ctrl}/dockyard/{cid}"), ctrl
    dy("stop", "-t", "0", name, check=True)
    dy("rm", name, check=True)
    left = [c for c in CONTROLLERS if os.path.exists(f"/sys/fs/cgroup/{c}/dockyard/{cid}")]
    assert not left, left


def test_cgroups_removed_after_run_rm(container_cleanup):
    before = set(os.listdir("/sys/fs/cgroup/memory/dockyard")) if os.path.isdir("/sys/fs/cgroup/memory/dockyard") else set()
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--rm", "--name", name, "busybox", "sh", "-c", "cat /proc/self/cgroup")
    assert p.returncode == 0
    cid = re.search(r":memory:/dockyard/([0-9a-f]{64})$", p.stdout, re.M)
    assert cid, p.stdout
    assert cid.group(1) not in before
    assert not any(os.path.exists(f"/sys/fs/cgroup/{c}/dockyard/{cid.group(1)}") for c in CONTROLLERS)
