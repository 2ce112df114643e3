"""The listening side of the API server: sockets bound and listening, and the threads that
accept connections on them and serve each with a handler class (`server._Handler`).

`socketserver`'s servers, with the accept loop replaced: a thread blocked in accept() serves
the connection it gets itself (see `AcceptingServer`). Unix sockets are bound here with
their mode and group (`unix_socket`); a TCP listener may wrap its connections in TLS.
"""

from __future__ import annotations

import errno
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class AcceptingServer(socketserver.ThreadingMixIn):
    """Threads that accept and then serve their own connection: the kernel hands a new
    connection straight to a thread blocked in accept(), with no thread to start and none to
    wake (starting a thread costs more than a small request; a docker CLI command is one
    connection). A connection may be held for hours (logs -f, attach), so a thread that
    accepted one starts another acceptor first when no other waits, and up to `max_idle`
    wait between connections."""

    daemon_threads = True
    block_on_close = False
    engine: Any = None
    debug = False
    max_idle = 4

    _stop: threading.Event
    _idle_lock: threading.Lock
    _idle = 0

    def prepare(self) -> None:
        """Before serve_forever or shutdown, whichever comes first (the server's __init__)."""
        self._stop = threading.Event()
        self._idle_lock = threading.Lock()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Until `shutdown`. The calling thread serves no connection (one may last as long
        as its container: a `wait`), so it returns as soon as it is told to."""
        threading.Thread(target=self._accept_loop, daemon=True).start()
        while not self._stop.wait(poll_interval):
            pass

    def shutdown(self) -> None:
        """Stop accepting: wakes every thread blocked in accept()."""
        self._stop.set()
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            with self._idle_lock:
                self._idle += 1
            try:
                request, client_address = self.get_request()
            except OSError as e:
                with self._idle_lock:
                    self._idle -= 1
                if self._stop.is_set():
                    return
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.05)  # out of descriptors or memory: do not spin
                continue  # else a client that left before its accept (or its TLS wrap failed)
            with self._idle_lock:
                self._idle -= 1
                spare = self._idle == 0
            if spare:  # nobody else is accepting while this connection is served
                threading.Thread(target=self._accept_loop, daemon=True).start()
            self.process_request_thread(request, client_address)
            with self._idle_lock:
                if self._idle >= self.max_idle:
                    return

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return  # a client that went away or failed its TLS handshake
        sys.stderr.write(f"api: connection failed:\n{traceback.format_exc()}")


class UnixServer(AcceptingServer, socketserver.UnixStreamServer):
    def get_request(self) -> tuple[socket.socket, Any]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class TCPServer(AcceptingServer, socketserver.TCPServer):
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


def unix_socket(path: str, mode: int, gid: int | None) -> socket.socket:
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            probe.close()
            raise OSError(f"{path}: another server is listening on this socket")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, mode)
    s.listen(128)
    return s
