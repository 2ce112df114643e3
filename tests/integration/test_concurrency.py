"""Concurrency (issue 2): 20 `run --rm` started at once from a shell all succeed; names are unique."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shlex
import subprocess
import sys

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

DY = f"{shlex.quote(sys.executable)} -m dockyard"
ROOT = os.environ["DOCKYARD_ROOT"]


def _shell(script: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout)


def _mounts_under_root() -> set[str]:
    with open("/proc/mounts") as f:
        return {line.split()[1] for line in f if ROOT in line}


def _names(prefix: str) -> list[str]:
    return dy("ps", "-a", "--filter", f"name={prefix}", "--format", "{{.Names}}", check=True).stdout.split()


def test_twenty_run_rm_at_once(container_cleanup, tmp_path):
    prefix = f"conc-{secrets.token_hex(3)}"
    names = [f"{prefix}-{i}" for i in range(20)]
    container_cleanup.extend(names)
    mounts_before = _mounts_under_root()
    jobs = " ".join(
        f"( {DY} run --rm --name {n} busybox true > {tmp_path}/out.{i} 2>&1; echo $? > {tmp_path}/rc.{i} ) &"
        for i, n in enumerate(names))
    p = _shell(f"{jobs} wait")
    assert p.returncode == 0, p.stderr
    codes = {}
    for i in range(20):
        with open(tmp_path / f"rc.{i}") as f:
            codes[i] = int(f.read())
    failed = {i: (codes[i], (tmp_path / f"out.{i}").read_text()) for i in codes if codes[i] != 0}
    assert not failed, failed
    assert sum(1 for c in codes.values() if c == 0) == 20
    assert _names(prefix) == []  # --rm removed every one
    assert _mounts_under_root() - mounts_before == set()


def test_twenty_at_once_keep_their_own_output(container_cleanup, tmp_path):
    prefix = f"conc-{secrets.token_hex(3)}"
    names = [f"{prefix}-{i}" for i in range(20)]
    container_cleanup.extend(names)
    jobs = " ".join(
        f"( {DY} run --rm --name {n} -e N={i} busybox sh -c 'echo out-$N; echo err-$N >&2; exit $((N % 7))'"
        f" > {tmp_path}/out.{i} 2> {tmp_path}/err.{i}; echo $? > {tmp_path}/rc.{i} ) &"
        for i, n in enumerate(names))
    p = _shell(f"{jobs} wait")
    assert p.returncode == 0
    for i in range(20):
        assert (tmp_path / f"out.{i}").read_text() == f"out-{i}\n"
        assert (tmp_path / f"err.{i}").read_text() == f"err-{i}\n"
        assert int((tmp_path / f"rc.{i}").read_text()) == i % 7
    assert _names(prefix) == []


def test_second_name_conflicts_naming_the_holder(container_cleanup):
    name = f"conc-{secrets.token_hex(4)}"
    container_cleanup.append(name)
    holder = dy("run", "-d", "--name", name, "busybox", "sleep", "100", check=True).stdout.strip()
    p = dy("run", "-d", "--name", name, "busybox", "true")
    assert p.returncode == 125
    assert "is already in use by container" in p.stderr
    assert holder in p.stderr  # Docker names the holder by its full ID
    assert f'"/{name}"' in p.stderr or name in p.stderr
    assert "Traceback" not in p.stderr
    p = dy("create", "--name", name, "busybox", "true")
    assert p.returncode == 125 and holder in p.stderr
    # the holder is untouched
    got = json.loads(dy("inspect", name, check=True).stdout)[0]
    assert got["Id"] == holder and got["State"]["Running"] is True
    assert len(_names(name)) == 1
    # a rename onto a used name conflicts too
    other = f"conc-{secrets.token_hex(4)}"
    container_cleanup.append(other)
    dy("create", "--name", other, "busybox", "true", check=True)
    p = dy("rename", other, name)
    assert p.returncode != 0 and holder in p.stderr


def test_same_name_raced_exactly_one_wins(container_cleanup, tmp_path):
    name = f"conc-{secrets.token_hex(4)}"
    container_cleanup.append(name)
    n = 10
    layers_before = set(os.listdir(os.path.join(ROOT, "overlay2")))
    jobs = " ".join(
        f"( {DY} create --name {name} busybox true > {tmp_path}/out.{i} 2> {tmp_path}/err.{i};"
        f" echo $? > {tmp_path}/rc.{i} ) &" for i in range(n))
    p = _shell(f"{jobs} wait")
    assert p.returncode == 0
    codes = [int((tmp_path / f"rc.{i}").read_text()) for i in range(n)]
    winners = [i for i, c in enumerate(codes) if c == 0]
    assert len(winners) == 1, codes
    holder = (tmp_path / f"out.{winners[0]}").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", holder)
    for i, c in enumerate(codes):
        if c != 0:
            err = (tmp_path / f"err.{i}").read_text()
            assert c == 125 and "is already in use by container" in err and holder in err, (c, err)
    assert json.loads(dy("inspect", name, check=True).stdout)[0]["Id"] == holder
    # no orphaned container records or RW layers from the losers: one container, its RW and -init layers
    assert _names(name) == [name]
    new_layers = set(os.listdir(os.path.join(ROOT, "overlay2"))) - layers_before
    assert len(new_layers) == 2, new_layers


def test_parallel_detached_then_parallel_rm(container_cleanup, tmp_path):
    prefix = f"conc-{secrets.token_hex(3)}"
    names = [f"{prefix}-{i}" for i in range(10)]
    container_cleanup.extend(names)
    jobs = " ".join(f"( {DY} run -d --name {n} busybox sleep 100 > {tmp_path}/id.{i} ) &" for i, n in enumerate(names))
    assert _shell(f"{jobs} wait").returncode == 0
    ids = [(tmp_path / f"id.{i}").read_text().strip() for i in range(10)]
    assert all(re.fullmatch(r"[0-9a-f]{64}", x) for x in ids), ids
    assert len(set(ids)) == 10
    running = dy("ps", "--filter", f"name={prefix}", "-q", "--no-trunc", check=True).stdout.split()
    assert sorted(running) == sorted(ids)
    pids = [json.loads(dy("inspect", x, check=True).stdout)[0]["State"]["Pid"] for x in ids]
    assert len(set(pids)) == 10 and all(os.path.exists(f"/proc/{p}") for p in pids)
    jobs = " ".join(f"( {DY} rm -f {n} > /dev/null; echo $? > {tmp_path}/rm.{i} ) &" for i, n in enumerate(names))
    assert _shell(f"{jobs} wait").returncode == 0
    assert [int((tmp_path / f"rm.{i}").read_text()) for i in range(10)] == [0] * 10
    assert _names(prefix) == []
    assert not [x for x in ids if glob.glob(f"/sys/fs/cgroup/*/dockyard/{x}")]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_rm_of_one_container(container_cleanup, tmp_path, round_):
    name = f"conc-{secrets.token_hex(4)}"
    container_cleanup.append(name)
    cid = dy("run", "-d", "--name", name, "busybox", "sleep", "100", check=True).stdout.strip()
    merged = json.loads(dy("inspect", name, check=True).stdout)[0]["GraphDriver"]["Data"]["MergedDir"]
    assert merged in _mounts_under_root()
    jobs = " ".join(f"( {DY} rm -f {name} > /dev/null 2> {tmp_path}/err.{i}; echo $? > {tmp_path}/rc.{i} ) &"
                    for i in range(6))
    assert _shell(f"{jobs} wait").returncode == 0
    codes = [int((tmp_path / f"rc.{i}").read_text()) for i in range(6)]
    assert 0 in codes
    for i, c in enumerate(codes):
        err = (tmp_path / f"err.{i}").read_text()
        assert "Traceback" not in err
        if c != 0:
            # Docker: the loser reports the container gone or its removal already in progress
            assert "No such container" in err or "already in progress" in err, err
    assert dy("inspect", name).returncode != 0
    assert not glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}")
    assert merged not in _mounts_under_root()
    assert not os.path.exists(os.path.dirname(merged))
