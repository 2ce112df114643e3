"""The events journal: Dockyard is daemonless, so each engine call that changes an object
appends Docker's event JSON to `<runroot>/events.log`; `GET /events` reads and tails it.

One line per event, written with a single O_APPEND write (atomic for lines this small, so
concurrent CLI and API processes never interleave). Rotated at 8 MiB to `events.log.1`.
Emitting never fails the operation that emits: the journal is best effort.
"""

from __future__ import annotations

import os
import time
from .._path import Path

from .. import _json
from .._record import dataclass
from .core import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

MAX_SIZE = 8 * 1024 * 1024


def journal(engine: Engine) -> Path:
    return engine.paths.runroot / "events.log"


def emit(engine: Engine, type_: str, action: str, actor_id: str,
         attributes: dict[str, str] | None = None) -> None:
    """Append one event (Docker's shape: Type, Action, Actor{ID, Attributes}, time, timeNano)."""
    try:
        now = time.time_ns()
        attrs = {k: str(v) for k, v in (attributes or {}).items()}
        ev: dict[str, Any] = {"Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                              "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if type_ == "container":  # the deprecated fields docker CLI < 1.22 printed; still sent
            ev = {"status": action, "id": actor_id, "from": attrs.get("image", ""), **ev}
        line = _json.dumps(ev).encode() + b"\n"
        path = journal(engine)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
            if os.fstat(fd).st_size > MAX_SIZE:
                os.replace(path, str(path) + ".1")
        finally:
            os.close(fd)
    except (OSError, TypeError, ValueError):
        pass


def container(engine: Engine, action: str, c: Any, **extra: Any) -> None:
    """A container event with Docker's attributes: image, name, the labels, and `extra`."""
    try:
        attrs: dict[str, str] = dict(c.config.get("Labels") or {})
        attrs.update(image=str(c.config.get("Image") or c.doc.get("Image") or ""), name=c.name)
        attrs.update({k: str(v) for k, v in extra.items()})
        emit(engine, "container", action, c.id, attrs)
    except (AttributeError, KeyError, TypeError):
        pass


@dataclass(frozen=True)
class Event:
    doc: dict[str, Any]

    @property
    def time_nano(self) -> int:
        return int(self.doc.get("timeNano") or 0)


def _parse(line: bytes) -> Event | None:
    try:
        doc = _json.loads(line)
    except ValueError:
        return None
    return Event(doc) if isinstance(doc, dict) else None


def read(engine: Engine, since: float | None = None) -> list[Event]:
    """Every journaled event at or after `since` (seconds), oldest first."""
    path = journal(engine)
    out: list[Event] = []
    for p in (Path(str(path) + ".1"), path):
        try:
            with open(p, "rb") as f:
                for line in f:
                    ev = _parse(line)
                    if ev is not None and (since is None or ev.time_nano >= since * 1e9):
                        out.append(ev)
        except FileNotFoundError:
            continue
    return out


def follow(engine: Engine, interval: float = 0.05) -> Iterator[Event | None]:
    """New events as they are appended (from now on); yields None on each idle poll so the
    caller can stop (e.g. when its client went away)."""
    path = journal(engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = None
    ino = None
    try:
        try:
            f = open(path, "rb")
            f.seek(0, os.SEEK_END)
            ino = os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            f = None
        buf = b""
        while True:
            if f is None:
                try:
                    f = open(path, "rb")
                    ino = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    yield None
                    time.sleep(interval)
                    continue
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    ev = _parse(line)
                    if ev is not None:
                        yield ev
                continue
            try:
                if os.stat(path).st_ino != ino:  # rotated
                    f.close()
                    f = None
                    continue
            except FileNotFoundError:
                pass
            yield None
            time.sleep(interval)
    finally:
        if f is not None:
            f.close()
