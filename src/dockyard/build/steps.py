"""Metadata instructions: how each one changes the image's container config, and the
history ``created_by`` line Docker's classic builder records for it.

Docker writes most comments as ``<shell> #(nop)  <TEXT>`` (the shell, then "#(nop) "
and the text as two arguments joined by a space, hence two spaces); WORKDIR, COPY and
ADD use a single argument (one space). CMD and ENTRYPOINT show Go's %q of a string
list (``["a" "b"]``), VOLUME and SHELL Go's %v (``[/a /b]``).
"""

from __future__ import annotations

import copy
import json
import posixpath

from .._record import dataclass
from ..errors import InvalidArgument
from ..images.changes import apply_changes, parse_duration, parse_exposed_port, validate_signal
from .parser import Instruction, key_values
from ..images.shellwords import process_word, split_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Effect:
    """What a metadata step does: the new config, its history comment, and the author."""

    config: dict[str, Any]
    created_by: str
    author: str | None = None
    cmd_set: bool = False


def shell_of(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def nop(config: Mapping[str, Any], text: str) -> str:
    """The two-argument comment form: ``/bin/sh -c #(nop)  ENV A=b``."""
    return " ".join([*shell_of(config), "#(nop) ", text])


def nop1(config: Mapping[str, Any], text: str) -> str:
    """The one-argument form (WORKDIR, COPY, ADD): ``/bin/sh -c #(nop) WORKDIR /app``."""
    return " ".join([*shell_of(config), "#(nop) " + text])


def go_quote_list(items: list[str]) -> str:
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                v = ns / size
                return f"{v:g}{unit}"
    secs = ns / 1_000_000_000
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    s_txt = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{s_txt}"
    if m:
        return f"{int(m)}m{s_txt}"
    return s_txt


def command_line(ins: Instruction, config: Mapping[str, Any]) -> list[str]:
    """CMD / ENTRYPOINT / RUN arguments: the JSON form as is, else the shell form."""
    if ins.json:
        return list(ins.args)
    text = " ".join(ins.args)
    return [*shell_of(config), text]


def set_env(env: list[str], key: str, value: str) -> list[str]:
    out = list(env)
    for i, item in enumerate(out):
        if item.split("=", 1)[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def apply(ins: Instruction, config: dict[str, Any], env: Mapping[str, str], escape: str,
          cmd_set: bool) -> Effect:
    """Apply a metadata instruction (not RUN/COPY/ADD/FROM/ARG) to a copy of `config`."""
    cfg = copy.deepcopy(config)
    cmd = ins.cmd

    def word(w: str) -> str:
        return process_word(w, env, escape)

    if cmd == "ENV":
        pairs = [(word(k), word(v)) for k, v in key_values(ins, escape)]
        e = list(cfg.get("Env") or [])
        for k, v in pairs:
            if not k:
                raise InvalidArgument(f"Dockerfile line {ins.line}: ENV names can not be blank")
            e = set_env(e, k, v)
        cfg["Env"] = e
        return Effect(cfg, nop(cfg, "ENV " + " ".join(f"{k}={v}" for k, v in pairs)), cmd_set=cmd_set)
    if cmd == "LABEL":
        pairs = [(word(k), word(v)) for k, v in key_values(ins, escape)]
        labels = dict(cfg.get("Labels") or {})
        for k, v in pairs:
            if not k:
                raise InvalidArgument(f"Dockerfile line {ins.line}: LABEL names can not be blank")
            labels[k] = v
        cfg["Labels"] = labels
        return Effect(cfg, nop(cfg, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)), cmd_set=cmd_set)
    if cmd == "MAINTAINER":
        author = " ".join(ins.args)
        return Effect(cfg, nop(cfg, "MAINTAINER " + author), author=author, cmd_set=cmd_set)
    if cmd == "EXPOSE":
        words: list[str] = []
        for raw in ins.args:
            words.extend(split_words(word(raw), escape) if raw else [])
        ports = dict(cfg.get("ExposedPorts") or {})
        for w in words:
            for p in parse_exposed_port(w):
                ports[p] = {}
        cfg["ExposedPorts"] = ports
        return Effect(cfg, nop(cfg, "EXPOSE " + " ".join(words)), cmd_set=cmd_set)
    if cmd == "USER":
        user = word(ins.args[0])
        cfg["User"] = user
        return Effect(cfg, nop(cfg, f"USER {user}"), cmd_set=cmd_set)
    if cmd == "WORKDIR":
        path = word(" ".join(ins.args))
        if not posixpath.isabs(path):
            path = posixpath.join(cfg.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path).replace("//", "/")
        cfg["WorkingDir"] = path
        return Effect(cfg, nop1(cfg, f"WORKDIR {path}"), cmd_set=cmd_set)
    if cmd == "VOLUME":
        vols = list(ins.args) if ins.json else [word(w) for a in ins.args for w in split_words(a, escape)]
        volumes = dict(cfg.get("Volumes") or {})
        for v in vols:
            if not v.strip():
                raise InvalidArgument(f"Dockerfile line {ins.line}: VOLUME specified can not be an empty string")
            volumes[v] = {}
        cfg["Volumes"] = volumes
        return Effect(cfg, nop(cfg, f"VOLUME {go_list(vols)}"), cmd_set=cmd_set)
    if cmd == "STOPSIGNAL":
        sig = word(ins.args[0])
        validate_signal(sig)
        cfg["StopSignal"] = sig
        return Effect(cfg, nop(cfg, f"STOPSIGNAL {sig}"), cmd_set=cmd_set)
    if cmd == "CMD":
        line = command_line(ins, cfg)
        cfg["Cmd"] = line
        return Effect(cfg, nop(cfg, f"CMD {go_quote_list(line)}"), cmd_set=bool(line))
    if cmd == "ENTRYPOINT":
        line = command_line(ins, cfg)
        cfg["Entrypoint"] = line
        if not cmd_set:
            cfg["Cmd"] = None
        return Effect(cfg, nop(cfg, f"ENTRYPOINT {go_quote_list(line)}"), cmd_set=cmd_set)
    if cmd == "SHELL":
        if not ins.json or not ins.args:
            raise InvalidArgument(f"Dockerfile line {ins.line}: SHELL requires the arguments to be in JSON form")
        cfg["Shell"] = list(ins.args)
        return Effect(cfg, nop(cfg, f"SHELL {go_list(list(ins.args))}"), cmd_set=cmd_set)
    if cmd == "HEALTHCHECK":
        text = ins.original.split(None, 1)[1] if len(ins.original.split(None, 1)) > 1 else ""
        cfg = apply_changes(cfg, ["HEALTHCHECK " + text])
        return Effect(cfg, nop(cfg, "HEALTHCHECK " + _health_text(cfg.get("Healthcheck") or {})), cmd_set=cmd_set)
    if cmd == "ONBUILD":
        expr = ins.original.split(None, 1)[1].strip()
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), expr]
        return Effect(cfg, nop(cfg, "ONBUILD " + expr), cmd_set=cmd_set)
    raise InvalidArgument(f"Dockerfile line {ins.line}: {cmd} is not a metadata instruction")


def _health_text(h: Mapping[str, Any]) -> str:
    """Go's %q of a *HealthConfig: &{["CMD-SHELL" "x"] "30s" "0s" "0s" "0s" '\\x00'}."""
    test = go_quote_list(list(h.get("Test") or []))
    durations = " ".join(json.dumps(go_duration(int(h.get(k) or 0)), ensure_ascii=False)
                         for k in ("Interval", "Timeout", "StartPeriod", "StartInterval"))
    retries = int(h.get("Retries") or 0)
    r = f"'\\x{retries:02x}'" if retries < 0x20 else repr(chr(retries))
    return f"&{{{test} {durations} {r}}}"


__all__ = ["DEFAULT_PATH", "DEFAULT_SHELL", "Effect", "apply", "command_line", "go_duration",
           "go_quote_list", "nop", "nop1", "parse_duration", "set_env", "shell_of"]
