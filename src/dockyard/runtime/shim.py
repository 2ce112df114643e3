"""The per-container shim: a fresh, small process that outlives the CLI.

It waits for the container's init to be ready (or runs an external runtime's create), owns
the container's stdio (pipes or the pty master), writes the json-file log with rotation,
serves attach clients on a unix socket, reaps the init, records the exit code and time, and
then runs the engine's exit command (cleanup, --rm) unless an attached client did that work.

Started through shim_entry.py with `python -E -s -S`. It imports only builtin modules
(no json, socket.py, selectors, signal.py: each would pull in enum and re and cost
milliseconds of start-up and about a MiB per running container).

This module is the process's start: its configuration, the init's sync handshake (or
shim_external.py for an external runtime), then the event loop of shim_loop.py, which
writes the log through shim_log.py. The attach protocol is described in shim_loop.py.
"""

import _socket
import os
import sys

from shim_log import jstr
from shim_loop import Shim


def parse_config(argv):
    """argv: key=value items; ints where the key ends in _fd or is a size; lists joined by \\x1f."""
    cfg = {}
    for item in argv:
        k, _, v = item.partition("=")
        if k == "exit_cmd" or k.startswith("ext_argv") or k == "child_stdio":
            cfg[k] = v.split("\x1f") if v else []
        elif k.endswith("_fd") or k in ("pid", "log_max_size", "log_max_files"):
            cfg[k] = int(v)
        else:
            cfg[k] = v
    if "child_stdio" in cfg:
        cfg["child_stdio"] = [int(x) for x in cfg["child_stdio"]]
    return cfg


def report(cfg, text):
    fd = cfg.pop("status_fd", None)
    if fd is not None:
        os.write(fd, text.encode())
        os.close(fd)


def wait_init_ready(cfg):
    """Read the init's sync messages ("console" + pty master, "ready", "error CODE MSG")
    and tell the runtime on status_fd. Runs while the init sets up the container, so this
    process's own start-up overlaps with it."""
    sync = _socket.socket(fileno=cfg.pop("sync_fd"))
    fd_size = 4
    while True:
        try:
            data, anc, _flags, _addr = sync.recvmsg(65536, _socket.CMSG_SPACE(4 * fd_size))
        except InterruptedError:
            continue
        except OSError as e:
            data, anc = ("error 125 container init: %s" % e.strerror).encode(), []
        for level, kind, payload in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds = [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload) - 3, 4)]
                if fds:
                    cfg["master_fd"] = fds[0]
        text = data.decode("utf-8", "replace")
        if text == "ready":
            sync.close()
            report(cfg, '{"pid": %d}' % cfg["pid"])
            return True
        if text.startswith("error ") or not data:
            code, _, message = text[6:].partition(" ") if data else ("125", "", "")
            message = message or "container init exited before it was ready"
            report(cfg, '{"error": %s, "code": %s}' % (jstr(message), int(code) if code.isdigit() else 125))
            try:
                os.waitpid(cfg["pid"], 0)
            except ChildProcessError:
                pass
            return False


def main():
    cfg = parse_config(sys.argv[1:])
    try:
        os.chdir("/")
    except OSError:
        pass
    if "ext_argv" in cfg:
        import shim_external  # only for --runtime runc|crun: keeps the common shim small

        ok = shim_external.external_create(cfg)
    elif "sync_fd" in cfg:
        ok = wait_init_ready(cfg)
    else:
        ok = True
    if ok:
        Shim(cfg).run()


if __name__ == "__main__":
    main()
