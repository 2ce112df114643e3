"""Shared fixtures: a test data root, the busybox image, a CLI runner, and the leak check.

Every test that starts containers must remove them; the session fixture fails the run if a
container, mount, cgroup or shim process made during the session is still there at the end.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_ROOT = os.environ.get("DOCKYARD_TEST_ROOT", "/var/lib/dockyard-test")
TEST_RUNROOT = os.environ.get("DOCKYARD_TEST_RUNROOT", "/run/dockyard-test")
BUSYBOX_TAR = "/var/cache/dockyard/busybox-rootfs.tar"

os.environ["DOCKYARD_ROOT"] = TEST_ROOT
os.environ["DOCKYARD_RUNROOT"] = TEST_RUNROOT
# The embedded DNS forwards names it does not know; in tests that goes nowhere (a closed local
# port), so no test ever sends a query past this host.
os.environ.setdefault("DOCKYARD_DNS_UPSTREAMS", "127.0.0.1:9")
# `run` pulls a missing image: in tests any registry but a local one is refused in one line.
os.environ.setdefault("DOCKYARD_REGISTRY_LOOPBACK_ONLY", "1")

IS_ROOT = os.geteuid() == 0


def dy(*args: str, input: bytes | str | None = None, check: bool = False, timeout: float = 120,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the dockyard CLI as a fresh process, as a user would."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([sys.executable, "-m", "dockyard", *args], input=input, capture_output=True,
                       timeout=timeout, env=e, text=not isinstance(input, bytes))
    if check and p.returncode != 0:
        raise AssertionError(f"dockyard {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def _cgroup_dirs() -> set[str]:
    return set(glob.glob("/sys/fs/cgroup/*/dockyard/*/")) | set(glob.glob("/sys/fs/cgroup/dockyard/*/"))


def _shim_pids() -> list[int]:
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if (b"shim_entry.py" in cmd or b"dockyard-shim" in cmd) and (TEST_RUNROOT + "/").encode() in cmd:
            out.append(int(d.split("/")[-1]))
    return out


_SESSION_LOCK: list[int] = []


def pytest_configure(config: pytest.Config) -> None:
    """One test session per test root: the leak check below removes every container it finds
    there, which would kill a concurrent session's containers (seen as exit 137 mid-test)."""
    if not IS_ROOT or _SESSION_LOCK:
        return
    import fcntl

    path = TEST_RUNROOT.rstrip("/") + ".session.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pytest.exit(f"another test session is using {TEST_ROOT}: give this one its own DOCKYARD_TEST_ROOT "
                    "and DOCKYARD_TEST_RUNROOT", returncode=3)
    _SESSION_LOCK.append(fd)  # held until the process exits


@pytest.fixture(scope="session", autouse=True)
def leak_check():
    before = _cgroup_dirs() if IS_ROOT else set()
    links_before = set(os.listdir("/sys/class/net"))
    yield
    if not IS_ROOT:
        return
    problems = []
    left = dy("ps", "-aq", "--no-trunc").stdout.split()
    if left:
        problems.append(f"containers left: {left}")
        dy("rm", "-f", *left)
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f
                  if (TEST_ROOT + "/") in line or (TEST_RUNROOT + "/") in line]
    if mounts:
        problems.append(f"mounts left: {mounts}")
    # cgroups of containers that still exist in another data root belong to someone else
    # (another test session or a real engine on this machine), not to this run
    others = {os.path.basename(p) for p in glob.glob("/var/lib/dockyard*/containers/*")
              if not p.startswith(TEST_ROOT + "/")}
    cg = {d for d in _cgroup_dirs() - before if os.path.basename(d.rstrip("/")) not in others}
    if cg:
        problems.append(f"cgroups left: {sorted(cg)}")
    shims = _shim_pids()
    if shims:
        problems.append(f"shim processes left: {shims}")
    problems += _network_leaks(links_before)
    if problems:
        pytest.fail("leak check: " + "; ".join(problems))


def _network_leaks(links_before: set[str]) -> list[str]:
    """Veths on this root's bridges, bridges of removed networks, port rules, the DNS server.
    The default bridge and the packet-filter table of the test root are removed at the end."""
    from dockyard.engine import networks
    from dockyard.paths import Paths

    paths = Paths.from_env()
    problems = []
    bridge = networks.settings(paths).default_bridge
    ports = os.listdir(f"/sys/class/net/{bridge}/brif") if os.path.isdir(f"/sys/class/net/{bridge}/brif") else []
    if ports:
        problems.append(f"veths left on {bridge}: {ports}")
    # user networks this run made and did not remove; then bridges of networks that no data
    # root on this host records any more (other sessions' live networks are left alone)
    recorded: dict[str, str] = {}
    for f in glob.glob("/var/lib/dockyard*/network/networks/*.json") + glob.glob(f"{TEST_ROOT}/network/networks/*.json"):
        try:
            with open(f) as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            continue
        if rec.get("bridge"):
            recorded[rec["bridge"]] = f
    mine = [b for b, f in recorded.items() if f.startswith(TEST_ROOT + "/") and b.startswith("dy-")]
    if mine:
        problems.append(f"user networks left (bridges {mine})")
    new_bridges = [n for n in set(os.listdir("/sys/class/net")) - links_before
                   if n.startswith("dy-") and n not in recorded]
    if new_bridges:
        problems.append(f"bridges of removed networks left: {new_bridges}")
        for n in new_bridges:
            subprocess.run(["ip", "link", "del", n], capture_output=True)
    table = networks.nft_table(paths)
    from dockyard.network import nft

    try:
        owners = nft.owners(table)
    except Exception as e:  # a broken table is a leak too
        owners = {f"unreadable: {e}"}
    if owners:
        problems.append(f"port rules left in nft table {table}: {sorted(owners)}")
    from dockyard.network import dnsd

    if dnsd.server_pid(networks.dns_table(paths)) is not None:
        problems.append("the embedded DNS server is still running (a user network kept a container?)")
        dnsd.stop(networks.dns_table(paths))
    subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
    for marker in glob.glob(os.path.join(TEST_RUNROOT, "network", "*.up")):
        os.unlink(marker)
    if bridge not in links_before:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    return problems


@pytest.fixture(scope="session")
def busybox() -> str:
    """The busybox image (from Debian's busybox-static), imported once into the test root."""
    if not IS_ROOT:
        pytest.skip("needs root")
    sys.path.insert(0, str(REPO / "scripts"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("mkbb", REPO / "scripts" / "make-busybox-rootfs.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    tar = mod.build(BUSYBOX_TAR)
    if dy("image", "inspect", "busybox").returncode != 0:
        dy("import", tar, "busybox:latest", check=True)
    return "busybox"


@pytest.fixture
def container_cleanup():
    """Collect container names/IDs to remove after the test, even when it fails."""
    made: list[str] = []
    yield made
    if made:
        dy("rm", "-f", *made)


def pytest_collection_modifyitems(config, items):
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root: starts real containers")
    for item in items:
        if "integration" in str(item.fspath) or "e2e" in str(item.fspath):
            item.add_marker(skip)
