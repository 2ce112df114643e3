"""Errors as Docker's (issue 2): unknown image/container/flag, bad values, invalid names, command
missing in the image (127), not executable (126), engine errors (125) - one line on stderr, no
traceback, nothing half-created left behind."""

from __future__ import annotations

import glob
import os
import secrets

import pytest

from conftest import dy

pytestmark = pytest.mark.usefixtures("busybox")

ROOT = os.environ["DOCKYARD_ROOT"]


def uniq(prefix: str = "err") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def snapshot() -> dict[str, set[str]]:
    """What a failed command must not add: containers, RW layers, mounts under the data root, cgroups."""
    with open("/proc/mounts") as f:
        mounts = {line.split()[1] for line in f if ROOT in line}
    return {
        "containers": set(dy("ps", "-aq", "--no-trunc", check=True).stdout.split()),
        "container_dirs": set(os.listdir(os.path.join(ROOT, "containers"))) if os.path.isdir(os.path.join(ROOT, "containers")) else set(),
        "layers": set(os.listdir(os.path.join(ROOT, "overlay2"))),
        "mounts": mounts,
        "cgroups": {p.rstrip("/").rsplit("/", 1)[1] for p in glob.glob("/sys/fs/cgroup/*/dockyard/*/")},
    }


def _owned_elsewhere(cid: str) -> bool:
    # a cgroup made meanwhile by another engine root on this machine (other test sessions)
    return any(os.path.exists(os.path.join(r, "containers", cid)) for r in glob.glob("/var/lib/dockyard*")
               if r != ROOT)


def assert_nothing_left(before: dict[str, set[str]]) -> None:
    after = snapshot()
    for key in ("containers", "container_dirs", "layers", "mounts"):
        assert after[key] - before[key] == set(), f"{key} left behind: {after[key] - before[key]}"
    new_cg = {c for c in after["cgroups"] - before["cgroups"] if not _owned_elsewhere(c)}
    assert not new_cg, f"cgroups left behind: {new_cg}"


def assert_clean_error(p, code: int, *needles: str, max_lines: int = 1) -> None:
    assert p.returncode == code, f"exit {p.returncode} != {code}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= max_lines, p.stderr
    for n in needles:
        assert n in p.stderr, f"{n!r} not in {p.stderr!r}"


# ---- images ----------------------------------------------------------------------------------


def test_run_unknown_image(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    img = f"qa-no-such-image-{secrets.token_hex(4)}"
    p = dy("run", "--name", name, img, "true")
    # Docker: "Unable to find image 'x:latest' locally" then the pull error; exit 125
    assert_clean_error(p, 125, max_lines=2)
    assert "Unable to find image" in p.stderr or "No such image" in p.stderr
    assert f"{img}:latest" in p.stderr
    assert dy("inspect", name).returncode != 0
    assert_nothing_left(before)


def test_create_unknown_image(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("create", "--name", name, f"qa-no-such-image-{secrets.token_hex(4)}:v9")
    assert_clean_error(p, 125, ":v9", max_lines=2)
    assert_nothing_left(before)


def test_run_unknown_image_with_pull_never(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("run", "--pull", "never", "--name", name, f"qa-no-such-image-{secrets.token_hex(4)}", "true")
    assert_clean_error(p, 125, "No such image")
    assert_nothing_left(before)


def test_image_verbs_unknown_image():
    missing = f"qa-no-such-image-{secrets.token_hex(4)}"
    p = dy("rmi", missing)
    assert_clean_error(p, 1, "No such image")
    p = dy("image", "inspect", missing)
    assert p.returncode == 1 and "No such image" in p.stderr and "Traceback" not in p.stderr
    p = dy("tag", missing, "qa-x:y")
    assert_clean_error(p, 1, "No such image")


# ---- containers ------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", [["stop"], ["rm"], ["rm", "-f"], ["kill"], ["start"], ["restart"], ["wait"],
                                  ["pause"], ["unpause"], ["logs"], ["top"], ["container", "inspect"],
                                  ["rename"]])
def test_unknown_container(verb):
    missing = f"qa-no-such-ctr-{secrets.token_hex(4)}"
    args = [*verb, missing] + (["qa-new-name-" + secrets.token_hex(3)] if verb == ["rename"] else [])
    p = dy(*args)
    assert p.returncode == 1, f"{verb}: exit {p.returncode} (Docker: 1)\n{p.stderr}"
    assert "Traceback" not in p.stderr
    assert f"No such container: {missing}" in p.stderr, p.stderr


def test_inspect_unknown_object():
    missing = f"qa-no-such-{secrets.token_hex(4)}"
    p = dy("inspect", missing)
    assert p.returncode == 1
    assert f"No such object: {missing}" in p.stderr
    assert "Traceback" not in p.stderr


# ---- flags and values ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["run", "--qa-bogus-flag", "busybox"], ["ps", "--qa-bogus"],
                                  ["stop", "--qa-bogus", "x"], ["images", "--qa-bogus"]])
def test_unknown_flag(args):
    p = dy(*args)
    assert p.returncode == 125, p.stderr
    assert "unknown flag: --qa-bogus" in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) <= 2  # Docker adds "See 'docker run --help'."


