"""The shim's event loop: reads the container's output into the log and to attach clients,
serves the clients on the unix socket, feeds the container's stdin, reaps the init, writes
exit.json, and at the end does the exit work (see shim.py for the process around it).

Part of the Python shim: imports only builtin modules, as the rest of it.

Protocol on <run dir>/sock, both directions: an 8-byte header [type, 0, 0, 0, uint32
big-endian length] + payload. shim -> client: 1 stdout, 2 stderr, 3 exit (decimal code).
client -> shim: 0 stdin data, 4 close stdin, 5 resize ("rows cols"), 6 cleaned.
A client first sends one line of flags: "stdin=1 stdout=1 stderr=1 stdin_once=0 cleanup=0".
"""

import _signal
import _socket
import os
import select
import sys

from shim_log import STDERR, STDOUT, JsonLog, NoLog, rfc3339_now

EXIT = 3
STDIN, CLOSE_STDIN, RESIZE, CLEANED = 0, 4, 5, 6
MAX_STDIN_QUEUE = 1 << 20
MAX_CLIENT_QUEUE = 8 << 20


def write_atomic(path, data):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def header(kind, length):
    return bytes((kind, 0, 0, 0)) + length.to_bytes(4, "big")


def frame(kind, payload):
    return header(kind, len(payload)) + payload


def parse_flags(line):
    out = {}
    for item in line.decode("ascii", "replace").split():
        k, _, v = item.partition("=")
        out[k] = v == "1"
    return out


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = b""
        self.flags = None
        self.out = bytearray()
        self.events = 0


