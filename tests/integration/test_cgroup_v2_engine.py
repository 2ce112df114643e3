"""The engine on cgroup v2: containers in /sys/fs/cgroup/<v2>/dockyard/<id>, a cgroup
namespace, cgroup2 mounted read-only inside, freezing through cgroup.freeze.

On a pure v2 host this runs against the host's own setup. On a hybrid host (v1 controllers
plus an empty cgroup2 at /sys/fs/cgroup/unified) DOCKYARD_CGROUP2_ROOT points the engine at
that hierarchy, which has no controllers: limits are refused clearly there.
"""

from __future__ import annotations

import os
import uuid

import pytest

from conftest import dy

UNIFIED = "/sys/fs/cgroup/unified"


def _v2_env() -> dict[str, str] | None:
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4]: line.split(" - ")[1].split()[0] for line in f}
    if mounts.get("/sys/fs/cgroup") == "cgroup2":
        return {}
    if mounts.get(UNIFIED) == "cgroup2":
        return {"DOCKYARD_CGROUP2_ROOT": UNIFIED}
    return None


ENV = _v2_env()
ROOT = "/sys/fs/cgroup" if ENV == {} else UNIFIED
pytestmark = pytest.mark.skipif(ENV is None, reason="no cgroup2 hierarchy on this host")


def test_container_lives_in_a_v2_cgroup(busybox, container_cleanup):
    name = f"v2-{uuid.uuid4().hex[:8]}"
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, busybox, "sleep", "100", env=ENV, check=True)
    cid = dy("inspect", "-f", "{{.Id}}", name, env=ENV, check=True).stdout.strip()
    pid = dy("inspect", "-f", "{{.State.Pid}}", name, env=ENV, check=True).stdout.strip()
    cg = f"{ROOT}/dockyard/{cid}"
    with open(f"{cg}/cgroup.procs") as f:
        assert pid in f.read().split()
    inside = dy("exec", name, "sh", "-c", "cat /proc/self/cgroup; cat /proc/mounts", env=ENV, check=True).stdout
    assert "0::/\n" in inside  # its own cgroup namespace: it sees itself at the root
    assert any(l.split()[1:3] == ["/sys/fs/cgroup", "cgroup2"] and l.split()[3].startswith("ro")
               for l in inside.splitlines())
    dy("pause", name, env=ENV, check=True)
    with open(f"{cg}/cgroup.events") as f:
        assert "frozen 1" in f.read()
    assert "(Paused)" in dy("ps", "--format", "{{.Status}}", "-f", f"name={name}", env=ENV).stdout
    dy("unpause", name, env=ENV, check=True)
    with open(f"{cg}/cgroup.events") as f:
        assert "frozen 0" in f.read()
    dy("rm", "-f", name, env=ENV, check=True)
    assert not os.path.exists(cg)


def test_limits_need_their_controller(busybox):
    with open(f"{ROOT}/cgroup.controllers") as f:
        controllers = f.read().split()
    p = dy("run", "--rm", "-m", "32m", busybox, "cat", "/sys/fs/cgroup/memory.max", env=ENV)
    if "memory" in controllers:
        assert p.returncode == 0 and p.stdout.strip() == str(32 * 1024 * 1024)
    else:
        assert p.returncode == 125
        assert "memory controller is not available" in p.stderr
        assert "Traceback" not in p.stderr
