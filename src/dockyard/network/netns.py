"""Persistent network namespaces: bind-mounted nsfs files, as `ip netns add` makes them.

`create` unshares CLONE_NEWNET in a short-lived thread (unshare and setns of the network
namespace act on the calling thread only), brings `lo` up there and bind-mounts the thread's
/proc/thread-self/ns/net onto the path. `run_in` runs a function in a short-lived thread that
setns()'d into a namespace; the caller's thread never moves. `remove` detaches the mount and
unlinks the file; the namespace (and its veth ends) goes when its last user does.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import _thread  # not threading: ~1 ms less on every `run` with a network

from dockyard.errors import AlreadyExists
from dockyard.kernel.syscalls import CLONE_NEWNET, MNT_DETACH, MS_BIND, mount, setns, umount, unshare
from dockyard.network.rtnl import Netlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h


def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a new thread; its result, or its exception re-raised here."""
    box: dict[str, Any] = {}
    done = _thread.allocate_lock()
    done.acquire()

    def body() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.release()

    _thread.start_new_thread(body, ())
    try:
        done.acquire()
    except BaseException:  # e.g. KeyboardInterrupt: let the (short) work finish, then go
        done.acquire()
        raise
    if "error" in box:
        err = box.pop("error")
        try:
            raise err
        finally:
            del err
    return box["result"]  # type: ignore[no-any-return]


def is_netns(path: str) -> bool:
    """Whether `path` is a network namespace file (a bind mount of one, or /proc/PID/ns/net)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_dev != os.stat("/proc/thread-self/ns/net").st_dev:
            return False  # not on nsfs: never open FIFOs or devices by mistake
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def _new_netns(path: str) -> None:
    unshare(CLONE_NEWNET)  # this thread only; it exits right after
    with Netlink() as nl:
        nl.set_up("lo")
    mount("/proc/thread-self/ns/net", path, None, MS_BIND)


def create(path: str) -> None:
    """Make a new network namespace, with `lo` up, bind-mounted at `path` (parents made).

    AlreadyExists if `path` already is a network namespace; on failure nothing is left behind."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        if is_netns(path):
            raise AlreadyExists(f"network namespace {path} already exists") from None
        # a stale empty file (a crash between create and mount): reuse it
    try:
        _in_thread(_new_netns, path)
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise


def remove(path: str) -> None:
    """Detach the namespace mounted at `path` (every mount stacked there) and unlink the file.
    A missing path, or one that is not mounted, is fine."""
    for _ in range(16):
        try:
            umount(path, MNT_DETACH)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                break
            raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def run_in(netns: str | int, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a short-lived thread that joined the network namespace `netns` (a path or
    an open fd); its result, or its exception re-raised. The calling thread never moves.
    Sockets made there (e.g. `rtnl.Netlink()`) stay in that namespace after it returns."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC) if isinstance(netns, str) else netns
    label = netns if isinstance(netns, str) else f"netns fd {netns}"

    def body() -> T:
        setns(fd, CLONE_NEWNET, label)
        return fn(*args)

    try:
        return _in_thread(body)
    finally:
        if isinstance(netns, str):
            os.close(fd)
