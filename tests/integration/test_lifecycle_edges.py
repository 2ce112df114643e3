"""Edge cases found in review: exit codes after --rm, signal proxying, shared namespaces,
exec clean-up after a failed start, exec as another user."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

from conftest import dy


def _name() -> str:
    return f"edge-{uuid.uuid4().hex[:8]}"


def test_wait_on_auto_removed_container_reports_its_exit_code(busybox):
    name = _name()
    dy("run", "-d", "--rm", "--name", name, busybox, "sh", "-c", "sleep 0.5; exit 5", check=True)
    assert dy("wait", name).stdout.strip() == "5"
    assert dy("inspect", name).returncode != 0  # removed


def test_sigterm_to_the_cli_reaches_the_container(busybox, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    p = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "--name", name, busybox, "sh", "-c",
                          'trap "echo got-term; exit 11" TERM; while :; do sleep .1; done'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if dy("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true":
            break
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, _err = p.communicate(timeout=60)
    assert p.returncode == 11 and "got-term" in out


def test_pid_namespace_of_another_container(busybox, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, busybox, "sleep", "100", check=True)
    out = dy("run", "--rm", "--pid", f"container:{name}", busybox, "ps", check=True).stdout
    assert "sleep 100" in out
    assert dy("run", "--rm", "--pid", "bogus", busybox, "true").returncode == 125


def test_failed_exec_leaves_no_process_and_exec_user_home(busybox, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, busybox, "sleep", "100", check=True)
    p = dy("exec", "--detach-keys", "bogus", name, "echo", "hi")
    assert p.returncode != 0 and "Invalid detach keys" in p.stderr
    top = dy("top", name, check=True).stdout.splitlines()
    assert len(top) == 2  # the header and `sleep 100`: nothing left waiting to start
    assert dy("exec", "-u", "nobody", name, "sh", "-c", "echo $HOME", check=True).stdout.strip() == "/home"
    assert dy("exec", "-u", "ghost", name, "id").returncode == 126
    assert dy("exec", "-w", "/nonexistent", name, "pwd").returncode == 126
