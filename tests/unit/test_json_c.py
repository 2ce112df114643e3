"""dockyard._json: the same bytes and values as the json package, and its errors."""

from __future__ import annotations

import json
import math
import random

import pytest

from dockyard import _json


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "none"] + (["list", "dict"] if depth < 4 else [])
    k = rng.choice(kinds)
    if k == "int":
        return rng.randint(-2**70, 2**70)
    if k == "float":
        return rng.uniform(-1e6, 1e6)
    if k == "str":
        return "".join(rng.choice("aé\"\\\n\t€😀/<>\x00\x1f ") for _ in range(rng.randint(0, 8)))
    if k == "bool":
        return rng.random() < 0.5
    if k == "none":
        return None
    if k == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {"".join(rng.choice("abcé") for _ in range(rng.randint(0, 3))): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


@pytest.mark.parametrize("seed", range(300))
def test_same_bytes_and_values_as_json(seed):
    v = _random_value(random.Random(seed))
    for sort_keys in (False, True):
        text = _json.dumps(v, sort_keys=sort_keys)
        assert text == json.dumps(v, separators=(",", ":"), sort_keys=sort_keys)
    assert _json.loads(text) == json.loads(text)
    for indent in (1, 3):
        assert _json.dumps_indented(v, indent) == json.dumps(v, indent=indent)
    pretty = json.dumps(v, indent=2, ensure_ascii=False)
    assert _json.loads(pretty) == v
    assert _json.loads(pretty.encode()) == v


def test_constants_and_whitespace():
    assert math.isnan(_json.loads("NaN"))
    assert _json.loads(" \n[Infinity, -Infinity] \t") == [math.inf, -math.inf]
    assert _json.dumps(math.inf) == "Infinity"


@pytest.mark.parametrize("text", ["", "   ", "{", "[1,]", "{} x", "[1] [2]", "{'a': 1}", "tru"])
def test_bad_input_raises_json_decode_error(text):
    with pytest.raises(json.JSONDecodeError) as got:
        _json.loads(text)
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    assert (got.value.msg, got.value.pos) == (want.value.msg, want.value.pos)


def test_unserializable_and_circular():
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json.dumps({"a": {1, 2}})
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        _json.dumps(loop)
    assert _json.dumps([[1], [1]]) == "[[1],[1]]"  # markers start empty on each call
