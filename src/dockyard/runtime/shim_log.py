"""The shim's json-file log: Docker's format, one JSON object per line, rotated by size.

Part of the Python shim (see shim.py): imports only builtin modules, as the rest of it.
The stream ids are the attach protocol's frame types for the two outputs (shim_loop.py).
"""

import os
import time

STDOUT, STDERR = 1, 2
_ESC = {0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x08: "\\b", 0x0C: "\\f"}
_TABLE = {c: _ESC.get(c, "\\u%04x" % c) for c in list(range(0x20)) + [0x22, 0x5C]}
_TABLE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def jstr(s):
    """A JSON string literal (what json.dumps(s, ensure_ascii=False) gives)."""
    return '"' + s.translate(_TABLE) + '"'


def rfc3339_now():
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%09dZ" % frac


class JsonLog:
    """Docker's json-file format, one JSON object per line, rotated by size."""

    def __init__(self, path, max_size, max_files):
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.partial = {STDOUT: b"", STDERR: b""}

    def write(self, stream, data, final=False):
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        out = [self.record(stream, line + b"\n") for line in lines]
        if final and self.partial[stream]:
            out.append(self.record(stream, self.partial[stream]))
            self.partial[stream] = b""
        while len(self.partial[stream]) >= 16384:
            out.append(self.record(stream, self.partial[stream][:16384]))
            self.partial[stream] = self.partial[stream][16384:]
        for rec in out:
            self.emit(rec)

    def record(self, stream, chunk):
        return ('{"log":%s,"stream":"%s","time":"%s"}\n' % (
            jstr(chunk.decode("utf-8", "replace")), "stdout" if stream == STDOUT else "stderr",
            rfc3339_now())).encode()

    def emit(self, data):
        if self.max_size > 0 and self.size + len(data) > self.max_size and self.size > 0:
            self.rotate()
        os.write(self.fd, data)
        self.size += len(data)

    def rotate(self):
        os.close(self.fd)
        if self.max_files <= 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else "%s.%d" % (self.path, i - 1)
                if os.path.exists(src):
                    os.replace(src, "%s.%d" % (self.path, i))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = 0

    def close(self):
        for s in (STDOUT, STDERR):
            self.write(s, b"", final=True)
        os.close(self.fd)


class NoLog:
    """exec sessions are not logged (Docker keeps exec output out of the container's log)."""

    def write(self, stream, data, final=False):
        pass

    def close(self):
        pass

