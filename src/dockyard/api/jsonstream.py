"""Docker's JSON message streams (build, pull, push, load, import) and a producer thread
that turns an engine call writing to a callback or a file into the chunks of a response.

A message is one JSON object and "\\r\\n", as Docker's streamformatter writes it:
``{"stream": "..."}``, ``{"status": "...", "id": "...", "progressDetail": {...}}``,
``{"aux": {...}}``, ``{"errorDetail": {"message": "..."}, "error": "..."}``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any, Callable, Iterator

log = logging.getLogger("dockyard.api")

Emit = Callable[[bytes], None]

#: seconds of silence after which a stream yields an empty chunk (a liveness tick)
TICK = 1.0


def message(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode() + b"\r\n"


def stream_line(text: str) -> bytes:
    return message(stream=text)


def status(text: str, **fields: Any) -> bytes:
    return message(status=text, **fields)


def error(text: str) -> bytes:
    return message(errorDetail={"message": text}, error=text)


class _Cancelled(Exception):
    """The client went away: the producer stops at its next write."""


class _Writer:
    """A write-only binary file over `emit` (for tarfile and friends)."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.closed = False

    def write(self, data: bytes) -> int:
        if data:
            self._emit(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True


_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def produce(work: Callable[[Emit], None],
            on_error: Callable[[BaseException], bytes | None] | None = None,
            early_errors: bool = False, depth: int = 64) -> Iterator[bytes]:
    """Run `work(emit)` in a thread and yield what it emits, in order. An exception in
    `work` ends the stream with `on_error(exc)` (if it returns bytes; without `on_error` it is
    raised to the server, which then ends the connection abruptly); with `early_errors`,
    one raised before anything was emitted is raised here instead (so the handler answers
    with an error status, as Docker does when a pull fails before its first message).
    Closing the iterator early (the client went away) makes the next `emit` raise in the
    thread, which then stops."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    cancelled = threading.Event()

    def put(item: object) -> None:
        while not cancelled.is_set():
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Cancelled()

    def target() -> None:
        try:
            work(put)
        except _Cancelled:
            return
        except BaseException as e:  # reported in the stream: the status line is already sent
            try:
                put(_Failed(e))
            except _Cancelled:
                return
        try:
            put(_DONE)
        except _Cancelled:
            return

    thread = threading.Thread(target=target, name="api-stream", daemon=True)
    thread.start()
    first = q.get() if early_errors else None
    if isinstance(first, _Failed):
        cancelled.set()
        raise first.exc
    return _Chunks(_drain(q, cancelled, first, on_error), cancelled)


class _Chunks:
    """The response's chunks. Closing them, or dropping them unread (a HEAD request, a client
    gone before the headers), stops the producer too: a generator never started would not
    run its `finally`."""

    def __init__(self, gen: Iterator[bytes], cancelled: threading.Event) -> None:
        self._gen, self._cancelled = gen, cancelled

    def __iter__(self) -> "_Chunks":
        return self

    def __next__(self) -> bytes:
        return next(self._gen)

    def close(self) -> None:
        self._cancelled.set()
        self._gen.close()  # type: ignore[attr-defined]

    def __del__(self) -> None:
        self._cancelled.set()


def _drain(q: "queue.Queue[object]", cancelled: threading.Event, first: object,
           on_error: Callable[[BaseException], bytes | None] | None) -> Iterator[bytes]:
    try:
        item = first if first is not None else _next(q)
        while item is not _DONE:
            if isinstance(item, _Failed):
                if on_error is None:  # the server ends the connection without the last chunk
                    raise item.exc
                tail = on_error(item.exc)
                if tail:
                    yield tail
                return
            yield item  # type: ignore[misc]
            item = _next(q)
    finally:
        cancelled.set()


def _next(q: "queue.Queue[object]") -> object:
    """The next item, or b"" after a second of silence: the server's tick to check that the
    client is still there (a long RUN step may print nothing)."""
    try:
        return q.get(timeout=TICK)
    except queue.Empty:
        return b""


def produce_file(work: Callable[[_Writer], None],
                 on_error: Callable[[BaseException], bytes | None] | None = None) -> Iterator[bytes]:
    """`produce` for work that writes a file (save, export)."""
    return produce(lambda emit: work(_Writer(emit)), on_error)
