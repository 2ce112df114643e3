"""Dockerfile parsing, word expansion, .dockerignore patterns and history formats."""

from __future__ import annotations

import pytest

from dockyard.build import ignore, steps
from dockyard.build.parser import escape_directive, key_values, parse
from dockyard.images.shellwords import process_word, split_words
from dockyard.errors import InvalidArgument


def test_stages_meta_args_and_names() -> None:
    df = parse("ARG BASE=busybox\nFROM ${BASE} AS Build\nRUN true\nFROM scratch\nCOPY --from=build /x /x\n")
    assert [a.original for a in df.meta_args] == ["ARG BASE=busybox"]
    assert [(s.index, s.name, s.base) for s in df.stages] == [(0, "build", "${BASE}"), (1, "", "scratch")]
    assert df.stage_index("BUILD") == 0 and df.stage_index("1") == 1 and df.stage_index("nope") is None
    copy = df.stages[1].instructions[0]
    assert copy.flag("from") == "build" and copy.args == ("/x", "/x")


def test_escape_directive_and_continuation() -> None:
    text = "# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY a\\b /c\n"
    assert escape_directive(text) == "`"
    df = parse(text)
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == ("echo a   b",)
    assert escape_directive("FROM x\n# escape=`\n") == "\\"
    with pytest.raises(InvalidArgument):
        escape_directive("# escape=x\nFROM a\n")


@pytest.mark.parametrize("text, line", [
    ("FROM busybox\nFOO bar\n", 2),
    ("FROM busybox\nRUN true\nCOPY onlyone\n", 3),
    ("RUN true\nFROM busybox\n", 1),
    ("FROM busybox\nCOPY --bogus=1 a b\n", 2),
    ("FROM a AS 1x\n", 1),
    ("FROM a AS x\nFROM b AS x\n", 2),
])
def test_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(InvalidArgument, match=f"line {line}"):
        parse(text)


def test_empty_and_no_from() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        parse("\n# just a comment\n")
    with pytest.raises(InvalidArgument, match="no FROM|before the first FROM"):
        parse("ARG A=1\n")


def test_env_both_forms_and_labels() -> None:
    df = parse('FROM a\nENV A=1 B="x y"\nENV APP_VERSION latest\nLABEL "c d"=e f=g\n')
    env1, env2, label = df.stages[0].instructions
    assert key_values(env1, "\\") == [("A", "1"), ("B", '"x y"')]
    assert key_values(env2, "\\") == [("APP_VERSION", "latest")]
    assert key_values(label, "\\") == [('"c d"', "e"), ("f", "g")]


@pytest.mark.parametrize("word, expected", [
    ("${A}", "a"), ("$A-x", "a-x"), ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""), ("${A:+alt}", "alt"), ("${UNSET:+alt}", ""), ("${EMPTY+set}", "set"),
    ("'$A'", "$A"), ('"$A b"', "a b"), ("\\$A", "$A"), ('"\\$A"', "$A"), ("a\\ b", "a b"),
    ("${A:-${B}}", "a"), ("${UNSET:-${B}x}", "bx"), ("$", "$"), ("pre${A}post", "prepost" if False else "preapost"),
])
def test_expansion(word: str, expected: str) -> None:
    assert process_word(word, {"A": "a", "B": "b", "EMPTY": ""}) == expected


def test_expansion_with_backtick_escape_and_errors() -> None:
    assert process_word("`$A\\x", {"A": "a"}, "`") == "$A\\x"
    with pytest.raises(InvalidArgument):
        process_word("${UNSET:?must be set}", {})
    with pytest.raises(InvalidArgument):
        process_word("${A", {"A": "1"})
    assert split_words('a "b c" d\\ e') == ["a", '"b c"', "d\\ e"]


@pytest.mark.parametrize("patterns, path, excluded", [
    ("*.log", "a.log", True), ("*.log", "dir/a.log", False), ("**/*.log", "dir/sub/a.log", True),
    ("**/*.log", "a.log", True), ("/secret", "secret", True), ("dir", "dir/file", True),
    ("dir/*\n!dir/keep", "dir/keep", False), ("dir/*\n!dir/keep", "dir/other", True),
    ("*\n!app.py", "app.py", False), ("*\n!app.py", "x", True), ("# comment\n\n", "x", False),
    ("a?c", "abc", True), ("a[0-9]", "a5", True), ("a[0-9]", "ab", False), ("./x/../y", "y", True),
])
def test_dockerignore(patterns: str, path: str, excluded: bool) -> None:
    assert ignore.Matcher(ignore.parse(patterns)).excluded(path) is excluded


def test_history_forms() -> None:
    cfg: dict[str, object] = {}
    df = parse('FROM a\nENV A=b\nWORKDIR /app\nCMD ["echo", "hi"]\nCMD echo hi\nVOLUME /a /b\n'
               'EXPOSE 80 90/udp\nUSER app\nSHELL ["/bin/bash", "-c"]\nSTOPSIGNAL SIGKILL\nLABEL k=v\n'
               'MAINTAINER me\nONBUILD RUN echo x\nENTRYPOINT ["/e"]\n')
    got = []
    cmd_set = False
    for ins in df.stages[0].instructions:
        eff = steps.apply(ins, cfg, {}, "\\", cmd_set)
        cfg, cmd_set = eff.config, eff.cmd_set
        got.append(eff.created_by)
    assert got[0] == "/bin/sh -c #(nop)  ENV A=b"
    assert got[1] == "/bin/sh -c #(nop) WORKDIR /app"
    assert got[2] == '/bin/sh -c #(nop)  CMD ["echo" "hi"]'
    assert got[3] == '/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo hi"]'
    assert got[4] == "/bin/sh -c #(nop)  VOLUME [/a /b]"
    assert got[5] == "/bin/sh -c #(nop)  EXPOSE 80 90/udp"
    assert got[6] == "/bin/sh -c #(nop)  USER app"
    assert got[7] == "/bin/bash -c #(nop)  SHELL [/bin/bash -c]"  # the new shell, as Docker
    assert got[8] == "/bin/bash -c #(nop)  STOPSIGNAL SIGKILL"
    assert got[11] == "/bin/bash -c #(nop)  ONBUILD RUN echo x"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert cfg["OnBuild"] == ["RUN echo x"]
    # ENTRYPOINT keeps the CMD set in this stage
    assert cfg["Entrypoint"] == ["/e"] and cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]


def test_entrypoint_resets_inherited_cmd_and_workdir_is_relative() -> None:
    df = parse('FROM a\nENTRYPOINT ["/e"]\nWORKDIR /a\nWORKDIR b/../c\n')
    cfg: dict[str, object] = {"Cmd": ["sh"]}
    for ins in df.stages[0].instructions:
        cfg = steps.apply(ins, cfg, {}, "\\", False).config
    assert cfg["Cmd"] is None and cfg["WorkingDir"] == "/a/c"


def test_go_duration_and_healthcheck() -> None:
    assert steps.go_duration(0) == "0s" and steps.go_duration(90 * 10**9) == "1m30s"
    assert steps.go_duration(5 * 10**9) == "5s" and steps.go_duration(500 * 10**6) == "500ms"
    ins = parse("FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD true\n").stages[0].instructions[0]
    eff = steps.apply(ins, {}, {}, "\\", False)
    assert eff.config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert eff.created_by == ('/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '
                              "'\\x03'}")
