"""Docker's container-config JSON shape (the "config" of an image) and the host platform.

Docker serialises its container.Config with every field present except a few
``omitempty`` ones; ``docker image inspect`` prints that shape. These helpers turn a
sparse dict into it, in Docker's field order.
"""

from __future__ import annotations

import copy
from typing import Any

#: (field, default, omitted when empty) in Docker's container.Config order
_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("Hostname", "", False),
    ("Domainname", "", False),
    ("User", "", False),
    ("AttachStdin", False, False),
    ("AttachStdout", False, False),
    ("AttachStderr", False, False),
    ("ExposedPorts", None, True),
    ("Tty", False, False),
    ("OpenStdin", False, False),
    ("StdinOnce", False, False),
    ("Env", None, False),
    ("Cmd", None, False),
    ("Healthcheck", None, True),
    ("ArgsEscaped", False, True),
    ("Image", "", False),
    ("Volumes", None, False),
    ("WorkingDir", "", False),
    ("Entrypoint", None, False),
    ("NetworkDisabled", False, True),
    ("MacAddress", "", True),
    ("OnBuild", None, False),
    ("Labels", None, False),
    ("StopSignal", "", True),
    ("StopTimeout", None, True),
    ("Shell", None, True),
)
_KNOWN = {name for name, _, _ in _FIELDS}


def container_config(partial: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's full container.Config JSON for `partial` (a new dict, Docker's order).

    Unknown keys are kept at the end; empty ``omitempty`` fields are dropped.
    """
    src = partial or {}
    out: dict[str, Any] = {}
    for name, default, omitempty in _FIELDS:
        value = src.get(name, default)
        if omitempty and not value:
            continue
        out[name] = copy.deepcopy(value)
    for key, value in src.items():
        if key not in _KNOWN:
            out[key] = copy.deepcopy(value)
    return out


_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_architecture() -> str:
    """The host architecture in GOARCH spelling (x86_64 → amd64, aarch64 → arm64)."""
    import os

    machine = os.uname().machine.lower()  # platform.machine(), without importing platform
    return _ARCH.get(machine, machine)


def host_variant() -> str | None:
    import os

    machine = os.uname().machine.lower()
    if machine == "armv7l":
        return "v7"
    if machine == "armv6l":
        return "v6"
    return None
