"""--format handling shared by ps, images, inspect, stats: Go templates, `table`, `json`."""

from __future__ import annotations

import json
import sys

from ..errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence


def _render(tmpl: str, data: Any) -> str:
    from .gotemplate import TemplateError, render

    try:
        return render(tmpl, data)
    except TemplateError as e:
        raise InvalidArgument(str(e)) from None


def print_rows(rows: Sequence[dict[str, Any]], fmt: str | None, default_table: str,
               headers: dict[str, str], quiet_field: str | None = None) -> None:
    """Docker's formatter: 'table ...' gets a header and tab alignment; 'json' one object per line."""
    from .tabwriter import tabwrite

    fmt = fmt or default_table
    if fmt == "json":
        for r in rows:
            print(json.dumps({k: v for k, v in r.items() if not callable(v)}, separators=(",", ":")))
        return
    table = fmt.startswith("table")
    body = fmt[5:].lstrip() if table else fmt
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    out: list[str] = []
    if table:
        if not body:
            body = default_table[5:].lstrip().replace("\\t", "\t")
        out.append(_render(body, {k: v for k, v in headers.items()}))
    for r in rows:
        out.append(_render(body, r))
    text = "\n".join(out) + ("\n" if out else "")
    if table:
        text = tabwrite(text)
    sys.stdout.write(text)


def print_inspect(objs: list[Any], fmt: str | None) -> None:
    if fmt:
        for o in objs:
            print(_render(fmt.replace("\\n", "\n").replace("\\t", "\t"), o))
        return
    print(json.dumps(objs, indent=4))


def trunc(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
