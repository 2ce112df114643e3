"""runtime/cgroups/warm: the no-op migrations find this process's own cgroup and keep it there
(the latency effect is measured by bench/startup, not asserted here)."""

from __future__ import annotations

import os
import time

from dockyard.runtime.cgroups import warm


def _own_cgroups() -> str:
    with open("/proc/self/cgroup") as f:
        return f.read()


def test_own_procs_file_lists_this_process() -> None:
    path = warm.own_procs_file()
    assert path is not None and path.endswith("/cgroup.procs")
    with open(path) as f:
        assert str(os.getpid()) in f.read().split()


def test_warming_leaves_the_process_in_its_cgroups() -> None:
    before = _own_cgroups()
    warm.start(window=0.05)
    time.sleep(0.1)  # the window ends by itself
    warm.stop()
    assert _own_cgroups() == before
    assert warm._until[0] == 0.0 or warm._until[0] < time.monotonic()

