"""engine/imageops: Docker's reference matching (path.Match), filter maps, `until` values and
the commit config merge."""

from __future__ import annotations

import pytest

from dockyard.engine import imageops
from dockyard.errors import InvalidArgument


@pytest.mark.parametrize("pattern,name,want", [
    ("busybox", "busybox", True),
    ("busy*", "busybox", True),
    ("*", "library/busybox", False),  # `*` never crosses a slash
    ("*/*", "library/busybox", True),
    ("b?sybox", "busybox", True),
    ("[ab]usybox", "busybox", True),
    ("[^b]usybox", "busybox", False),
    ("busybox", "busybox2", False),
])
def test_path_match(pattern: str, name: str, want: bool) -> None:
    assert imageops.path_match(pattern, name) is want


@pytest.mark.parametrize("pattern,ref,want", [
    ("busybox", "busybox:latest", True),  # the name alone matches
    ("busybox:latest", "busybox:latest", True),
    ("busybox:1*", "busybox:latest", False),
    ("localhost:5000/app", "localhost:5000/app:v1", True),
    ("localhost:5000/*", "localhost:5000/app:v1", True),
    ("app", "localhost:5000/app:v1", False),
    ("busybox", "busybox@sha256:" + "a" * 64, True),
])
def test_reference_match(pattern: str, ref: str, want: bool) -> None:
    assert imageops.reference_match(pattern, ref) is want


def test_filter_map() -> None:
    assert imageops.filter_map(["label=a=b", "label=c", "dangling=true"]) == {
        "label": ["a=b", "c"], "dangling": ["true"]}
    with pytest.raises(InvalidArgument, match="bad format of filter"):
        imageops.filter_map(["dangling"])


def test_parse_until() -> None:
    assert imageops.parse_until("90s", 1000.0) == 910.0
    assert imageops.parse_until("2h", 10000.0) == 2800.0
    assert imageops.parse_until("1700000000", 0) == 1700000000.0
    assert imageops.parse_until("2024-01-02", 0) == 1704153600.0
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        imageops.parse_until("soon", 0)


def test_merge_commit_config() -> None:
    container = {"User": "app", "Env": ["A=1", "B=1"], "Cmd": ["sleep", "1"], "Entrypoint": None,
                 "Labels": {"x": "1", "y": "1"}, "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/srv"}
    merged = imageops.merge_commit_config({"Env": ["B=2"], "Labels": {"y": "2"}, "ExposedPorts": {"81/tcp": {}}},
                                          container)
    assert merged["Env"] == ["B=2", "A=1"]
    assert merged["Labels"] == {"x": "1", "y": "2"}
    assert merged["ExposedPorts"] == {"80/tcp": {}, "81/tcp": {}}
    assert merged["User"] == "app" and merged["WorkingDir"] == "/srv" and merged["Cmd"] == ["sleep", "1"]
    # a Cmd or an Entrypoint of its own: the container's Cmd is not carried over
    assert imageops.merge_commit_config({"Entrypoint": ["/bin/app"]}, container).get("Cmd") is None
    assert imageops.merge_commit_config({"Cmd": ["true"]}, container)["Cmd"] == ["true"]
