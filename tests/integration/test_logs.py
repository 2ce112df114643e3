"""The shim's json-file log: Docker's line format, rotation by size, `logs` across files."""

from __future__ import annotations

import glob
import json
import os
import uuid

from conftest import dy


def test_json_file_format_and_rotation(busybox, container_cleanup):
    name = f"logs-{uuid.uuid4().hex[:8]}"
    container_cleanup.append(name)
    p = dy("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", busybox,
           "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; sleep 0.2; echo bye >&2")
    assert p.returncode == 0, p.stderr
    log_path = dy("inspect", "-f", "{{.LogPath}}", name, check=True).stdout.strip()
    files = sorted(glob.glob(log_path + "*"))
    assert files == [log_path, log_path + ".1", log_path + ".2"]  # max-file=3: the oldest dropped
    for f in files:
        assert os.path.getsize(f) <= 1024 + 200
        with open(f) as fh:
            for line in fh:
                rec = json.loads(line)
                assert set(rec) == {"log", "stream", "time"}
                assert rec["stream"] in ("stdout", "stderr") and rec["log"].endswith("\n")
                assert rec["time"].endswith("Z") and "T" in rec["time"]
    out = dy("logs", name, check=True)
    assert out.stdout.splitlines()[-1] == "line-199"
    assert out.stderr == "bye\n"
    assert "line-0\n" not in out.stdout  # rotated away
    tail = dy("logs", "--tail", "2", name, check=True)
    assert tail.stdout == "line-199\n" and tail.stderr == "bye\n"


def test_default_rotation_is_on(busybox, container_cleanup):
    name = f"logs-{uuid.uuid4().hex[:8]}"
    container_cleanup.append(name)
    dy("create", "--name", name, busybox, "true", check=True)
    hc = json.loads(dy("inspect", name, check=True).stdout)[0]["HostConfig"]
    assert hc["LogConfig"]["Type"] == "json-file"
    dy("start", name, check=True)
    assert dy("wait", name, check=True).stdout.strip() == "0"
