"""`record`: a frozen value class from annotations, like ``@dataclass(frozen=True)`` but
without generating source code at import time.

`dataclasses` compiles an ``__init__``/``__eq__``/``__hash__`` per class with `exec`, a
fraction of a millisecond each; pull and push define a dozen such classes on the path every
``dockyard pull``/``push`` takes, so they use this instead. Fields are the annotated names in
order; a class attribute is the field's default, `Factory(fn)` a default made per instance.
Instances are immutable, compare by value and hash by their hashable values.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar, dataclass_transform

T = TypeVar("T")


class Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class FrozenInstanceError(AttributeError):
    pass


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    names: tuple[str, ...] = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    for n in defaults:
        delattr(cls, n)
    qual = cls.__qualname__

    def __init__(self: Any, *args: Any, **kw: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{qual}() takes {len(names)} positional arguments but {len(args)} were given")
        values = dict(zip(names, args))
        for n in names[len(args):]:
            if n in kw:
                values[n] = kw.pop(n)
            elif n in defaults:
                d = defaults[n]
                values[n] = d.make() if isinstance(d, Factory) else d
            else:
                raise TypeError(f"{qual}() missing required argument: {n!r}")
        if kw:
            raise TypeError(f"{qual}() got unexpected arguments: {', '.join(kw)}")
        for n in names:
            object.__setattr__(self, n, values[n])

    def _key(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in names)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(_key(self) == _key(other))

    def __hash__(self: Any) -> int:
        # mutable values (a dict of mirrors) are left out, as dataclass's field(hash=False)
        return hash(tuple(v for v in _key(self) if not isinstance(v, (dict, list, set))))

    def __repr__(self: Any) -> str:
        return f"{qual}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    for fn in (__init__, __eq__, __hash__, __repr__, __setattr__, __delattr__):
        setattr(cls, fn.__name__, fn)
    cls.__match_args__ = names  # type: ignore[attr-defined]
    return cls
