"""`dockyard-runtime list` and `ps`: the containers under --root, and a container's
processes, as runc prints them (a table, or JSON with --format json)."""

from __future__ import annotations

import os

from .cli_args import _LIST, _PS, UsageError, check_id, parse
from .cli_lifecycle import open_runtime, state_doc

TYPE_CHECKING = False  # `typing` costs ~5 ms at import; only the type checker needs it
if TYPE_CHECKING:
    from .api import Runtime
    from .cli_args import Options


def cmd_list(g: Options, argv: list[str]) -> int:
    import json

    o, args = parse(argv, _LIST, False)
    if args:
        raise UsageError('"list" takes no arguments')
    fmt = o.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r}")
    rt = open_runtime(g)
    docs = []
    for cid in rt.list():
        try:
            docs.append(state_doc(rt, cid))
        except Exception:  # noqa: BLE001 - a container deleted meanwhile is not listed
            continue
    if o.get("quiet"):
        for d in docs:
            print(d["id"])
    elif fmt == "json":
        print(json.dumps(docs))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], _owner(rt, d["id"]))
                 for d in docs]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths)) + "   " + r[-1])
    return 0


def _owner(rt: Runtime, cid: str) -> str:
    import pwd

    try:
        uid = os.stat(os.path.join(str(rt.root), cid)).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return "#?"


def cmd_ps(g: Options, argv: list[str]) -> int:
    import json

    from ..errors import Conflict

    o, args = parse(argv, _PS, True)
    if not args:
        raise UsageError('"ps" requires a container id')
    cid, ps_args = check_id(args[0]), args[1:]
    fmt = o.get("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option {fmt!r}")
    rt = open_runtime(g)
    if rt.state(cid).status == "stopped":
        raise Conflict(f"container {cid} is not running")
    cg = rt._load(cid).get("cgroupsPath")
    pids: list[int] = []
    if cg:
        from .cgroups import open_manager

        pids = open_manager(cg).pids()
    if fmt == "json":
        print(json.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise UsageError(f"ps: {out.stderr.strip() or 'failed'}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise UsageError("ps: no PID column in the output of ps") from None
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0
