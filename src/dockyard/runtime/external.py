"""runc or crun (any runtime with runc's command line) behind the same API as `api.Runtime`.

The shim runs `<runtime> create` (or `exec -d`) itself, as a child subreaper, so the
container's init is reparented to it when the runtime's create process exits; from then on
the shim reaps, logs and serves attach exactly as for Dockyard's own runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from .._path import Path

from .. import _util
from ..errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from .api import Runtime, ShimSpec, State, Status


class ExternalRuntime(Runtime):
    def __init__(self, name: str, root: Path) -> None:
        path = shutil.which(name)
        if path is None:
            raise InvalidArgument(f"unknown or invalid runtime name: {name} (not installed)")
        super().__init__(root)
        self.name = name
        self.path = path

    def _argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.root), *args]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(self._argv(*args), capture_output=True, text=True)
        if check and p.returncode != 0:
            msg = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
            if "does not exist" in msg or "not found" in msg.lower():
                raise NotFound(f"{self.name}: {msg}")
            raise FailedPrecondition(f"{self.name} {args[0]}: {msg}")
        return p

    def create(self, cid: str, bundle: str, shim: ShimSpec | None = None,  # type: ignore[override]
               stdio: tuple[int, int, int] | None = None, console_socket: str | None = None) -> int:
        if shim is None:
            raise InvalidArgument(f"{self.name}: containers run through a shim")
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            spec = json.loads(f.read())
        self.root.mkdir(parents=True, exist_ok=True)
        external = {"argv": self._argv(), "id": cid, "bundle": bundle, "mode": "create"}
        return self._spawn_with_shim(None, bool(spec["process"].get("terminal")), shim, external)

    def exec_create(self, cid: str, exec_id: str, process: dict, shim: ShimSpec) -> int:
        st = self.state(cid)
        if st.status != Status.RUNNING:
            raise Conflict(f"container {cid} is not running")
        proc_file = os.path.join(shim.run_dir, "process.json")
        _util.write_json(proc_file, process, 0o600, durable=False)
        external = {"argv": self._argv(), "id": cid, "process": proc_file, "mode": "exec"}
        return self._spawn_with_shim(None, bool(process.get("terminal")), shim, external)

    def exec_abort(self, cid: str, exec_id: str, pid: int | None) -> None:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def exec_start(self, cid: str, exec_id: str, pid: int) -> None:
        pass  # `exec -d` has started it; the shim holds output until a client attaches

    def state(self, cid: str) -> State:
        p = self._run("state", cid, check=False)
        if p.returncode != 0:
            raise NotFound(f"container {cid} does not exist in {self.name}")
        st = json.loads(p.stdout)
        return State(cid, str(st.get("status", "stopped")), int(st.get("pid") or 0), st.get("bundle", ""),
                     st.get("annotations") or {})

    def start(self, cid: str) -> None:
        self._run("start", cid)

    def kill(self, cid: str, sig: int = signal.SIGTERM, all_processes: bool = False) -> None:
        args = ["kill"] + (["--all"] if all_processes else []) + [cid, str(int(sig))]
        self._run(*args)

    def pause(self, cid: str) -> None:
        self._run("pause", cid)

    def resume(self, cid: str) -> None:
        self._run("resume", cid)

    def delete(self, cid: str, force: bool = False) -> None:
        if self._run("state", cid, check=False).returncode != 0:
            raise NotFound(f"container {cid} does not exist in {self.name}")
        self._run("delete", *(["--force"] if force else []), cid)

    def list(self) -> list[str]:
        p = self._run("list", "--format", "json", check=False)
        try:
            return sorted(c["id"] for c in json.loads(p.stdout or "[]") or [])
        except ValueError:
            return []
