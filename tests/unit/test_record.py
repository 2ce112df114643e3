"""dockyard._record behaves like the subset of dataclasses it replaces."""

from __future__ import annotations

from typing import ClassVar

import pytest

from dockyard._record import FrozenInstanceError, asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: dict[str, str] = field(default_factory=dict, compare=False)
    note: str = field(default="", repr=False)
    KIND: ClassVar[str] = "point"


@dataclass(frozen=True)
class Point3(Point):
    z: int = 0


@dataclass
class Mutable:
    items: list[int] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        self.count = len(self.items)


@dataclass(frozen=True, kw_only=True)
class Options:
    a: int
    b: str = "b"


def test_init_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.note) == (1, 0, {}, "")
    assert Point(1).tags is not Point(1).tags
    assert Point(1, y=2).y == 2
    assert Point.KIND == "point" and fields(Point) == ("x", "y", "tags", "note")


def test_argument_errors() -> None:
    with pytest.raises(TypeError, match="missing required argument: 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=3)
    with pytest.raises(TypeError, match="multiple values"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="positional"):
        Point(1, 2, {}, "", 5)
    with pytest.raises(TypeError):
        Options(1)  # type: ignore[misc]
    assert Options(a=1).b == "b"


def test_frozen_eq_hash_repr() -> None:
    p = Point(1, 2, {"a": "b"}, "secret")
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y  # type: ignore[misc]
    assert p == Point(1, 2, note="secret") and p != Point(1, 2)  # tags do not take part in comparison
    assert hash(p) == hash(Point(1, 2, note="secret")) and len({p, Point(1, 2, {}, "secret")}) == 1
    assert repr(p) == "Point(x=1, y=2, tags={'a': 'b'})"
    assert Point(1) != Point3(1)


def test_inheritance_and_replace() -> None:
    q = Point3(1, 2, z=3)
    assert fields(q) == ("x", "y", "tags", "note", "z")
    r = replace(q, y=5)
    assert (r.x, r.y, r.z) == (1, 5, 3) and type(r) is Point3 and q.y == 2


def test_mutable_post_init_and_unhashable() -> None:
    m = Mutable([1, 2])
    assert m.count == 2
    m.count = 7
    assert m.count == 7
    with pytest.raises(TypeError):
        hash(m)


def test_asdict_recurses() -> None:
    @dataclass(frozen=True)
    class Outer:
        inner: Point
        more: tuple[Point, ...] = ()

    d = asdict(Outer(Point(1), (Point(2),)))
    assert d == {"inner": {"x": 1, "y": 0, "tags": {}, "note": ""},
                 "more": ({"x": 2, "y": 0, "tags": {}, "note": ""},)}


def test_default_order_is_checked() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        @dataclass
        class Bad:
            a: int = 0
            b: int
