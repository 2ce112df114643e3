"""`dockyard run` and `dockyard create`."""

from __future__ import annotations

import sys

from ..errors import InvalidArgument, NotFound
from . import runflags
from .args import engine


def _create(argv: list[str], cmd: str):  # type: ignore[no-untyped-def]
    from ..engine import lifecycle

    ns = runflags.parser(cmd).parse_args(argv)
    config, hc = runflags.to_docker(ns)
    eng = engine()
    if ns.pull == "always":
        from .registry import pull_for_run

        pull_for_run(ns.image, ns.quiet)
    try:
        c = lifecycle.create(eng, config, hc, ns.name, runflags.networking_config(ns))
    except NotFound as e:
        if not str(e).startswith("No such image") or ns.pull != "missing" or not _pullable(ns.image):
            raise
        ref = str(e).split(": ", 1)[1]
        print(f"Unable to find image '{ref}' locally", file=sys.stderr)
        from .registry import pull_for_run

        pull_for_run(ns.image, ns.quiet)
        c = lifecycle.create(eng, config, hc, ns.name, runflags.networking_config(ns))
    return eng, c, ns


def _pullable(image: str) -> bool:
    """A name (not an image ID or ID prefix) can be pulled."""
    from ..images.refs import parse_reference

    if image.startswith("sha256:"):
        return False
    try:
        parse_reference(image)
    except InvalidArgument:
        return False
    return True


def cmd_create(argv: list[str]) -> int:
    _eng, c, _ns = _create(argv, "create")
    print(c.id)
    return 0


def cmd_run(argv: list[str]) -> int:
    from ..engine import lifecycle

    # (cli/main started warming the cgroup migration lock before importing this module)
    eng, c, ns = _create(argv, "run")
    if ns.detach:
        try:
            lifecycle.start(eng, c)
        except BaseException:
            if c.host_config.get("AutoRemove"):
                lifecycle.remove(eng, c, force=True)
            raise
        print(c.id)
        return 0
    from .attach import attach_and_start

    if ns.detach_keys:
        from ..engine.stream import parse_detach_keys

        parse_detach_keys(ns.detach_keys)
    code = attach_and_start(eng, c, ns.detach_keys, sig_proxy=ns.sig_proxy.lower() not in ("false", "0"))
    return code
