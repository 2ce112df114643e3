"""Keep the kernel's cgroup migration lock warm while a container is being prepared.

Moving a process into a cgroup (a write to `cgroup.procs`, v1 or v2) takes the kernel's
`cgroup_threadgroup_rwsem` for writing. When no migration happened during the last RCU grace
period, the writer first waits for a full grace period: 7-19 ms on the development VM, and the
container's init waits with it. After a migration the lock stays in its fast state for about
one more grace period. So `start()` begins, on a thread, a no-op migration of this process into
the cgroup it is already in, repeated every few milliseconds for a short window: by the time
the container's init is moved, ~20 ms later, the lock is fast and the move takes ~0.1 ms.

It is only a latency hint: any error stops it quietly, and a process whose own cgroup cannot
be confirmed (not listed in that cgroup's `cgroup.procs`) is never written anywhere.
"""

from __future__ import annotations

import _thread
import os
import time

#: monotonic deadline of the current window (0: stopped)
_until = [0.0]
#: whether a warming thread is running; both change under _lock, so a start() that races
#: with a thread's exit either extends a window that thread still sees or starts a new one
_running = [False]
_lock = _thread.allocate_lock()


def start(window: float = 0.3) -> None:
    """Warm the lock for `window` seconds (or until `stop()`), from a background thread."""
    with _lock:
        _until[0] = time.monotonic() + window
        if _running[0]:
            return
        _running[0] = True
    try:
        _thread.start_new_thread(_loop, ())
    except RuntimeError:
        with _lock:
            _running[0] = False
            _until[0] = 0.0


def stop() -> None:
    _until[0] = 0.0


def _go_on() -> bool:
    with _lock:
        if time.monotonic() < _until[0]:
            return True
        _running[0] = False
        return False


def _loop() -> None:
    try:
        path = own_procs_file()
        if path is None:
            with _lock:
                _running[0] = False
            return
        pid = str(os.getpid()).encode()
        while _go_on():
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
            time.sleep(0.003)
    except Exception:  # a hint only: never disturb the command
        with _lock:
            _running[0] = False


def own_procs_file() -> str | None:
    """`cgroup.procs` of a cgroup this process is in, confirmed by its listing; None if none."""
    from .detect import detect

    info = detect()
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    mounts = dict(info.mounts) if info.version == 1 else {}
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if info.version == 2:
            base = str(info.mountpoint) if not controllers else None
        else:
            base = next((str(mounts[c]) for c in controllers.split(",") if c in mounts), None)
        if base is None:
            continue
        path = os.path.join(base, rel.lstrip("/"), "cgroup.procs")
        try:
            with open(path) as f:
                if str(os.getpid()) in f.read().split():
                    return path
        except OSError:
            continue
    return None
