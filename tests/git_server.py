"""A throw-away Git repository served by `git daemon` on 127.0.0.1 (git:// URLs), for ADD of
Git sources without network access."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}


def git(*args: str, cwd: Path) -> str:
    p = subprocess.run(["git", *args], cwd=cwd, env=dict(os.environ, **_ENV), capture_output=True, text=True,
                       check=True)
    return p.stdout.strip()


def make_repo(base: Path, files: dict[str, str], more: dict[str, str] | None = None) -> tuple[Path, list[str]]:
    """A bare repo `base`/r.git whose main branch has `files` (and a second commit with
    `more`, tagged v2, if given); returns its path and the commits, oldest first."""
    work = base / "work"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    commits = []
    for batch in (files, more):
        if batch is None:
            continue
        for rel, text in batch.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "c", cwd=work)
        commits.append(git("rev-parse", "HEAD", cwd=work))
    if more is not None:
        git("tag", "v2", cwd=work)
    bare = base / "r.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=base)
    return bare, commits


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """Serve every repository under `base`; yields the URL prefix ``git://127.0.0.1:PORT``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                             "--listen=127.0.0.1", f"--port={port}", str(base)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
