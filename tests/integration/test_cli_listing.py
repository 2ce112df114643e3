"""ps and images listing flags, logs -f/--until, and the image ls filters."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from conftest import dy


def _name() -> str:
    return f"ls-{uuid.uuid4().hex[:8]}"


def test_ps_last_latest_size_and_filters(busybox, container_cleanup):
    a, b = _name(), _name()
    container_cleanup += [a, b]
    dy("run", "--name", a, busybox, "sh", "-c", "exit 3", )
    dy("run", "--name", b, busybox, "sh", "-c", "echo data > /f", check=True)
    assert dy("ps", "-l", "--format", "{{.Names}}", check=True).stdout.split() == [b]
    assert dy("ps", "-n", "2", "--format", "{{.Names}}", check=True).stdout.split() == [b, a]
    assert dy("ps", "-a", "-f", "exited=3", "--format", "{{.Names}}", check=True).stdout.split() == [a]
    anc = dy("ps", "-a", "-f", f"ancestor={busybox}", "--format", "{{.Names}}", check=True).stdout.split()
    assert a in anc and b in anc
    sized = dy("ps", "-a", "-s", "-f", f"name={b}", check=True).stdout.splitlines()
    assert sized[0].split()[-1] == "SIZE" and "virtual" in sized[1]
    assert dy("ps", "-a", "-f", "bogus=1").returncode != 0


def test_logs_follow_and_until(busybox, container_cleanup):
    name = _name()
    container_cleanup.append(name)
    dy("run", "-d", "--name", name, busybox, "sh", "-c", "echo one; sleep 1; echo two", check=True)
    p = subprocess.run([sys.executable, "-m", "dockyard", "logs", "-f", name], capture_output=True, text=True,
                       timeout=60)
    assert p.stdout == "one\ntwo\n"  # -f returned once the container stopped, with all output
    early = dy("logs", "--until", "1970-01-02T00:00:00Z", name, check=True)
    assert early.stdout == ""
    ts = dy("logs", "-t", name, check=True).stdout.splitlines()
    assert ts[0].endswith(" one") and ts[0][:4].isdigit() and "T" in ts[0].split()[0]


def test_images_listing(busybox):
    repo = f"ls-img-{uuid.uuid4().hex[:6]}"
    dy("tag", busybox, f"{repo}:v1", check=True)
    try:
        rows = dy("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
        assert f"{repo}:v1" in rows and "busybox:latest" in rows
        full = dy("images", "-q", "--no-trunc", repo, check=True).stdout.split()
        assert len(full) == 1 and full[0].startswith("sha256:") and len(full[0]) == 71
        dangling = dy("images", "-f", "dangling=true", "-q", "--no-trunc", check=True).stdout.split()
        assert full[0] not in dangling  # tagged: not dangling (other tests' failed builds may be)
        table = dy("images", "--digests", repo, check=True).stdout.splitlines()
        assert table[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
        assert "<none>" in table[1]
        assert dy("images", "-f", "dangling=maybe").returncode != 0
        js = dy("images", "--format", "json", repo, check=True).stdout
        assert '"Repository":"%s"' % repo in js
    finally:
        dy("rmi", f"{repo}:v1")
