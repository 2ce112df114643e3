"""Records: the part of `dataclasses` Dockyard uses, without its start-up cost.

`dataclasses` imports `inspect` (and with it `ast`, `dis`, `tokenize`: ~7 ms) and builds each
class by generating and compiling source for `__init__`, `__repr__`, `__eq__`, `__hash__`,
`__setattr__` (~0.5 ms per class). `dockyard run` loads about thirty record classes, so that was
a fifth of its start. Here the methods are shared, generic functions that read a per-class
field table; creating a class costs a few microseconds.

Supported: `@dataclass` / `@dataclass(frozen=True, kw_only=True, eq=True, repr=True)`, fields
with defaults, `field(default=, default_factory=, repr=, compare=, hash=, init=)`, inheritance
of fields, `__post_init__`, `replace`, `asdict`, `fields` (the names, in order). Type
checkers see the stdlib's `dataclass` (via `dataclass_transform`), so annotations are checked
the same way.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar, dataclass_transform

    _T = TypeVar("_T")

_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    __slots__ = ("name", "default", "factory", "repr", "compare", "hash", "init")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING, repr: bool = True,
                 compare: bool = True, hash: bool | None = None, init: bool = True) -> None:
        self.name = ""
        self.default, self.factory = default, default_factory
        self.repr, self.compare, self.init = repr, compare, init
        self.hash = compare if hash is None else hash


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, repr: bool = True,
          compare: bool = True, hash: bool | None = None, init: bool = True) -> Any:
    return Field(default, default_factory, repr, compare, hash, init)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    table: tuple[Field, ...] = cls.__record_init__
    if len(args) > cls.__record_positional__:
        raise TypeError(f"{cls.__name__}() takes {cls.__record_positional__} positional arguments"
                        f" but {len(args)} were given")
    put = object.__setattr__
    for i, f in enumerate(table):
        name = f.name
        if i < len(args):
            if name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for argument '{name}'")
            put(self, name, args[i])
        elif name in kwargs:
            put(self, name, kwargs.pop(name))
        elif f.default is not _MISSING:
            put(self, name, f.default)
        elif f.factory is not _MISSING:
            put(self, name, f.factory())
        else:
            raise TypeError(f"{cls.__name__}() missing required argument: '{name}'")
    if kwargs:
        raise TypeError(f"{cls.__name__}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    for f in cls.__record_noinit__:
        if f.default is not _MISSING:
            put(self, f.name, f.default)
        elif f.factory is not _MISSING:
            put(self, f.name, f.factory())
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


def _repr(self: Any) -> str:
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__ if f.repr)
    return f"{type(self).__qualname__}({inner})"


def _key(self: Any, which: str) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in self.__record_fields__ if getattr(f, which))


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _key(self, "compare") == _key(other, "compare")


def _hash(self: Any) -> int:
    return hash(_key(self, "hash"))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    if name in type(self).__record_names__:
        raise FrozenInstanceError(f"cannot assign to field '{name}'")
    object.__setattr__(self, name, value)


def _frozen_delattr(self: Any, name: str) -> None:
    if name in type(self).__record_names__:
        raise FrozenInstanceError(f"cannot delete field '{name}'")
    object.__delattr__(self, name)


def _process(cls: Any, frozen: bool, kw_only: bool, eq: bool, repr: bool) -> Any:
    inherited: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__record_fields__", ()):
            inherited[f.name] = f
    own = cls.__dict__.get("__annotations__", {})
    for name, annotation in own.items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        if isinstance(value, Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        inherited[name] = f
    table = tuple(inherited.values())
    cls.__record_fields__ = table
    cls.__record_names__ = frozenset(inherited)
    cls.__record_init__ = tuple(f for f in table if f.init)
    cls.__record_noinit__ = tuple(f for f in table if not f.init)
    cls.__record_positional__ = 0 if kw_only else len(cls.__record_init__)
    if not kw_only:
        seen_default = False
        for f in cls.__record_init__:
            has_default = f.default is not _MISSING or f.factory is not _MISSING
            if seen_default and not has_default:
                raise TypeError(f"non-default argument '{f.name}' follows default argument")
            seen_default = seen_default or has_default
    cls.__init__ = _init
    if repr and "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr
    if eq and "__eq__" not in cls.__dict__:
        cls.__eq__ = _eq
        if frozen:
            cls.__hash__ = _hash
        elif "__hash__" not in cls.__dict__:
            cls.__hash__ = None
    if frozen:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
    return cls


if TYPE_CHECKING:
    @dataclass_transform(field_specifiers=(field,))
    def dataclass(cls: Any = None, /, *, frozen: bool = False, kw_only: bool = False,
                  eq: bool = True, repr: bool = True) -> Any: ...
else:
    def dataclass(cls=None, /, *, frozen=False, kw_only=False, eq=True, repr=True):
        """`@dataclass` or `@dataclass(frozen=True, ...)`: see the module docstring."""
        if cls is None:
            return lambda c: _process(c, frozen, kw_only, eq, repr)
        return _process(cls, frozen, kw_only, eq, repr)


def fields(obj_or_cls: Any) -> tuple[str, ...]:
    """The field names of a record class or instance, in declaration order."""
    return tuple(f.name for f in obj_or_cls.__record_fields__)


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of `obj` with some fields changed (as `dataclasses.replace`)."""
    cls: Callable[..., _T] = type(obj)
    for f in type(obj).__record_fields__:
        if f.init and f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
        elif not f.init and f.name in changes:
            raise ValueError(f"field {f.name} is declared with init=False, it cannot be specified with replace()")
    return cls(**changes)


def asdict(obj: Any) -> Any:
    """Records (recursively, also inside lists, tuples and dicts) as plain dicts."""
    if hasattr(type(obj), "__record_fields__"):
        return {f.name: asdict(getattr(obj, f.name)) for f in obj.__record_fields__}
    if isinstance(obj, (list, tuple)):
        return type(obj)(asdict(v) for v in obj)
    if isinstance(obj, dict):
        return {asdict(k): asdict(v) for k, v in obj.items()}
    return obj
