"""Build-arg helpers: Docker's predefined args, BuildKit's platform args, ARG words,
and the script form of a ``RUN <<EOF`` heredoc."""

from __future__ import annotations

from ..errors import InvalidArgument
from ..images.config import host_architecture, host_variant
from .parser import Instruction

#: Docker's predefined args: usable without an ARG line, never recorded
BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                          "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
                          "SOURCE_DATE_EPOCH"})


def platform_args() -> dict[str, str | None]:
    """BuildKit's automatic platform args (TARGETARCH …): in FROM lines, and in a stage
    once it declares them with ARG."""
    arch, variant = host_architecture(), host_variant() or ""
    plat = f"linux/{arch}" + (f"/{variant}" if variant else "")
    out: dict[str, str | None] = {}
    for kind in ("TARGET", "BUILD"):
        out.update({f"{kind}PLATFORM": plat, f"{kind}OS": "linux", f"{kind}ARCH": arch,
                    f"{kind}VARIANT": variant})
    return out


def arg_pairs(ins: Instruction) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for word in ins.args:
        k, sep, v = word.partition("=")
        if not k:
            raise InvalidArgument(f"Dockerfile line {ins.line}: ARG requires a name")
        out.append((k, v if sep else None))
    return out


_HEREDOC_END = "DOCKYARD_HEREDOC_END"


def heredoc_script(content: str) -> str:
    """The shell script for ``RUN <<EOF``: the content itself, or, when it starts with a
    ``#!`` line, a script that writes it to a temporary file and executes that."""
    if not content.startswith("#!"):
        return content
    body = content if content.endswith("\n") else content + "\n"
    return (f"f=$(mktemp) && cat > \"$f\" <<'{_HEREDOC_END}'\n{body}{_HEREDOC_END}\n"
            "chmod +x \"$f\" && \"$f\"; rc=$?; rm -f \"$f\"; exit $rc")
