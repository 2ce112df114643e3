"""Dockerfile-style ``--change`` instructions for ``import -c`` and ``commit -c``.

`apply_changes(config, changes)` applies CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
USER, VOLUME, WORKDIR, STOPSIGNAL and HEALTHCHECK to the "config" part of an image
config (Docker's container.Config keys) and returns a new dict; the input is untouched.
Anything else (RUN, FROM, FOO …) is refused as Docker does: "run is not a valid change
command".
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import signal

from .._record import dataclass, field
from ..errors import InvalidArgument
from ._shlex import env_map, expand, split_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

DEFAULT_SHELL = ["/bin/sh", "-c"]

VALID_CHANGE_COMMANDS = frozenset(
    {"cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "stopsignal",
     "user", "volume", "workdir"}
)


@dataclass
class _State:
    config: dict[str, Any]
    cmd_set: bool = False
    env: dict[str, str] = field(default_factory=dict)


def apply_changes(config: dict[str, Any] | None, changes: list[str]) -> dict[str, Any]:
    """Apply Dockerfile change lines to a copy of `config` (a container.Config dict)."""
    state = _State(copy.deepcopy(config) if config else {})
    for raw in changes:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if "\t" in keyword:
            keyword, _, more = keyword.partition("\t")
            rest = more + " " + rest
        cmd = keyword.lower()
        if cmd not in VALID_CHANGE_COMMANDS:
            # Docker's parser accepts any word; BuildFromConfig then refuses it.
            raise InvalidArgument(f"{cmd} is not a valid change command")
        state.env = env_map(state.config.get("Env"))
        _DISPATCH[cmd](state, rest.strip(), line)
    return state.config


# ---- helpers -------------------------------------------------------------------------


def _json_array(rest: str) -> list[str] | None:
    """The exec form: a JSON array of strings, or None for the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def _command_line(state: _State, rest: str) -> list[str] | None:
    exec_form = _json_array(rest)
    if exec_form is not None:
        return exec_form
    if not rest:
        return None
    shell = state.config.get("Shell") or DEFAULT_SHELL
    return [*shell, rest]


def _name_values(rest: str, what: str, state: _State) -> list[tuple[str, str]]:
    """Docker's parseNameVal: ``K V`` (legacy, one pair) or ``K=V K2="a b"``."""
    words = split_words(rest)
    if not words:
        raise InvalidArgument(f"{what} requires at least one argument")
    if "=" not in words[0]:
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{what} must have two arguments")
        return [(expand(parts[0], state.env), expand(parts[1], state.env))]
    pairs: list[tuple[str, str]] = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(
                f"Syntax error - can't find = in {word!r}. Must be of the form: name=value"
            )
        key, _, value = word.partition("=")
        key = expand(key, state.env)
        if not key:
            raise InvalidArgument(f"{what} names can not be blank")
        pairs.append((key, expand(value, state.env)))
    return pairs


def _single(rest: str, what: str, state: _State) -> str:
    if not rest:
        raise InvalidArgument(f"{what} requires exactly one argument")
    return expand(rest, state.env)


# ---- instructions ----------------------------------------------------------------------


def _cmd(state: _State, rest: str, _line: str) -> None:
    state.config["Cmd"] = _command_line(state, rest)
    state.cmd_set = True


def _entrypoint(state: _State, rest: str, _line: str) -> None:
    state.config["Entrypoint"] = _command_line(state, rest)
    if not state.cmd_set:
        state.config["Cmd"] = None


def _env(state: _State, rest: str, _line: str) -> None:
    env: list[str] = list(state.config.get("Env") or [])
    for key, value in _name_values(rest, "ENV", state):
        item = f"{key}={value}"
        for i, existing in enumerate(env):
            if existing.partition("=")[0] == key:
                env[i] = item
                break
        else:
            env.append(item)
    state.config["Env"] = env


def _label(state: _State, rest: str, _line: str) -> None:
    labels: dict[str, str] = dict(state.config.get("Labels") or {})
    for key, value in _name_values(rest, "LABEL", state):
        labels[key] = value
    state.config["Labels"] = labels


_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/(\w+))?$")


