"""`contextmanager`, `suppress` and `cached_property` without `contextlib` and `functools`.

Those two modules import `collections`, and the three cost ~4 ms of every `dockyard`
command, for three small helpers. These behave as the stdlib's for how Dockyard uses them
(a `contextmanager` is not also a decorator here). Type checkers see the stdlib's.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import contextmanager, suppress
    from functools import cached_property
else:
    class suppress:
        """`with suppress(FileNotFoundError): ...` ignores those exceptions."""

        __slots__ = ("_types",)

        def __init__(self, *types):
            self._types = types

        def __enter__(self):
            return None

        def __exit__(self, typ, value, tb):
            return typ is not None and issubclass(typ, self._types)

    class _GeneratorContext:
        __slots__ = ("_gen",)

        def __init__(self, gen):
            self._gen = gen

        def __enter__(self):
            try:
                return next(self._gen)
            except StopIteration:
                raise RuntimeError("generator didn't yield") from None

        def __exit__(self, typ, value, tb):
            if typ is None:
                try:
                    next(self._gen)
                except StopIteration:
                    return False
                raise RuntimeError("generator didn't stop")
            if value is None:
                value = typ()
            try:
                self._gen.throw(value)
            except StopIteration as exc:
                return exc is not value  # the generator swallowed it
            except RuntimeError as exc:
                if exc is value or (isinstance(value, StopIteration) and exc.__cause__ is value):
                    value.__traceback__ = tb
                    return False
                raise
            except BaseException as exc:
                if exc is not value:
                    raise
                exc.__traceback__ = tb
                return False
            raise RuntimeError("generator didn't stop after throw()")

    def contextmanager(func):
        """`@contextmanager` over a generator that yields once."""
        def helper(*args, **kwargs):
            return _GeneratorContext(func(*args, **kwargs))

        helper.__name__, helper.__qualname__ = func.__name__, func.__qualname__
        helper.__doc__, helper.__wrapped__ = func.__doc__, func
        return helper

    class cached_property:
        """Computed on first read, then stored in the instance's __dict__."""

        def __init__(self, func):
            self.func, self.attrname, self.__doc__ = func, None, func.__doc__

        def __set_name__(self, owner, name):
            self.attrname = name

        def __get__(self, instance, owner=None):
            if instance is None:
                return self
            value = instance.__dict__[self.attrname] = self.func(instance)
            return value