@pytest.mark.parametrize("flags,needle", [
    (["-m", "abc"], "abc"),
    (["--cpus", "x"], "--cpus"),
    (["--name", "bad name!"], "Invalid container name"),
    (["--name", "-x"], None),
    (["--pids-limit", "lots"], "lots"),
    (["--cpu-shares", "many"], "many"),
    (["--cpu-period", "10"], "CPU cfs period"),
    (["--cpu-quota", "10"], "CPU cfs quota"),
    (["--cpus", "1000"], "range of CPUs"),
    (["--memory-swap", "1g"], "Memory limit"),
    (["--shm-size", "huge"], "huge"),
    (["--ulimit", "nofile=20:10"], "ulimit"),
    (["--ulimit", "bogus=1"], "bogus"),
    (["--stop-signal", "SIGNOPE"], "SIGNOPE"),
    (["-w", "relative/dir"], "absolute"),
    (["-h", "bad host!"], "hostname"),
    (["--cap-add", "NOT_A_CAP"], "NOT_A_CAP"),
    (["--security-opt", "bogus"], "security-opt"),
    (["--blkio-weight", "5"], "blkio weight"),
    (["--network", "qa-no-such-net"], "qa-no-such-net"),
    (["--log-opt", "max-size=lots"], "lots"),
    (["--device", "/dev/qa-no-such-device"], "/dev/qa-no-such-device"),
    (["-e", "=novar"], None),
    (["--env-file", "/nonexistent/qa.env"], "/nonexistent/qa.env"),
])
def test_bad_values(container_cleanup, flags, needle):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    if flags[:1] == ["--name"]:
        p = dy("run", "--rm", *flags, "busybox", "true")
    else:
        p = dy("run", "--rm", "--name", name, *flags, "busybox", "true")
    assert p.returncode == 125, f"{flags}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = p.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, p.stderr
    if len(lines) == 2:
        assert lines[1].startswith("See '"), p.stderr
    if needle:
        assert needle in lines[0], p.stderr
    assert dy("inspect", name).returncode != 0
    assert_nothing_left(before)


# ---- exec failures -----------------------------------------------------------------------------


def test_command_not_found_127(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("run", "--rm", "--name", name, "busybox", "qa-no-such-command")
    assert_clean_error(p, 127, "executable file not found", "qa-no-such-command")
    assert dy("inspect", name).returncode != 0  # --rm: removed
    assert_nothing_left(before)


def test_command_not_found_absolute_path_127(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("run", "--rm", "--name", name, "busybox", "/bin/qa-nothing")
    assert_clean_error(p, 127, "/bin/qa-nothing", "no such file or directory")
    assert_nothing_left(before)


def test_not_executable_126(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("run", "--rm", "--name", name, "busybox", "/etc/passwd")
    assert_clean_error(p, 126, "/etc/passwd", "permission denied")
    assert_nothing_left(before)


def test_directory_as_command_126(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("run", "--rm", "--name", name, "busybox", "/tmp")
    assert_clean_error(p, 126, "/tmp")
    assert_nothing_left(before)


def test_command_not_found_without_rm_keeps_record(container_cleanup):
    """Docker keeps the created container (State.ExitCode 127) when the start fails; it holds
    no process, mount or cgroup, and `rm` removes it cleanly."""
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "--name", name, "busybox", "qa-no-such-command")
    assert p.returncode == 127
    q = dy("inspect", "--format", "{{.Id}} {{.State.Running}} {{.State.Pid}} {{.GraphDriver.Data.MergedDir}}", name)
    if q.returncode == 0:
        cid, running, pid, merged = q.stdout.split()
        assert (running, pid) == ("false", "0")
        with open("/proc/mounts") as f:
            assert merged not in {line.split()[1] for line in f}
        assert not glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}")
        assert dy("rm", name).returncode == 0


def test_detached_command_not_found(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    p = dy("run", "-d", "--name", name, "busybox", "qa-no-such-command")
    assert p.returncode == 127, p.stderr
    assert "executable file not found" in p.stderr
    assert "Traceback" not in p.stderr


def test_unknown_user(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    before = snapshot()
    p = dy("run", "--rm", "--name", name, "-u", "qa-nobody-here", "busybox", "true")
    assert p.returncode in (125, 126), p.stderr
    assert "qa-nobody-here" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert_nothing_left(before)


def test_name_conflict_is_clean(container_cleanup):
    name = uniq()
    container_cleanup.append(name)
    holder = dy("create", "--name", name, "busybox", "true", check=True).stdout.strip()
    before = snapshot()
    p = dy("run", "--rm", "--name", name, "busybox", "true")
    assert_clean_error(p, 125, "is already in use by container", holder)
    assert_nothing_left(before)


def test_rm_several_unknown():
    p = dy("rm", "qa-" + secrets.token_hex(4), "qa-" + secrets.token_hex(4))
    assert p.returncode == 1
    assert p.stderr.count("No such container") == 2


def test_unknown_command():
    p = dy("qa-not-a-command")
    assert p.returncode != 0
    assert "is not a dockyard command" in p.stderr
    assert "Traceback" not in p.stderr
