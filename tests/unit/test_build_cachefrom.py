"""build/cachefrom: which --cache-from image answers a step, as Docker's classic builder."""

from __future__ import annotations

from dockyard.build.backend import BaseImage
from dockyard.build.cachefrom import find

BASE_HIST = [{"created": "2020-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:aa in / "}]
RUN = "/bin/sh -c echo hi > /x"
ENV = "/bin/sh -c #(nop)  ENV A=1"
COPY = "/bin/sh -c #(nop) COPY file:bb in /b "


def _image(iid: str, history: list[dict], diff_ids: list[str]) -> BaseImage:
    return BaseImage(iid, {"history": history, "rootfs": {"type": "layers", "diff_ids": diff_ids}}, None)


SOURCE = _image("sha256:src", BASE_HIST + [
    {"created": "2021-01-01T00:00:00Z", "created_by": RUN},
    {"created": "2021-01-01T00:00:01Z", "created_by": ENV, "empty_layer": True},
    {"created": "2021-01-01T00:00:02Z", "created_by": COPY},
], ["sha256:base", "sha256:run", "sha256:copy"])
BASE = {"history": BASE_HIST, "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]}}


def test_the_next_step_of_a_matching_history_is_restored() -> None:
    m = find([SOURCE], BASE, RUN)
    assert m is not None and m.source is SOURCE and m.layer == "sha256:run" and not m.last
    assert m.item == SOURCE.config["history"][1]


def test_empty_layer_steps_and_the_last_step() -> None:
    after_run = {"history": SOURCE.config["history"][:2], "rootfs": {"diff_ids": ["sha256:base", "sha256:run"]}}
    m = find([SOURCE], after_run, ENV)
    assert m is not None and m.layer is None and not m.last
    after_env = {"history": SOURCE.config["history"][:3], "rootfs": {"diff_ids": ["sha256:base", "sha256:run"]}}
    m = find([SOURCE], after_env, COPY)
    assert m is not None and m.layer == "sha256:copy" and m.last


def test_no_match_when_anything_differs() -> None:
    assert find([SOURCE], BASE, "/bin/sh -c echo other > /x") is None  # another instruction
    other_base = {"history": [dict(BASE_HIST[0], created="2020-02-02T00:00:00Z")],
                  "rootfs": {"diff_ids": ["sha256:base"]}}
    assert find([SOURCE], other_base, RUN) is None  # the same base, rebuilt at another time
    other_layers = {"history": BASE_HIST, "rootfs": {"diff_ids": ["sha256:other"]}}
    assert find([SOURCE], other_layers, RUN) is None
    done = {"history": SOURCE.config["history"], "rootfs": SOURCE.config["rootfs"]}
    assert find([SOURCE], done, "/bin/sh -c true") is None  # past the source's history
    assert find([], BASE, RUN) is None


def test_scratch_parent_and_the_first_matching_source_wins() -> None:
    scratch_src = _image("sha256:s1", [{"created": "x", "created_by": COPY}], ["sha256:c"])
    other = _image("sha256:s2", [{"created": "y", "created_by": COPY}], ["sha256:d"])
    m = find([scratch_src, other], None, COPY)
    assert m is not None and m.source is scratch_src and m.last and m.layer == "sha256:c"
