"""Pull/push pieces that need no registry: reference normalisation for pull, platforms, the
progress bar and display (plain and terminal), and the loopback-only guard."""

from __future__ import annotations

import io

import pytest

from dockyard.cli.registry import Display, _server_key
from dockyard.engine.distmeta import Event, check_reachable, parse_platform, progress_bar
from dockyard.errors import FailedPrecondition, InvalidArgument
from dockyard.images.refs import parse_reference


@pytest.mark.parametrize("given, name, tag, digest", [
    ("busybox", "docker.io/library/busybox", "latest", None),
    ("busybox:1.36", "docker.io/library/busybox", "1.36", None),
    ("me/app", "docker.io/me/app", "latest", None),
    ("index.docker.io/library/busybox", "docker.io/library/busybox", "latest", None),
    ("localhost:5000/x", "localhost:5000/x", "latest", None),
    ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b", "v1", None),
    ("host:5000/a/b@sha256:" + "a" * 64, "host:5000/a/b", None, "sha256:" + "a" * 64),
])
def test_pull_reference_normalisation(given, name, tag, digest):
    ref = parse_reference(given)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)


@pytest.mark.parametrize("bad", ["Busybox", "a/B", "x@sha256:abc", "host:5000/", ":tag", "a" * 64])
def test_pull_invalid_references(bad):
    with pytest.raises(InvalidArgument):
        parse_reference(bad)


def test_parse_platform():
    assert parse_platform("linux/arm64") == ("linux", "arm64", None)
    assert parse_platform("linux/arm64/v8") == ("linux", "arm64", None)
    assert parse_platform("linux/arm/v7") == ("linux", "arm", "v7")
    assert parse_platform("linux/x86_64") == ("linux", "amd64", None)
    assert parse_platform(None)[0] == "linux"
    with pytest.raises(InvalidArgument):
        parse_platform("linux")


def test_progress_bar_as_docker():
    assert progress_bar(0, 0, 200) == ""
    assert progress_bar(1_200_000, 3_400_000, 80) == "   1.2MB/3.4MB"
    bar = progress_bar(1_700_000, 3_400_000, 200)
    assert bar == "[" + "=" * 25 + ">" + " " * 25 + "]    1.7MB/3.4MB"
    assert progress_bar(5000, 0, 200) == "     5kB"


def test_display_plain_drops_byte_counts():
    out = io.StringIO()
    d = Display(out, terminal=False)
    d.emit(Event("latest: Pulling from library/busybox"))
    d.emit(Event("Pulling fs layer", "abc"))
    d.emit(Event("Downloading", "abc", 10, 100))
    d.emit(Event("Download complete", "abc"))
    d.emit(Event("Digest: sha256:x"))
    assert out.getvalue().splitlines() == ["latest: Pulling from library/busybox", "abc: Pulling fs layer",
                                          "abc: Download complete", "Digest: sha256:x"]


def test_display_terminal_redraws_in_place():
    out = io.StringIO()
    d = Display(out, terminal=True)
    d.width = 80
    d.emit(Event("Pulling from library/busybox", "latest"))
    d.emit(Event("Pulling fs layer", "a"))
    d.emit(Event("Pulling fs layer", "b"))
    d.emit(Event("Downloading", "a", 50, 100))
    text = out.getvalue()
    assert text.startswith("latest: Pulling from library/busybox\n")
    # a new id takes a new line; updating "a" (two lines up) moves up 2, redraws, moves back down
    assert text.endswith("\x1b[2A\x1b[2K\ra: Downloading      50B/100B\r\x1b[2B")


def test_display_quiet():
    out = io.StringIO()
    Display(out, terminal=False, quiet=True).emit(Event("Pulling fs layer", "a"))
    assert out.getvalue() == ""


def test_event_json_shape():
    assert Event("Downloading", "a", 5, 10).to_json()["progressDetail"] == {"current": 5, "total": 10}
    assert Event("Pulling fs layer", "a").to_json() == {"status": "Pulling fs layer", "progressDetail": {},
                                                        "id": "a"}
    assert Event("Digest: x").to_json() == {"status": "Digest: x"}


def test_loopback_only_guard(monkeypatch):
    monkeypatch.setenv("DOCKYARD_REGISTRY_LOOPBACK_ONLY", "1")
    for ok in ("127.0.0.1:5000", "localhost:5000", "localhost", "[::1]:5000"):
        check_reachable(ok)
    for bad in ("docker.io", "ghcr.io", "10.0.0.1:5000"):
        with pytest.raises(FailedPrecondition):
            check_reachable(bad)
    monkeypatch.delenv("DOCKYARD_REGISTRY_LOOPBACK_ONLY")
    check_reachable("docker.io")


def test_login_server_keys():
    assert _server_key(None) == "docker.io"
    assert _server_key("https://index.docker.io/v1/") == "docker.io"
    assert _server_key("localhost:5000") == "localhost:5000"
    assert _server_key("https://reg.example:443/v2/") == "reg.example:443"


@pytest.mark.parametrize("n", [0, 1, 100, 32768, 1 << 20, (1 << 20) + 5, 3 * (1 << 20) + 12345])
def test_parallel_gzip_is_one_valid_member(n):
    import gzip
    import os
    import random

    from dockyard.engine.distribution_compress import _HashingWriter, gzip_parallel

    rnd = random.Random(n)
    text = bytes(rnd.choice(b"abcdefgh \n") for _ in range(min(n, 200000)))
    data = text + os.urandom(max(0, n - len(text)))
    out = io.BytesIO()
    w = _HashingWriter(out)
    gzip_parallel(io.BytesIO(data), w)
    blob = out.getvalue()
    assert gzip.decompress(blob) == data
    assert w.n == len(blob) and blob[:3] == b"\x1f\x8b\x08"


def test_parallel_gzip_stores_incompressible_blocks():
    import gzip
    import os

    from dockyard.engine.distribution_compress import _HashingWriter, gzip_parallel

    data = os.urandom(3 << 20) + b"a" * (2 << 20)
    out = io.BytesIO()
    gzip_parallel(io.BytesIO(data), _HashingWriter(out))
    blob = out.getvalue()
    assert gzip.decompress(blob) == data
    assert len(blob) < (3 << 20) + 64 * 1024  # random part stored (tiny overhead), the rest deflated


def test_run_parallel_keeps_order_and_raises_the_earliest_failure() -> None:
    import threading

    from dockyard.engine.distmeta import run_parallel

    stop = threading.Event()
    assert run_parallel(lambda x: x * 2, list(range(20)), 3, stop) == [x * 2 for x in range(20)]
    assert not stop.is_set()
    ran: list[int] = []

    def job(x: int) -> int:
        ran.append(x)
        if x in (2, 4):
            raise ValueError(f"bad {x}")
        return x

    with pytest.raises(ValueError, match="bad 2"):
        run_parallel(job, list(range(50)), 1, stop)
    assert stop.is_set() and ran == [0, 1, 2]  # one worker: nothing taken after the failure
