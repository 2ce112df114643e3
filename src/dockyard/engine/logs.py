"""Reading a container's json-file log (with rotated files), filtering and following it."""

from __future__ import annotations

import json
import os
import time

from .._record import dataclass
from .. import _util
from .core import Engine
from .records import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator


@dataclass(frozen=True)
class LogEntry:
    stream: str
    data: bytes
    time: str
    ts: float


def _files(log_path: str) -> list[str]:
    rotated = []
    i = 1
    while os.path.exists(f"{log_path}.{i}"):
        rotated.append(f"{log_path}.{i}")
        i += 1
    return list(reversed(rotated)) + ([log_path] if os.path.exists(log_path) else [])


def _parse(line: bytes) -> LogEntry | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return LogEntry(rec.get("stream", "stdout"), rec.get("log", "").encode(), rec.get("time", ""),
                    _util.parse_rfc3339(rec.get("time", "")))


def parse_time(value: str | None) -> float | None:
    """Docker's --since/--until: RFC 3339, a UNIX timestamp, or a duration like 10m / 1h30m."""
    if not value:
        return None
    import re

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    m = re.fullmatch(r"((\d+)h)?((\d+)m)?((\d+(\.\d+)?)s)?", value)
    if m and value:
        secs = int(m.group(2) or 0) * 3600 + int(m.group(4) or 0) * 60 + float(m.group(6) or 0)
        return time.time() - secs
    try:
        return _util.parse_rfc3339(value if ("Z" in value or "+" in value[10:]) else value + "Z")
    except ValueError:
        from ..errors import InvalidArgument

        raise InvalidArgument(f'invalid value for "since/until": {value}') from None


def read(engine: Engine, c: Container, follow: bool = False, tail: int | None = None,
         since: float | None = None, until: float | None = None) -> Iterator[LogEntry]:
    log_path = c.doc["LogPath"]
    entries: list[LogEntry] = []
    # where the read stopped in the live file: following goes on from there, so a line
    # written meanwhile is neither lost nor repeated
    live: tuple[int, int] | None = None
    for path in _files(log_path):
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            continue  # rotated away just now
        with f:
            data = f.read()
            end = data.rfind(b"\n") + 1  # complete lines only
            if path == log_path:
                live = (os.fstat(f.fileno()).st_ino, end)
        for line in data[:end].split(b"\n"):
            e = _parse(line)
            if e is not None:
                entries.append(e)
    if since is not None:
        entries = [e for e in entries if e.ts >= since]
    if until is not None:
        entries = [e for e in entries if e.ts <= until]
    if tail is not None and tail >= 0:
        entries = entries[len(entries) - tail:] if tail else []
    yield from entries
    if not follow:
        return
    from . import lifecycle

    try:
        f = open(log_path, "rb")
    except FileNotFoundError:
        return
    with f:
        ino = os.fstat(f.fileno()).st_ino
        # from where the read stopped; all of a file that is new since (created, rotated)
        f.seek(live[1] if live is not None and live[0] == ino else 0)
        buf = b""
        while True:
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    e = _parse(line)
                    if e is not None and (until is None or e.ts <= until):
                        yield e
                continue
            try:
                if os.stat(log_path).st_ino != ino:  # rotated: continue with the new file
                    f.close()
                    f = open(log_path, "rb")
                    ino = os.fstat(f.fileno()).st_ino
                    continue
            except FileNotFoundError:
                return
            cur = engine.containers.load(c.id)
            if not lifecycle.refresh(engine, cur).running:
                rest = f.read()
                for line in (buf + rest).split(b"\n"):
                    e = _parse(line)
                    if e is not None:
                        yield e
                return
            time.sleep(0.1)
