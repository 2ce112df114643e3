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



def _wait_stopped(limit: float = 2.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not warm._running[0]:
            return True
        time.sleep(0.005)
    return False


def test_a_start_racing_the_threads_exit_is_never_lost() -> None:
    """start() while the thread is deciding to stop either extends a window the thread still
    sees or starts a new thread: after each start, a thread runs until the window ends."""
    for _ in range(200):
        warm.start(window=0.004)
        time.sleep(0.004)  # around the moment the thread checks its deadline
        warm.start(window=0.02)
        assert warm._running[0], "a started window has no thread"
    warm.stop()
    assert _wait_stopped()