class Shim:
    def __init__(self, cfg):
        self.cfg = cfg
        self.pid = cfg["pid"]
        self.tty = "master_fd" in cfg
        self.ep = select.epoll()
        self.handlers = {}
        self.clients = {}
        self.exit_code = None
        self.finished_at = None
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
        self.stdin_watched = None
        self.stdin_close_pending = False
        self.paused = []
        if self.stdin_fd is not None and not self.tty:
            os.set_blocking(self.stdin_fd, False)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.watch(fd, select.EPOLLIN, self.read_output)
        # bound and listening already: the runtime made it before exec'ing us, so clients
        # can connect as soon as `create` returns
        self.listener = _socket.socket(fileno=cfg["listen_fd"])
        self.listener.setblocking(False)
        self.watch(self.listener.fileno(), select.EPOLLIN, lambda fd, ev: self.accept())
        self.sig_r, sig_w = os.pipe()
        os.set_blocking(self.sig_r, False)
        os.set_blocking(sig_w, False)
        _signal.set_wakeup_fd(sig_w)
        _signal.signal(_signal.SIGCHLD, lambda *_: None)
        for s in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGPIPE):
            _signal.signal(s, _signal.SIG_IGN)
        self.watch(self.sig_r, select.EPOLLIN, self.on_signal)

    def watch(self, fd, events, handler):
        if fd in self.handlers:
            self.ep.modify(fd, events)
        else:
            self.ep.register(fd, events)
        self.handlers[fd] = handler

    def unwatch(self, fd):
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    # -- main loop -----------------------------------------------------------
    def run(self):
        if self.cfg.get("wait_client"):
            # the process has started already (external `exec --detach`): give the client
            # that is about to attach a moment, so the first output reaches it
            if select.select([self.listener], [], [], 5.0)[0]:
                self.accept()
        self.reap()
        while self.outputs or self.exit_code is None:
            events = self.ep.poll(-1 if self.exit_code is None else 2.0)
            if not events and self.exit_code is not None:
                break  # output still held open by an escaped process: stop waiting
            # Accept waiting clients before reading output: a client that connected before
            # the container started must see its first bytes.
            events.sort(key=lambda ev: ev[0] != self.listener.fileno())
            for fd, ev in events:
                handler = self.handlers.get(fd)
                if handler is not None:
                    handler(fd, ev)
        self.finish()

    def on_signal(self, fd, ev):
        try:
            os.read(self.sig_r, 4096)
        except BlockingIOError:
            pass
        self.reap()

    def reap(self):
        while self.exit_code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_code = 255
                self.finished_at = rfc3339_now()
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            self.exit_code = 128 - code if code < 0 else code
            self.finished_at = rfc3339_now()
        if self.exit_code is not None and not getattr(self, "exit_written", False):
            self.exit_written = True
            write_atomic(os.path.join(self.cfg["run_dir"], "exit.json"),
                         '{"exit_code": %d, "finished_at": "%s"}' % (self.exit_code, self.finished_at))

    def read_output(self, fd, ev):
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO on a pty master whose slave side is gone
        if not data:
            self.unwatch(fd)
            del self.outputs[fd]
            if fd != self.stdin_fd:
                os.close(fd)
            return
        self.log.write(stream, data)
        key = "stdout" if stream == STDOUT else "stderr"
        for c in list(self.clients.values()):
            if (c.flags or {}).get(key):
                self.send(c, frame(stream, data))

    # -- clients -------------------------------------------------------------
    def accept(self):
        try:
            fd, _addr = self.listener._accept()
        except (BlockingIOError, InterruptedError):
            return
        sock = _socket.socket(fileno=fd)
        c = Client(sock)
        # Clients send their flags right after connecting: read them now, so output that
        # is already waiting is routed to this client rather than dropped.
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
        self.clients[c.fd] = c
        self.watch(c.fd, select.EPOLLIN, lambda fd, ev, c=c: self.client_event(c, ev))
        self.client_process(c)

    def client_event(self, c, ev):
        if ev & select.EPOLLOUT:
            self.client_flush(c)
        if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and c.fd in self.clients:
            self.client_read(c)

    def client_read(self, c):
        if len(self.stdin_buf) > MAX_STDIN_QUEUE:
            # the container is not keeping up with its stdin: stop reading this client
            # until the queue drains (flush_stdin resumes it)
            self.unwatch(c.fd)
            self.paused.append(c)
            return
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # A non-tty stdin-once client going away ends the container's input (Docker's
            # StdinOnce). A terminal is left open: detaching or a killed CLI must not send
            # the shell an end-of-file.
            if c.flags and c.flags.get("stdin") and c.flags.get("stdin_once") and not self.tty:
                self.close_stdin()
            self.drop(c)
            return
        c.buf += data
        self.client_process(c)

    def client_process(self, c):
        if c.flags is None:
            if b"\n" not in c.buf:
                return
            line, c.buf = c.buf.split(b"\n", 1)
            c.flags = parse_flags(line)
            if self.exit_code is not None and not self.outputs:
                self.send(c, frame(EXIT, str(self.exit_code).encode()))
        while len(c.buf) >= 8:
            kind = c.buf[0]
            length = int.from_bytes(c.buf[4:8], "big")
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
        if len(c.out) > MAX_CLIENT_QUEUE:
            self.drop(c)  # not reading: the log file still has the output
            return
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
        if c.fd in self.handlers:
            self.ep.modify(c.fd, select.EPOLLIN | (select.EPOLLOUT if c.out else 0))

    def drop(self, c):
        self.unwatch(c.fd)
        self.clients.pop(c.fd, None)
        c.sock.close()

    # -- stdin ---------------------------------------------------------------
    def write_stdin(self, data):
        if self.stdin_fd is None:
            return
        self.stdin_buf += data
        self.flush_stdin(None, None)

    def flush_stdin(self, _fd, _ev):
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
        if not self.tty:
            want = bool(self.stdin_buf) and fd is not None
            if want and self.stdin_watched is None:
                self.watch(fd, select.EPOLLOUT, self.flush_stdin)
                self.stdin_watched = fd
            elif not want and self.stdin_watched is not None:
                self.unwatch(self.stdin_watched)
                self.stdin_watched = None
        if self.paused and len(self.stdin_buf) <= MAX_STDIN_QUEUE:
            paused, self.paused = self.paused, []
            for c in paused:
                if c.fd in self.clients:
                    self.watch(c.fd, select.EPOLLIN | (select.EPOLLOUT if c.out else 0),
                               lambda fd, ev, c=c: self.client_event(c, ev))
        if not self.stdin_buf and self.stdin_close_pending:
            self.stdin_close_pending = False
            self.close_stdin()

    def close_stdin(self):
        if self.stdin_buf:
            self.stdin_close_pending = True  # after the queued input is delivered
            return
        if self.stdin_fd is not None and not self.tty:
            if self.stdin_watched is not None:
                self.unwatch(self.stdin_watched)
                self.stdin_watched = None
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
        import fcntl
        import termios

        try:
            rows, cols = (int(x) for x in payload.split())
            ws = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, ws)
        except (ValueError, OSError):
            pass

    # -- exit ----------------------------------------------------------------
    def finish(self):
        self.log.close()
        if self.exit_code is None:
            self.exit_code = 255
        msg = frame(EXIT, str(self.exit_code).encode())
        cleaners = []
        for c in list(self.clients.values()) + self.paused:
            c.sock.settimeout(5)  # a client that stopped reading must not keep us alive
            try:
                c.sock.sendall(bytes(c.out) + msg)
            except OSError:
                c.sock.close()
                continue
            if (c.flags or {}).get("cleanup"):
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
        if self.cfg.get("remove_run_dir") == "1":
            remove_tree(self.cfg["run_dir"])
        cmd = self.cfg.get("exit_cmd")
        if cmd and not cleaned:
            spawn_detached(cmd)


def remove_tree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = os.path.join(path, n)
        if os.path.isdir(p) and not os.path.islink(p):
            remove_tree(p)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


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

