"""inotify on a containers dir, for `query.records` in a long-lived process (the API
server, `query.watch_records`): which container records may have changed since the last look,
so an unchanged listing reads the event queue instead of stat-ing every record.

The containers dir is watched for entries coming and going, each container's dir for its
record files (config.v2.json, hostconfig.json) being written, replaced or removed. A full
queue, or the containers dir itself going away, means "anything may have changed": the
caller rescans. Imported only when watching is on (the CLI's listings stat instead).
"""

from __future__ import annotations

import errno
import os
import struct


_IN_CLOSE_WRITE, _IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x8, 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW, _IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
_IN_ONLYDIR, _IN_NONBLOCK, _IN_CLOEXEC = 0x1000000, 0o4000, 0o2000000
_ROOT_MASK = _IN_CREATE | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
# not IN_MODIFY: the container's log in the same dir is written all the time
_DIR_MASK = (_IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF
             | _IN_ONLYDIR)
_RECORD_FILES = (b"config.v2.json", b"hostconfig.json")


class Watcher:
    """inotify on a containers dir: which records may have changed since the last `drain`."""

    def __init__(self, base: str) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._errno = ctypes.get_errno
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(self._errno(), "inotify_init1 failed")
        self.fd, self.base = fd, base
        self.wd_cid: dict[int, str] = {}
        self.cid_wd: dict[str, int] = {}
        #: it can no longer tell every change (a watch it could not add, its dir gone)
        self.broken = False
        self.exhausted = False  # ... because inotify watches ran out
        try:
            self.root_wd = self._add(base, _ROOT_MASK)
        except OSError:
            os.close(fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def _add(self, path: str, mask: int) -> int:
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
        if wd < 0:
            raise OSError(self._errno(), f"inotify_add_watch {path} failed")
        return wd

    def watch(self, cid: str) -> bool:
        """Watch a container's dir (call before reading its record); False if it is gone."""
        if cid in self.cid_wd:
            return True
        try:
            wd = self._add(f"{self.base}/{cid}", _DIR_MASK)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            self.broken = self.exhausted = True  # ENOSPC: out of watches; the caller falls back to stat
            return True
        self.wd_cid[wd], self.cid_wd[cid] = cid, wd
        return True

    def drain(self) -> set[str] | None:
        """The IDs whose records may have changed; None when anything may have (the queue
        overflowed, the containers dir itself went): the caller rescans everything."""
        changed: set[str] | None = set()
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return changed
            pos = 0
            while pos + 16 <= len(data):
                wd, mask, _cookie, n = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16:pos + 16 + n].rstrip(b"\0")
                pos += 16 + n
                if mask & _IN_Q_OVERFLOW:
                    changed = None
                    continue
                if wd == self.root_wd and mask & (_IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED):
                    changed, self.broken = None, True  # a new watcher starts over
                    continue
                if changed is None:
                    continue
                if wd == self.root_wd:
                    if name:
                        changed.add(os.fsdecode(name))
                    continue
                cid = self.wd_cid.get(wd)
                if cid is None:
                    continue
                if mask & _IN_IGNORED:  # its dir is gone
                    del self.wd_cid[wd]
                    if self.cid_wd.get(cid) == wd:
                        del self.cid_wd[cid]
                    changed.add(cid)
                elif not name or name in _RECORD_FILES or mask & (_IN_DELETE_SELF | _IN_MOVE_SELF):
                    changed.add(cid)
