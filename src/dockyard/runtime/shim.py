"""The per-container shim: a fresh, small process that outlives the CLI.

It owns the container's stdio (pipes or the pty master), writes the json-file log with
rotation, serves attach clients on a unix socket, reaps the container's init, records the
exit code and time, then runs the engine's exit command (cleanup, --rm) and exits.

Run through shim_entry.py: stdlib only, no dockyard imports, so its
memory stays small. Wire protocol on <run dir>/sock (both directions):
  8-byte header [type, 0, 0, 0, uint32 big-endian length] + payload.
  shim -> client: 1 stdout, 2 stderr, 3 exit (payload: decimal exit code).
  client -> shim: 0 stdin data, 4 close stdin, 5 resize (payload "rows cols"),
  6 cleaned (sent after exit by a client whose header had "cleanup": true).
A client first sends one JSON line: {"stdin": bool, "stdout": bool, "stderr": bool}.
"""

import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time

STDOUT, STDERR, EXIT = 1, 2, 3
STDIN, CLOSE_STDIN, RESIZE, CLEANED = 0, 4, 5, 6


def rfc3339_now():
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%09dZ" % frac


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JsonLog:
    """Docker's json-file format, one JSON object per line, rotated by size."""

    def __init__(self, path, max_size, max_files):
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.f = open(path, "ab", buffering=0)
        self.size = self.f.tell()
        self.partial = {STDOUT: b"", STDERR: b""}

    def write(self, stream, data, final=False):
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        for line in lines:
            self._emit(stream, line + b"\n")
        if final and self.partial[stream]:
            self._emit(stream, self.partial[stream])
            self.partial[stream] = b""
        while len(self.partial[stream]) >= 16384:
            self._emit(stream, self.partial[stream][:16384])
            self.partial[stream] = self.partial[stream][16384:]

    def _emit(self, stream, chunk):
        rec = json.dumps({"log": chunk.decode("utf-8", "replace"),
                          "stream": "stdout" if stream == STDOUT else "stderr",
                          "time": rfc3339_now()}, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = rec.encode()
        if self.max_size > 0 and self.size + len(data) > self.max_size and self.size > 0:
            self._rotate()
        self.f.write(data)
        self.size += len(data)

    def _rotate(self):
        self.f.close()
        if self.max_files <= 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                src = self.path if i == 1 else "%s.%d" % (self.path, i - 1)
                if os.path.exists(src):
                    os.replace(src, "%s.%d" % (self.path, i))
        self.f = open(self.path, "ab", buffering=0)
        self.size = 0

    def close(self):
        for s in (STDOUT, STDERR):
            self.write(s, b"", final=True)
        self.f.close()


class NoLog:
    """exec sessions are not logged (Docker keeps exec output out of the container's log)."""

    def write(self, stream, data, final=False):
        pass

    def close(self):
        pass


def frame(kind, payload):
    return struct.pack(">BxxxI", kind, len(payload)) + payload


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.header = None
        self.out = bytearray()


class Shim:
    def __init__(self, cfg):
        self.cfg = cfg
        self.pid = cfg["pid"]
        self.tty = cfg.get("master_fd") is not None
        self.sel = selectors.DefaultSelector()
        self.clients = {}
        self.exit_code = None
        self.log = JsonLog(cfg["log_path"], cfg.get("log_max_size", 0), cfg.get("log_max_files", 1)) \
            if cfg.get("log_path") else NoLog()
        self.outputs = {}
        if self.tty:
            self.master = cfg["master_fd"]
            self.outputs[self.master] = STDOUT
            self.stdin_fd = self.master
        else:
            self.outputs[cfg["stdout_fd"]] = STDOUT
            self.outputs[cfg["stderr_fd"]] = STDERR
            self.stdin_fd = cfg.get("stdin_fd")
        self.stdin_buf = bytearray()
        self.stdin_watched = False
        self.stdin_watched_fd = None
        self.stdin_close_pending = False
        self.paused = []
        if self.stdin_fd is not None and not self.tty:
            os.set_blocking(self.stdin_fd, False)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "out")
        # bound and listening already: the runtime made it before exec'ing us, so clients
        # can connect as soon as `create` returns
        self.listener = socket.socket(fileno=cfg["listen_fd"])
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.sig_r, sig_w = os.pipe()
        os.set_blocking(self.sig_r, False)
        os.set_blocking(sig_w, False)
        signal.set_wakeup_fd(sig_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        self.sel.register(self.sig_r, selectors.EVENT_READ, "signal")

    # -- main loop ---------------------------------------------------------
    def run(self):
        if self.cfg.get("external", {}).get("mode") == "exec":
            # `exec --detach` has already started the process: give the client that is
            # about to attach a moment, so the first output reaches it
            import select

            if select.select([self.listener], [], [], 5.0)[0]:
                self.accept()
        self.reap()
        while self.outputs or self.exit_code is None:
            timeout = None if self.exit_code is None else 2.0
            events = self.sel.select(timeout)
            if not events and self.exit_code is not None:
                break  # output still held open by an escaped process: stop waiting
            # Accept waiting clients before reading output: a client that connected before
            # the container started must see its first bytes.
            events.sort(key=lambda ev: ev[0].data != "listen")
            for key, mask in events:
                what = key.data
                if what == "out":
                    self.read_output(key.fd)
                elif what == "listen":
                    self.accept()
                elif what == "stdin":
                    self.flush_stdin()
                elif what == "signal":
                    try:
                        os.read(self.sig_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif isinstance(what, Client):
                    if mask & selectors.EVENT_READ:
                        self.client_read(what)
                    if mask & selectors.EVENT_WRITE and what.sock.fileno() >= 0:
                        self.client_flush(what)
        self.finish()

    def reap(self):
        while self.exit_code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_code = 255
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            self.exit_code = 128 - code if code < 0 else code
            self.finished_at = rfc3339_now()
            write_atomic(os.path.join(self.cfg["run_dir"], "exit.json"),
                         json.dumps({"exit_code": self.exit_code, "finished_at": self.finished_at}))
            if self.tty:
                pass  # the master reports EIO once every slave is closed

    def read_output(self, fd):
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO on a pty master whose slave side is gone
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            os.close(fd)
            return
        self.log.write(stream, data)
        for c in list(self.clients.values()):
            h = c.header or {}
            if h.get("stdout" if stream == STDOUT else "stderr"):
                self.send(c, frame(stream, data))

    # -- clients -----------------------------------------------------------
    def accept(self):
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        c = Client(sock)
        # Clients send their header right after connecting: read it now, so output that is
        # already waiting is routed to this client rather than dropped.
        sock.settimeout(2.0)
        try:
            while b"\n" not in c.buf:
                data = sock.recv(4096)
                if not data:
                    break
                c.buf += data
        except OSError:
            pass
        sock.setblocking(False)
        self.clients[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, c)
        self.client_process(c)

    def client_read(self, c):
        if len(self.stdin_buf) > (1 << 20):
            # the container is not keeping up with its stdin: stop reading this client
            # until the queue drains (flush_stdin resumes it)
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            self.paused.append(c)
            return
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if c.header and c.header.get("stdin") and c.header.get("stdin_once"):
                self.close_stdin()
            self.drop(c)
            return
        c.buf += data
        self.client_process(c)

    def client_process(self, c):
        if c.header is None:
            if b"\n" not in c.buf:
                return
            line, c.buf = c.buf.split(b"\n", 1)
            try:
                c.header = json.loads(line)
            except ValueError:
                self.drop(c)
                return
            if self.exit_code is not None and not self.outputs:
                self.send(c, frame(EXIT, str(self.exit_code).encode()))
        while len(c.buf) >= 8:
            kind, length = struct.unpack(">BxxxI", c.buf[:8])
            if len(c.buf) < 8 + length:
                break
            payload, c.buf = c.buf[8:8 + length], c.buf[8 + length:]
            if kind == STDIN:
                self.write_stdin(payload)
            elif kind == CLOSE_STDIN:
                self.close_stdin()
            elif kind == RESIZE:
                self.resize(payload)

    def send(self, c, data):
        c.out += data
        self.client_flush(c)

    def client_flush(self, c):
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except BlockingIOError:
                pass
            except OSError:
                self.drop(c)
                return
        try:
            self.sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)
        except (KeyError, ValueError):
            pass

    def drop(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        self.clients.pop(c.sock.fileno(), None)
        c.sock.close()

    def write_stdin(self, data):
        if self.stdin_fd is None:
            return
        self.stdin_buf += data
        self.flush_stdin()

    def flush_stdin(self):
        """Non-blocking: a container that is not reading its stdin must not stall the loop
        (its output would back up and deadlock both). Pending input waits here instead."""
        fd = self.stdin_fd
        while self.stdin_buf and fd is not None:
            try:
                n = os.write(fd, self.stdin_buf[:65536])
            except BlockingIOError:
                break
            except OSError:
                self.stdin_buf = bytearray()
                break
            del self.stdin_buf[:n]
        want = bool(self.stdin_buf) and fd is not None
        if want != self.stdin_watched:
            if want:
                self.sel.register(fd, selectors.EVENT_WRITE, "stdin")
            else:
                self.sel.unregister(self.stdin_watched_fd)
            self.stdin_watched = want
            self.stdin_watched_fd = fd
        if self.paused and len(self.stdin_buf) <= (1 << 20):
            for c in self.paused:
                if c.sock.fileno() >= 0:
                    self.sel.register(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)
            self.paused = []
        if not self.stdin_buf and self.stdin_close_pending:
            self.stdin_close_pending = False
            self.close_stdin()

    def close_stdin(self):
        if self.stdin_buf:
            self.stdin_close_pending = True  # after the queued input is delivered
            return
        if self.stdin_fd is not None and not self.tty:
            if self.stdin_watched:
                self.sel.unregister(self.stdin_fd)
                self.stdin_watched = False
            os.close(self.stdin_fd)
            self.stdin_fd = None
        elif self.tty:
            try:
                os.write(self.master, b"\x04")
            except OSError:
                pass

    def resize(self, payload):
        if not self.tty:
            return
        try:
            rows, cols = (int(x) for x in payload.split())
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except (ValueError, OSError):
            pass

    # -- exit ----------------------------------------------------------------
    def finish(self):
        self.log.close()
        if self.exit_code is None:
            self.exit_code = 255
        msg = frame(EXIT, str(self.exit_code).encode())
        cleaners = []
        for c in list(self.clients.values()):
            c.sock.setblocking(True)
            try:
                c.sock.sendall(bytes(c.out) + msg)
            except OSError:
                c.sock.close()
                continue
            if (c.header or {}).get("cleanup"):
                cleaners.append(c)
            else:
                c.sock.close()
        # A client that promised to clean up (the foreground `run`) does the exit work
        # itself; the exit command runs only if no such client confirms it did.
        cleaned = False
        for c in cleaners:
            c.sock.settimeout(60)
            try:
                data = b""
                while len(data) < 8:
                    chunk = c.sock.recv(8 - len(data))
                    if not chunk:
                        break
                    data += chunk
                cleaned = cleaned or (len(data) == 8 and data[0] == CLEANED)
            except OSError:
                pass
            c.sock.close()
        try:
            os.unlink(os.path.join(self.cfg["run_dir"], "sock"))
        except FileNotFoundError:
            pass
        self.listener.close()
        if self.cfg.get("remove_run_dir"):
            import shutil

            shutil.rmtree(self.cfg["run_dir"], ignore_errors=True)
        cmd = self.cfg.get("exit_cmd")
        if cmd and not cleaned:
            spawn_detached(cmd)


def spawn_detached(argv):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.closerange(3, 65536)
                os.execv(argv[0], argv)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def external_create(cfg):
    """Run an external runtime's `create` / `exec --detach` as a child subreaper, so the
    container's process becomes our child; report its pid (or the error) on status_fd."""
    import ctypes
    import subprocess

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    ext = cfg["external"]
    run_dir = cfg["run_dir"]
    status_fd = cfg.pop("status_fd")
    pidfile = os.path.join(run_dir, "init.pid")
    logfile = os.path.join(run_dir, "runtime.log")
    argv = list(ext["argv"]) + ["--log", logfile, "--log-format", "json"]
    tty = "stdout_fd" not in cfg
    console = None
    if ext["mode"] == "create":
        argv += ["create", "--bundle", ext["bundle"], "--pid-file", pidfile]
    else:
        argv += ["exec", "--detach", "--pid-file", pidfile, "--process", ext["process"]]
        if tty:
            argv.append("--tty")
    if tty:
        console_path = os.path.join(run_dir, "console.sock")
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.bind(console_path)
        console.listen(1)
        console.settimeout(30)
        argv += ["--console-socket", console_path]
    argv.append(ext["id"])
    stdio = cfg.pop("child_stdio", None)
    devnull = os.open(os.devnull, os.O_RDWR)
    if stdio is None:
        stdio = [devnull, devnull, devnull]
    try:
        proc = subprocess.Popen(argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], close_fds=True)
        master = None
        if console is not None:
            conn, _ = console.accept()
            _msg, fds, _f, _a = socket.recv_fds(conn, 1024, 1)
            master = fds[0]
            conn.close()
        code = proc.wait()
    except Exception as e:  # report, never leave the caller waiting
        os.write(status_fd, json.dumps({"error": "%s: %s" % (ext["argv"][0], e), "code": 125}).encode())
        os._exit(1)
    for fd in set(stdio) | {devnull}:
        os.close(fd)
    if code != 0:
        os.write(status_fd, json.dumps({"error": runtime_error(logfile, code), "code": 125}).encode())
        os._exit(1)
    with open(pidfile) as f:
        cfg["pid"] = int(f.read().strip())
    if master is not None:
        cfg["master_fd"] = master
    os.write(status_fd, json.dumps({"pid": cfg["pid"]}).encode())
    os.close(status_fd)


def runtime_error(logfile, code):
    msg = "exit status %d" % code
    try:
        with open(logfile) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("level") in ("error", "fatal"):
                    msg = rec.get("msg", msg)
    except OSError:
        pass
    return msg


def main():
    cfg = json.loads(sys.argv[1])
    try:
        os.chdir("/")
    except OSError:
        pass
    if "external" in cfg:
        external_create(cfg)
    Shim(cfg).run()


if __name__ == "__main__":
    main()
