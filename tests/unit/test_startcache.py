"""dockyard._startcache: modules served from one file, never stale."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dockyard import _startcache


def _package(tmp_path):
    pkg = tmp_path / "src" / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'pkg'\n")
    (pkg / "a.py").write_text("from .sub import b\nVALUE = 'a' + b.VALUE\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("VALUE = 'b'\ndef boom():\n    raise ValueError('from b')\n")
    (pkg / "not-a-module.py").write_text("syntax error here (\n")
    return pkg


def _run(pkg, code: str) -> str:
    prog = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(pkg.parent)!r}, {os.path.dirname(os.path.dirname(_startcache.__file__))!r}]
        from dockyard import _startcache
        print(_startcache.install({str(pkg)!r}))
    """) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-S", "-c", prog], capture_output=True, text=True, check=True).stdout


def test_modules_come_from_the_cache_and_edits_win(tmp_path):
    pkg = _package(tmp_path)
    path, count = _startcache.build(str(pkg), "demo")
    assert count == 4 and os.path.basename(path).startswith("startcache.")
    out = _run(pkg, """
        import demo.a, demo.sub.b
        print(demo.a.VALUE, type(demo.a.__loader__).__name__, demo.a.__file__.endswith("a.py"))
        print(demo.sub.__path__)
        try:
            demo.sub.b.boom()
        except ValueError:
            import traceback
            print("raise ValueError('from b')" in traceback.format_exc())
    """).split("\n")
    assert out[0] == "True"
    assert out[1] == "ab _Finder True"
    assert out[2] == repr([str(pkg / "sub")])
    assert out[3] == "True"  # tracebacks show the source lines

    (pkg / "sub" / "b.py").write_text("VALUE = 'B, edited'\n")  # a different size: not from the cache
    assert _run(pkg, "import demo.a; print(demo.a.VALUE)").split("\n")[1] == "aB, edited"


def test_a_bad_or_missing_cache_is_ignored(tmp_path):
    pkg = _package(tmp_path)
    assert _run(pkg, "import demo.a; print(demo.a.VALUE)").split("\n")[:2] == ["False", "ab"]
    path, _ = _startcache.build(str(pkg), "demo")
    with open(path, "r+b") as f:
        f.write(b"XXXX")  # another Python's magic number
    assert _run(pkg, "import demo.a; print(demo.a.VALUE)").split("\n")[:2] == ["False", "ab"]


@pytest.mark.parametrize("argv", [[], ["nope"]])
def test_cli_usage(argv):
    assert _startcache.main(argv) == 2