def parse_exposed_port(spec: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8002/tcp`` → ``["80/tcp"]`` etc."""
    m = _PORT_RE.match(spec)
    if m is None:
        raise InvalidArgument(f"Invalid containerPort: {spec}")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    proto = (m.group(3) or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"Invalid proto: {proto}")
    if not 0 < start <= 65535 or not start <= end <= 65535:
        raise InvalidArgument(f"Invalid containerPort: {spec}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _expose(state: _State, rest: str, _line: str) -> None:
    words = split_words(rest)
    if not words:
        raise InvalidArgument("EXPOSE requires at least one argument")
    ports: dict[str, Any] = dict(state.config.get("ExposedPorts") or {})
    for word in words:
        for port in parse_exposed_port(expand(word, state.env)):
            ports[port] = {}
    state.config["ExposedPorts"] = ports


def _onbuild(state: _State, rest: str, line: str) -> None:
    if not rest:
        raise InvalidArgument("ONBUILD requires at least one argument")
    trigger = rest.split(None, 1)[0].upper()
    if trigger == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InvalidArgument(f'"{trigger}" isn\'t allowed as an ONBUILD trigger')
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", line)
    state.config["OnBuild"] = [*(state.config.get("OnBuild") or []), expression]


def _user(state: _State, rest: str, _line: str) -> None:
    state.config["User"] = _single(rest, "USER", state)


def _volume(state: _State, rest: str, _line: str) -> None:
    items = _json_array(rest)
    words = items if items is not None else split_words(rest)
    if not words:
        raise InvalidArgument("VOLUME requires at least one argument")
    volumes: dict[str, Any] = dict(state.config.get("Volumes") or {})
    for word in words:
        path = expand(word, state.env) if items is None else word
        if not path.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[path] = {}
    state.config["Volumes"] = volumes


def _workdir(state: _State, rest: str, _line: str) -> None:
    path = _single(rest, "WORKDIR", state)
    if not posixpath.isabs(path):
        path = posixpath.join(state.config.get("WorkingDir") or "/", path)
    state.config["WorkingDir"] = posixpath.normpath(path).replace("//", "/")


def validate_signal(sig: str) -> None:
    """Docker's signal.ParseSignal: a number or a name with or without ``SIG``."""
    if sig.isdigit():
        if not 0 < int(sig) <= 64:
            raise InvalidArgument(f"Invalid signal: {sig}")
        return
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if re.fullmatch(r"SIGRTM(IN|AX)([+-]\d+)?", name):
        return
    if not hasattr(signal.Signals, name) or name.startswith("SIG_"):
        raise InvalidArgument(f"Invalid signal: {sig}")


def _stopsignal(state: _State, rest: str, _line: str) -> None:
    sig = _single(rest, "STOPSIGNAL", state)
    validate_signal(sig)
    state.config["StopSignal"] = sig


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(value: str) -> int:
    """Go's time.ParseDuration, to nanoseconds (``1m30s``, ``500ms``, ``0``)."""
    if value == "0":
        return 0
    pos, total = 0, 0.0
    if not value:
        raise InvalidArgument(f'time: invalid duration "{value}"')
    while pos < len(value):
        m = _DURATION_RE.match(value, pos)
        if m is None:
            raise InvalidArgument(f'time: invalid duration "{value}"')
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return int(total)


_HEALTH_FLAGS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
    "retries": "Retries",
}


def _healthcheck(state: _State, rest: str, _line: str) -> None:
    words = rest.split()
    if not words:
        raise InvalidArgument("HEALTHCHECK requires at least one argument")
    if words[0].upper() == "NONE":
        if len(words) > 1:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        state.config["Healthcheck"] = {"Test": ["NONE"]}
        return
    health: dict[str, Any] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = flag[2:].partition("=")
        if name not in _HEALTH_FLAGS or not eq:
            raise InvalidArgument(f"Unknown flag: {name}")
        if name == "retries":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument("--retries cannot be 0 or negative")
            health["Retries"] = int(value)
            continue
        ns = parse_duration(value)
        if 0 < ns < 1_000_000:
            raise InvalidArgument(f"Interval {flag[2:].split('=')[0]!r} cannot be less than 1ms")
        if ns:
            health[_HEALTH_FLAGS[name]] = ns
    kind, _, command = rest.partition(" ")
    if kind.upper() != "CMD":
        raise InvalidArgument(f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
    command = command.strip()
    exec_form = _json_array(command)
    if exec_form is not None:
        test = ["CMD", *exec_form]
    elif command:
        test = ["CMD-SHELL", command]
    else:
        raise InvalidArgument("Missing command after HEALTHCHECK CMD")
    ordered: dict[str, Any] = {"Test": test}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if key in health:
            ordered[key] = health[key]
    state.config["Healthcheck"] = ordered


_DISPATCH: dict[str, Callable[[_State, str, str], None]] = {
    "cmd": _cmd,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "label": _label,
    "onbuild": _onbuild,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
    "stopsignal": _stopsignal,
    "healthcheck": _healthcheck,
}
