"""The shim's part for external runtimes (runc, crun): run their `create` / `exec --detach`
as a child subreaper. Loaded by the shim only when a container uses such a runtime."""

import json
import os

from shim import report
from shim_log import jstr


def external_create(cfg):
    """Run an external runtime's `create` / `exec --detach` as a child subreaper, so the
    container's process becomes our child; report its pid (or the error) on status_fd."""
    import ctypes
    import socket
    import subprocess

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    run_dir = cfg["run_dir"]
    pidfile = os.path.join(run_dir, "init.pid")
    logfile = os.path.join(run_dir, "runtime.log")
    argv = list(cfg["ext_argv"]) + ["--log", logfile, "--log-format", "json"]
    tty = "stdout_fd" not in cfg
    console = None
    if cfg["ext_mode"] == "create":
        argv += ["create", "--bundle", cfg["ext_bundle"], "--pid-file", pidfile]
    else:
        argv += ["exec", "--detach", "--pid-file", pidfile, "--process", cfg["ext_process"]]
        if tty:
            argv.append("--tty")
        cfg["wait_client"] = True
    if tty:
        console_path = os.path.join(run_dir, "console.sock")
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.bind(console_path)
        console.listen(1)
        console.settimeout(30)
        argv += ["--console-socket", console_path]
    argv.append(cfg["ext_id"])
    stdio = cfg.pop("child_stdio", None)
    devnull = os.open(os.devnull, os.O_RDWR)
    if not stdio:
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
        report(cfg, '{"error": %s, "code": 125}' % jstr("%s: %s" % (cfg["ext_argv"][0], e)))
        return False
    for fd in set(stdio) | {devnull}:
        os.close(fd)
    if code != 0:
        report(cfg, '{"error": %s, "code": 125}' % jstr(runtime_error(logfile, code)))
        return False
    with open(pidfile) as f:
        cfg["pid"] = int(f.read().strip())
    if master is not None:
        cfg["master_fd"] = master
    report(cfg, '{"pid": %d}' % cfg["pid"])
    return True


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
