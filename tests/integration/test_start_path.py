"""`dockyard run`'s start path stays lean: what docs/architecture.md ("The start path") keeps
off it must stay off, or every container start pays for it again (bench/startup measures
the time; this test names the module that came back)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import dockyard

pytestmark = pytest.mark.kernel

#: each costs from 0.3 to 5 ms of every `run` (see the architecture notes)
_KEPT_OFF = ("pathlib", "re", "json", "enum", "functools", "collections", "contextlib", "typing",
             "dataclasses", "argparse", "inspect", "socket", "selectors", "threading", "subprocess",
             "signal", "ipaddress", "urllib.parse", "shutil", "tarfile", "hashlib",
             "dockyard.engine.netattach", "dockyard.network.store")

_PROGRAM = """
import gc, sys
sys.path[:0] = [{src!r}]
from dockyard.cli.main import main
rc = main(sys.argv[1:])
print("GC", gc.isenabled())
print("MODULES", sorted(m for m in {kept_off!r} if m in sys.modules))
sys.exit(rc)
"""


@pytest.mark.parametrize("argv", [["run", "--rm", "--network", "none", "busybox", "true"],
                                  ["run", "--rm", "--network", "host", "busybox", "true"]])
def test_run_imports_none_of_what_the_start_path_keeps_off(busybox: str, argv: list[str]) -> None:
    src = os.path.dirname(os.path.dirname(dockyard.__file__))
    code = _PROGRAM.format(src=src, kept_off=_KEPT_OFF)
    # -S as the launchers (scripts/write-launchers): no site, no .pth files
    p = subprocess.run([sys.executable, "-S", "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "GC False" in lines, p.stdout  # a short-lived command runs without the collector
    assert "MODULES []" in lines, p.stdout
