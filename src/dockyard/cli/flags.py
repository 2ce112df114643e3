"""Docker's command-line flag rules in a small parser with argparse's calling conventions.

The docker CLI parses flags with cobra and spf13/pflag. `FlagParser` follows pflag's rules and
keeps argparse's API for the subset the commands use (`add_argument` with names, `dest`,
`default`, `type`, `action` store/store_true/append/help, `nargs` on positionals, one
`nargs="?"`+`const` flag, `choices`, `metavar`, `help`; `parse_args`, `parse_known_args`,
`Namespace`, `print_help`/`format_help`, `error`). It replaces argparse because `dockyard run`
builds a parser of ~100 flags on every start: argparse costs milliseconds there (its own import
with gettext and locale, a HelpFormatter per `add_argument` that imports shutil and asks for the
terminal size, `re`). This module imports only `sys`.

The rules (pflag's, as `docker` applies them):

* Long flags: ``--name value`` or ``--name=value``. A flag that takes a value takes the next
  argument whatever it looks like (``--name -x`` names the container "-x", ``--pids-limit -1``);
  at the end of argv: ``flag needs an argument: --name``. Names are never abbreviated: ``--net``
  works because it is declared as an alias of ``--network``.
* Short flags: ``-p 80:80``, ``-p80:80``, ``-p=80:80``. Booleans combine (``-dit``), and the last
  letter of a group may take a value: ``-ite FOO=1``, ``-itp80:80``.
* Boolean flags take no separate argument but accept an attached one with Go's
  strconv.ParseBool spellings: ``--rm=false``, ``-d=true`` (1, t, T, TRUE, true, True, 0, f, F,
  FALSE, false, False).
* ``--`` ends the flags: everything after it is positional. A lone ``-`` is positional (stdin).
* Flags and positionals may be interleaved (``rm a -f b``), except in a command whose last
  positional is REMAINDER (run, create, exec): there the first positional ends the flags
  (cobra's ``SetInterspersed(false)``), and the command keeps everything after the image or
  container as given, flags and ``--`` included.
* ``--help`` prints the help and exits 0 (there is no ``-h``: it is ``run``'s ``--hostname``).
* Errors are one line, passed to `error` (which `cli.args.Parser` prints with "See 'dockyard CMD
  --help'." and exit status 125): ``unknown flag: --x``, ``unexpected argument: x``,
  ``"dockyard CMD" requires at least 1 argument.``, ``flag needs an argument: --name`` (short:
  ``flag needs an argument: 'e' in -e``), ``invalid argument "x" for "-t, --time" flag:
  strconv.ParseInt: parsing "x": invalid syntax``. Flag errors come first, as pflag reports
  them while parsing and cobra checks the positional count afterwards.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn, TextIO

#: argparse.REMAINDER's value: the rest of argv, flags included, after the positionals before it
REMAINDER = "..."

_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))

# flag kinds; those >= _STORE take a value
_HELP, _BOOL, _OPTIONAL, _STORE, _APPEND = range(5)
_KINDS = {"store": _STORE, "store_true": _BOOL, "append": _APPEND, "help": _HELP}


class Namespace:
    """Parsed values as attributes (argparse.Namespace's equality, `in` and repr)."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    __hash__ = None  # type: ignore[assignment]


class Flag:
    """One option or positional, as `add_argument` declared it."""

    __slots__ = ("short", "long", "dest", "kind", "default", "type", "const", "choices", "metavar", "help",
                 "nargs")

    def __init__(self, short: str, long: list[str], dest: str, kind: int, default: Any,
                 type: Callable[[str], Any] | None, const: Any, choices: Any, metavar: str | None,
                 help: str | None, nargs: int | str | None) -> None:
        self.short = short  # the letter of -x, or ""
        self.long = long  # the names of --name (without dashes), first one shown in help
        self.dest, self.kind, self.default, self.type, self.const = dest, kind, default, type, const
        self.choices, self.metavar, self.help, self.nargs = choices, metavar, help, nargs

    @property
    def label(self) -> str:
        """pflag's name for the flag in messages: "-t, --time" or "--name"."""
        if self.long:
            return f"-{self.short}, --{self.long[0]}" if self.short else f"--{self.long[0]}"
        return f"-{self.short}" if self.short else self.dest


def _go_int(value: str) -> int:
    """strconv.ParseInt(value, 10, 64): optional sign, ASCII digits, 64-bit range."""
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    n = int(value)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(f'strconv.ParseInt: parsing "{value}": value out of range')
    return n


class FlagParser:
    """argparse.ArgumentParser's interface over pflag's rules (see the module docstring)."""

    def __init__(self, prog: str | None = None, usage: str | None = None, description: str | None = None) -> None:
        self.prog = prog if prog is not None else sys.argv[0]
        self.usage = usage
        self.description = description
        self._flags: list[Flag] = []
        self._long: dict[str, Flag] = {}
        self._short: dict[str, Flag] = {}
        self._positionals: list[Flag] = []
        #: with a REMAINDER positional: how many positionals end the flags (else None)
        self._stop_after: int | None = None

    # ---- declaring --------------------------------------------------------------------------

    def add_argument(self, *names: str, action: str = "store", nargs: int | str | None = None, const: Any = None,
                     default: Any = None, type: Callable[[str], Any] | None = None, choices: Any = None,
                     help: str | None = None, metavar: str | None = None, dest: str | None = None) -> Flag:
        kind = _KINDS.get(action)
        if kind is None or not names:
            raise ValueError(f"unsupported add_argument({names!r}, action={action!r})")
        if names[0][:1] != "-":  # a positional
            if len(names) != 1 or kind != _STORE or nargs not in (None, "?", "*", "+", REMAINDER):
                raise ValueError(f"unsupported positional {names!r} (nargs={nargs!r})")
            if self._stop_after is not None:
                raise ValueError("REMAINDER must be the last positional")
            f = Flag("", [], dest or names[0], kind, default, type, const, choices, metavar, help, nargs)
            if nargs == REMAINDER:
                self._stop_after = len(self._positionals)
            self._positionals.append(f)
            return f
        if nargs == "?" and kind == _STORE:
            kind = _OPTIONAL  # `--flag` alone means const; a value only as `--flag=value`
        elif nargs is not None:
            raise ValueError(f"unsupported nargs={nargs!r} for {names!r}")
        short = ""
        long: list[str] = []
        for name in names:
            if name[:2] == "--" and len(name) > 2:
                long.append(name[2:])
            elif len(name) == 2 and name[0] == "-" and not short:
                short = name[1]
            else:
                raise ValueError(f"unsupported flag name {name!r}")
        if dest is None:
            dest = long[0].replace("-", "_") if long else short
        if kind == _BOOL and default is None:
            default = False
        f = Flag(short, long, dest, kind, default, type, const, choices, metavar, help, None)
        for name in long:
            if name in self._long:
                raise ValueError(f"conflicting flag --{name}")
            self._long[name] = f
        if short:
            if short in self._short:
                raise ValueError(f"conflicting flag -{short}")
            self._short[short] = f
        self._flags.append(f)
        return f

    # ---- parsing ----------------------------------------------------------------------------

    def parse_args(self, args: list[str] | None = None, namespace: Namespace | None = None) -> Namespace:
        """Parse `args` (default: sys.argv[1:]); a given `namespace` gets every value set."""
        return self._parse(args, namespace, False)[0]

    def parse_known_args(self, args: list[str] | None = None,
                         namespace: Namespace | None = None) -> tuple[Namespace, list[str]]:
        """As parse_args, but an unknown flag and everything after it are returned, not refused
        (`top CONTAINER -o pid`: the rest are ps's options); so are positionals left over."""
        return self._parse(args, namespace, True)

    def _parse(self, args: list[str] | None, namespace: Namespace | None,
               known: bool) -> tuple[Namespace, list[str]]:
        argv = sys.argv[1:] if args is None else args
        values: dict[str, Any] = {}
        for f in self._flags:
            if f.kind != _HELP and f.dest not in values:
                values[f.dest] = f.default
        fresh: set[str] = set()  # append flags whose list is this parse's own
        pos: list[str] = []
        extras: list[str] = []
        stop_after = self._stop_after
        n = len(argv)
        i = 0
        while i < n:
            a = argv[i]
            i += 1
            if len(a) < 2 or a[0] != "-":  # a positional ("" and "-" included)
                pos.append(a)
                if stop_after is not None and len(pos) >= stop_after:
                    pos += argv[i:]
                    break
                continue
            if a == "--":
                pos += argv[i:]
                break
            if a[1] == "-":
                name, eq, val = a[2:].partition("=")
                f = self._long.get(name)
                if f is None:
                    if known:
                        extras += argv[i - 1:]
                        break
                    self.error(f"unknown flag: --{name}")
                if f.kind >= _STORE and not eq:
                    if i >= n:
                        self.error(f"flag needs an argument: --{name}")
                    val = argv[i]
                    i += 1
                    eq = "="
                self._set(f, values, fresh, val if eq else None)
                continue
            j, end = 1, len(a)
            while j < end:  # a group of short flags
                c = a[j]
                j += 1
                f = self._short.get(c)
                if f is None:
                    if known:
                        extras += argv[i - 1:]
                        i = n
                        break
                    self.error(f"unknown flag: -{c}")
                if f.kind >= _STORE:
                    if j < end:
                        val = a[j + 1:] if a[j] == "=" else a[j:]
                    elif i < n:
                        val = argv[i]
                        i += 1
                    else:
                        self.error(f"flag needs an argument: '{c}' in {a}")
                    self._set(f, values, fresh, val)
                    break
                if j < end and a[j] == "=":
                    self._set(f, values, fresh, a[j + 1:])
                    break
                self._set(f, values, fresh, None)
        self._assign(pos, values, extras if known else None)
        if namespace is None:
            return Namespace(**values), extras
        namespace.__dict__.update(values)
        return namespace, extras

    def _set(self, f: Flag, values: dict[str, Any], fresh: set[str], val: str | None) -> None:
        """Apply one occurrence of flag `f` (`val` None: given without a value)."""
        kind = f.kind
        if kind == _BOOL:
            if val is None or val in _TRUE:
                values[f.dest] = True
            elif val in _FALSE:
                values[f.dest] = False
            else:
                self.error(f'invalid argument "{val}" for "{f.label}" flag: strconv.ParseBool: '
                           f'parsing "{val}": invalid syntax')
            return
        if kind == _HELP:
            self.print_help()
            raise SystemExit(0)
        if val is None:  # _OPTIONAL alone
            values[f.dest] = f.const
            return
        value: Any = val
        if f.type is not None:
            try:
                value = _go_int(val) if f.type is int else f.type(val)
            except (TypeError, ValueError) as e:
                self.error(f'invalid argument "{val}" for "{f.label}" flag: {e}')
        if f.choices is not None and value not in f.choices:
            self.error(f'invalid argument "{val}" for "{f.label}" flag: must be one of '
                       + ", ".join(f'"{c}"' for c in f.choices))
        if kind == _APPEND:
            if f.dest in fresh:
                values[f.dest].append(value)
            else:
                fresh.add(f.dest)
                values[f.dest] = [*(values[f.dest] or ()), value]
        else:
            values[f.dest] = value

    def _assign(self, pos: list[str], values: dict[str, Any], extras: list[str] | None) -> None:
        """Hand the positionals out in order: each required one gets one, `?` one if spare, `*`,
        `+` and REMAINDER what the ones after them leave; then refuse a shortfall or a surplus."""
        specs = self._positionals
        k, npos = 0, len(pos)
        for idx, p in enumerate(specs):
            later = sum(1 for q in specs[idx + 1:] if q.nargs is None or q.nargs == "+")
            spare = npos - k - later
            if p.nargs is None or p.nargs == "?":
                if spare < 1:
                    if p.nargs is None:
                        self.error(f'"{self.prog}" requires at least 1 argument.')
                    values[p.dest] = p.default
                    continue
                values[p.dest] = p.type(pos[k]) if p.type is not None else pos[k]
                k += 1
                continue
            take = max(spare, 0)
            if take == 0 and p.nargs == "+":
                self.error(f'"{self.prog}" requires at least 1 argument.')
            values[p.dest] = p.default if take == 0 and p.default is not None else pos[k:k + take]
            k += take
        if k < npos:
            if extras is None:
                self.error(f"unexpected argument: {pos[k]}")
            extras[:0] = pos[k:]

    # ---- help and errors --------------------------------------------------------------------

    def format_help(self) -> str:
        """The docker CLI's layout: Usage, the description, then the flags sorted by name."""
        if self.usage is not None:
            usage = self.usage
        else:
            usage = " ".join([self.prog, "[OPTIONS]"] + [_positional_usage(p) for p in self._positionals])
        out = [f"Usage:  {usage}", ""]
        if self.description:
            out += [self.description, ""]
        rows = []
        for f in sorted(self._flags, key=lambda f: f.long[0] if f.long else f.short):
            left = f"-{f.short}, " if f.short and f.long else "    " if f.long else f"-{f.short}"
            if f.long:
                left += f"--{f.long[0]}"
            if f.kind >= _STORE:
                left += " " + (f.metavar or ("list" if f.kind == _APPEND else "int" if f.type is int else "string"))
            text = f.help or ""
            if f.kind == _STORE and f.default not in (None, "") and "(default" not in text:
                text += f' (default "{f.default}")' if isinstance(f.default, str) else f" (default {f.default})"
            rows.append((left, text))
        width = max((len(left) for left, _ in rows), default=0)
        out.append("Options:")
        out += [f"  {left.ljust(width)}   {text}".rstrip() for left, text in rows]
        return "\n".join(out) + "\n"

    def print_help(self, file: TextIO | None = None) -> None:
        (file or sys.stdout).write(self.format_help())

    def error(self, message: str) -> NoReturn:
        """Report a usage error; `cli.args.Parser` overrides this with Docker's exit 125."""
        print(f"{message}\nSee '{self.prog} --help'.", file=sys.stderr)
        raise SystemExit(125)


def _positional_usage(p: Flag) -> str:
    name = p.metavar or p.dest.upper()
    if p.nargs == "?":
        return f"[{name}]"
    if p.nargs == "*" or p.nargs == REMAINDER:
        return f"[{name}...]"
    return f"{name} [{name}...]" if p.nargs == "+" else name
