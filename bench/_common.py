"""Helpers for the benchmarks in bench/ (stdlib only): commands, statistics, cgroups, /proc."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sh(argv: list[str], *, check: bool = True, timeout: float = 300, quiet: bool = False,
       **kw) -> subprocess.CompletedProcess:
    """Run a command, capturing its output; raise with its stderr when check and it fails.
    Like run_child, it runs in its own session and is let finish if the bench is interrupted."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise RuntimeError(f"{' '.join(argv)}: no answer in {timeout:g} s") from None
    except BaseException:
        try:
            p.communicate(timeout=60)
        except BaseException:
            p.kill()
            p.wait()
        raise
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {p.returncode}: {err.strip()[-400:]}")
    if not quiet and p.returncode != 0:
        log(f"{' '.join(argv[:6])}… exit {p.returncode}: {err.strip()[-200:]}")
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def run_child(argv: list[str], **kw) -> tuple[subprocess.Popen, str]:
    """Run a measured command in its own session (a terminal's Ctrl-C reaches only the bench);
    if the bench is interrupted meanwhile, let the command finish first so nothing is left
    half-made. Returns the finished Popen and the tail of its stderr."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True, **kw)
        # A plain blocking wait: Popen.wait(timeout) polls with sleeps that double up to 50 ms,
        # which would round every measured time up to the next poll. A timer thread enforces
        # the 300 s limit instead.
        import threading

        guard = threading.Timer(300, p.kill)
        guard.daemon = True
        guard.start()
        try:
            p.wait()
        except BaseException:
            try:
                p.wait(60)
            except BaseException:
                p.kill()
                p.wait()
            raise
        finally:
            guard.cancel()
        err.seek(0)
        return p, err.read().decode(errors="replace").strip()[-300:]


def timed(argv: list[str]) -> float | None:
    """Wall time of one run in seconds, or None (and a log line) if it failed."""
    t0 = time.perf_counter()
    p, err = run_child(argv)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        log(f"FAILED ({p.returncode}): {' '.join(argv)}: {err}")
        return None
    return dt


def settle(quiet_ms: int = 5, limit_s: float = 1.0) -> None:
    """Wait until nothing but this process is runnable for `quiet_ms` (polled each ms, at most
    `limit_s`): the work an engine leaves running after its CLI returns (podman's `container
    cleanup`, dockerd's and containerd's bookkeeping, Dockyard's detached `rm` of a layer)
    otherwise lands in the next timed run, which in an A B A B series is the other engine's."""
    deadline = time.perf_counter() + limit_s
    quiet = 0
    while quiet < quiet_ms and time.perf_counter() < deadline:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        quiet = quiet + 1 if running <= 1 else 0
        time.sleep(0.001)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ms(x: float) -> str:
    return "n/a" if x != x else f"{x * 1000:.0f} ms"


def mib(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.2f} MiB"


def dpkg_installed(pkg: str) -> bool:
    p = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg], capture_output=True, text=True)
    return p.returncode == 0 and p.stdout.strip().endswith("installed")


def apt_install(pkgs: list[str]) -> None:
    missing = [p for p in pkgs if not dpkg_installed(p)]
    if not missing:
        return
    log(f"installing {' '.join(missing)} (apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh(["apt-get", "update"], timeout=900, env=env)
    sh(["apt-get", "install", "-y", *missing], timeout=1800, env=env)


def merge_toml_key(path: Path, section: str, line: str) -> bool:
    """Set `line` (key = value) in [section] of a TOML file, creating/replacing; True if changed."""
    key = line.split("=", 1)[0].strip()
    old = path.read_text().splitlines() if path.exists() else []
    out: list[str] = []
    cur, done, skipping = None, False, False
    for raw in old:
        s = raw.strip()
        if skipping:  # continuation of a multi-line array we replace
            skipping = "]" not in s
            continue
        if s.startswith("[") and not re.match(r"^\[\s*\"", s):
            if cur == section and not done:
                out.append(line)
                done = True
            cur = s.strip("[] ")
        elif cur == section and re.match(rf"^{re.escape(key)}\s*=", s):
            if not done:
                out.append(line)
                done = True
            skipping = s.count("[") > s.count("]")
            continue
        out.append(raw)
    if not done and cur == section:
        out.append(line)
        done = True
    if not done:
        out += (["", f"[{section}]"] if out else [f"[{section}]"]) + [line]
    text = "\n".join(out) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".bench-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def cgroup_mounts() -> list[tuple[str, str, set[str]]]:
    out = []
    with open("/proc/self/mounts") as f:
        for ln in f:
            _dev, mnt, fstype, opts, *_ = ln.split()
            if fstype in ("cgroup", "cgroup2"):
                out.append((mnt, fstype, set(opts.split(","))))
    return out


class CpuGroup:
    """A dedicated cgroup whose CPU usage (ns) counts every process started inside it."""

    def __init__(self, name: str) -> None:
        mounts = cgroup_mounts()
        v1 = [m for m, t, o in mounts if t == "cgroup" and "cpuacct" in o]
        v2 = [m for m, t, o in mounts if t == "cgroup2"]
        if v1:
            self.dir, self.v2 = Path(v1[0]) / name, False
        elif v2:
            self.dir, self.v2 = Path(v2[0]) / name, True
        else:
            raise RuntimeError("no cpuacct (v1) or cgroup2 hierarchy mounted")
        self.dir.mkdir(exist_ok=True)
        self.tasks = str(self.dir / ("cgroup.procs" if self.v2 else "tasks"))

    def enter(self) -> None:  # preexec_fn: runs in the child before exec
        with open(self.tasks, "w") as f:
            f.write(str(os.getpid()))

    def usage_ns(self) -> int:
        if self.v2:
            for ln in (self.dir / "cpu.stat").read_text().splitlines():
                if ln.startswith("usage_usec"):
                    return int(ln.split()[1]) * 1000
            return 0
        return int((self.dir / "cpuacct.usage").read_text())

    def members(self) -> list[str]:
        return Path(self.tasks).read_text().split()

    def wait_empty(self, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while self.members():
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    def remove(self) -> None:
        if not self.dir.exists():
            return
        if self.members():  # park stragglers in the root group so the directory can go
            root_tasks = self.dir.parent / Path(self.tasks).name
            for pid in self.members():
                try:
                    root_tasks.write_text(pid)
                except OSError:
                    pass
        try:
            self.dir.rmdir()
        except OSError as e:
            log(f"could not remove cgroup {self.dir}: {e}")


def proc_status(pid: int, field: str) -> str | None:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith(field + ":"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def pss_kib(pid: int, field: str = "Pss") -> int | None:
    """A field of /proc/PID/smaps_rollup in KiB: Pss, or Pss_Anon (its private, stable part)."""
    try:
        for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    except OSError:
        pass
    return None


def alive(pid: int, name: str | None) -> bool:
    """The process exists, is not a zombie, and still has this name (not a reused PID)."""
    state = proc_status(pid, "State")
    return state is not None and not state.startswith("Z") and proc_status(pid, "Name") == name


def children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        if proc_status(int(d.name), "PPid") == str(pid):
            out.append(int(d.name))
    return out


def which(*names: str) -> str | None:
    for n in names:
        if os.path.isabs(n):
            if os.access(n, os.X_OK):
                return n
        elif shutil.which(n):
            return shutil.which(n)
    return None
