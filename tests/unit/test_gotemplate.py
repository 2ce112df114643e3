"""Go text/template subset + docker/cli template functions + text/tabwriter.

Expected strings are what Go (text/template, fmt, encoding/json, text/tabwriter) and the
docker CLI produce for the same template and data.
"""

from __future__ import annotations

import pytest

from dockyard.cli.gotemplate import Template, TemplateError, parse, render
from dockyard.cli.tabwriter import tabwrite
from dockyard.errors import InvalidArgument

INSPECT = {
    "Id": "4c01db0b339c",
    "Name": "/web",
    "Args": ["-g", "daemon off;"],
    "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 4242, "ExitCode": 0},
    "Config": {
        "Image": "nginx:latest",
        "Cmd": ["sh", "-c", "a && b > c"],
        "Env": ["PATH=/usr/bin"],
        "Labels": {"com.example.b": "2", "com.example.a": "1"},
        "Healthcheck": None,
    },
    "RepoTags": ["nginx:latest", "nginx:1.25"],
    "RootFS": {"Type": "layers", "Layers": ["sha256:aa", "sha256:bb", "sha256:cc"]},
    "Mounts": [{"Source": "/srv/a", "Destination": "/a"}, {"Source": "/srv/b", "Destination": "/b"}],
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
    "Empty": [],
    "NoMap": {},
    "Zero": 0,
    "Ratio": 0.5,
    "Big": 1e6,
}


def r(text, data=INSPECT):
    return render(text, data)


def err(text, data=INSPECT) -> str:
    with pytest.raises(TemplateError) as ei:
        render(text, data)
    return str(ei.value)


# ------------------------------------------------------------ docker examples

@pytest.mark.parametrize("text, want", [
    ("{{.State.Pid}}", "4242"),
    ("{{ .State.Pid }}", "4242"),
    ("{{json .Config}}", '{"Image":"nginx:latest","Cmd":["sh","-c","a && b > c"],'
                         '"Env":["PATH=/usr/bin"],"Labels":{"com.example.b":"2","com.example.a":"1"},'
                         '"Healthcheck":null}'),
    ("{{index .RepoTags 0}}", "nginx:latest"),
    ("{{len .RootFS.Layers}}", "3"),
    ("{{range .Mounts}}{{.Source}} {{end}}", "/srv/a /srv/b "),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "com.example.a=1;com.example.b=2;"),
    ("{{join .Args \",\"}}", "-g,daemon off;"),
    ("{{.Name | upper}}", "/WEB"),
    ('{{printf "%-10s|" .Name}}', "/web      |"),
    ("{{.NetworkSettings.Networks.bridge.IPAddress}}", "172.17.0.2"),
    ('{{(index .NetworkSettings.Networks "bridge").IPAddress}}', "172.17.0.2"),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "172.17.0.2"),
    ("{{.State.Status}} {{.State.ExitCode}}", "running 0"),
    ("{{json .State.Running}}", "true"),
    ("{{.Config.Healthcheck}}", "<nil>"),
    ("{{.Config.Labels}}", "map[com.example.a:1 com.example.b:2]"),
    ("{{.Config.Cmd}}", "[sh -c a && b > c]"),
])
def test_docker_examples(text, want):
    assert r(text) == want


def test_missing_map_key_prints_no_value():
    assert r("{{.Nope}}") == "<no value>"
    assert r("{{.Nope.Deeper.Still}}") == "<no value>"
    assert r("{{.Config.Nope}}") == "<no value>"
    assert r("{{$x := .Nope}}{{$x}}") == "<no value>"


def test_explicit_null_prints_nil_and_cannot_be_walked():
    assert r("{{.Config.Healthcheck}}") == "<nil>"
    assert err("{{.Config.Healthcheck.Test}}") == (
        'template: :1:9: executing "" at <.Config.Healthcheck.Test>: '
        "nil pointer evaluating interface {}.Test")


def test_missing_value_as_function_argument_is_nil():
    assert r("{{print .Nope}}") == "<nil>"
    assert r("{{printf \"%v\" .Nope}}") == "<nil>"
    assert r("{{json .Nope}}") == "null"
    assert r("{{html .Nope}}") == "&lt;no value&gt;"


# ------------------------------------------------------------ text and actions

def test_plain_text_and_empty():
    assert r("") == ""
    assert r("hello\nworld") == "hello\nworld"
    assert r("a {{.Zero}} b") == "a 0 b"
    assert r("{ {.Name} } }}") == "{ {.Name} } }}"


def test_trim_markers():
    assert r("a   {{- .Zero -}}   b") == "a0b"
    assert r("a \n\t {{- .Zero}} b") == "a0 b"
    assert r("a {{.Zero -}} \n b") == "a 0b"
    assert r("{{.Name}}\n  {{- .Name}}") == "/web/web"
    assert r("{{range .Args -}} [{{.}}] {{- end}}") == "[-g][daemon off;]"
    # "{{-3}}" is the number -3, not a trim marker
    assert r("x {{-3}}") == "x -3"
    assert r("x {{- 3}}") == "x3"


def test_comments():
    assert r("a{{/* a comment */}}b") == "ab"
    assert r("a {{- /* trimmed */ -}} b") == "ab"
    assert r("a{{/* multi\nline */}}b") == "ab"
    assert err("{{/* open") == "template: :1: unclosed comment"
    assert err("{{/* c */ }}") == "template: :1: comment ends before closing delimiter"


# ------------------------------------------------------------ fields and variables

def test_dot_and_dollar():
    assert r("{{.}}", "x") == "x"
    assert r("{{.}}", [1, "a", None, True]) == "[1 a <nil> true]"
    assert r("{{range .Mounts}}{{$.Name}}:{{.Destination}} {{end}}") == "/web:/a /web:/b "
    assert r("{{$.State.Pid}}") == "4242"
    assert r("{{with .State}}{{$.Name}} {{.Pid}}{{end}}") == "/web 4242"


def test_variables_declare_assign_and_scope():
    assert r("{{$x := .State}}{{$x.Pid}}") == "4242"
    assert r("{{$x := 1}}{{$x = 2}}{{$x}}") == "2"
    assert r("{{$last := \"\"}}{{range .Args}}{{$last = .}}{{end}}{{$last}}") == "daemon off;"
    assert r("{{if true}}{{$y := 1}}{{$y}}{{end}}") == "1"
    assert err("{{if true}}{{$y := 1}}{{end}}{{$y}}") == 'template: :1: undefined variable "$y"'
    assert err("{{$nope}}") == 'template: :1: undefined variable "$nope"'
    assert err("{{$nope = 1}}") == 'template: :1: undefined variable "$nope"'
    assert r("{{$x := .Name}}{{$x | len}}") == "4"


def test_range_variables():
    assert r("{{range $i, $e := .Args}}{{$i}}={{$e}},{{end}}") == "0=-g,1=daemon off;,"
    assert r("{{range $e := .RepoTags}}<{{$e}}>{{end}}") == "<nginx:latest><nginx:1.25>"
    assert r("{{range $k, $v := .State}}{{$k}} {{end}}") == "ExitCode Paused Pid Running Status "


def test_field_errors():
    assert err("{{.Name.Foo}}") == (
        'template: :1:7: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type string')
    assert err("{{.Args.Foo}}") == (
        'template: :1:7: executing "" at <.Args.Foo>: '
        "can't evaluate field Foo in type []interface {}")
    assert err('{{.State "x"}}') == (
        'template: :1:2: executing "" at <.State>: State is not a method but has arguments')
    assert err("line one\n  {{.Zero.Foo}}") == (
        'template: :2:9: executing "" at <.Zero.Foo>: can\'t evaluate field Foo in type int')


# ------------------------------------------------------------ literals, pipelines

@pytest.mark.parametrize("text, want", [
    ('{{"a\\tb\\n\\"q\\" \\u00e9 \\x41 \\101"}}', 'a\tb\n"q" é A A'),
    ("{{`raw \\n \"x\"`}}", 'raw \\n "x"'),
    ("{{1}} {{-7}} {{+3}} {{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}}", "1 -7 3 31 15 15 5 1000"),
    ("{{1.5}} {{1.0}} {{.25}} {{1e3}} {{1e6}} {{0x1p-2}}", "1.5 1 0.25 1000 1e+06 0.25"),
    ("{{'a'}} {{'\\n'}} {{'\\x41'}}", "97 10 65"),
    ("{{true}} {{false}}", "true false"),
    ("{{.Name | printf \"%s!\"}}", "/web!"),
    ("{{.Name | printf \"%s-%s\" \"pre\"}}", "pre-/web"),
    ("{{.Args | len | printf \"%03d\"}}", "002"),
    ("{{printf \"%d\" (len .Args)}}", "2"),
    ("{{(len .Args)}}", "2"),
    ("{{((.State)).Pid}}", "4242"),
    ("{{(index .Mounts 1).Source}}", "/srv/b"),
    ("{{(.State).Status}}", "running"),
])
def test_literals_and_pipelines(text, want):
    assert r(text) == want


def test_pipeline_parse_errors():
    assert err('{{"a" | "b"}}') == "template: :1: non executable command in pipeline stage 2"
    assert err("{{}}") == "template: :1: missing value for command"
    assert err("{{nil}}") == 'template: :1:2: executing "" at <nil>: nil is not a command'
    assert err('{{"a" 1}}') == (
        'template: :1:2: executing "" at <"a">: can\'t give argument to non-function "a"')
    assert err('{{"x".Foo}}') == 'template: :1: unexpected . after term "\\"x\\""'
    assert err("{{.Foo-bar}}") == "template: :1: bad character U+002D '-'"
    assert err('{{"open}}') == "template: :1: unterminated quoted string"
    assert err("{{`open}}") == "template: :1: unterminated raw quoted string"
    assert err("{{1x}}") == 'template: :1: bad number syntax: "1x"'
    assert err("{{'ab'}}") == "template: :1: malformed character constant: 'ab'"
    assert err('{{"\\q"}}') == "template: :1: invalid syntax"
    assert err("{{(.Name}}") == "template: :1: unclosed left paren"
    assert err("{{.Name)}}") == "template: :1: unexpected right paren"
    assert err("{{.Name ~}}") == 'template: :1: unexpected "~" in operand'


# ------------------------------------------------------------ control structures

@pytest.mark.parametrize("value, truth", [
    (None, False), (False, False), (True, True), (0, False), (1, True), (-1, True), (0.0, False),
    (0.1, True), ("", False), ("x", True), ([], False), ([0], True), ({}, False), ({"a": 0}, True),
])
def test_truthiness(value, truth):
    assert r("{{if .V}}T{{else}}F{{end}}", {"V": value}) == ("T" if truth else "F")
    assert r("{{if .Missing}}T{{else}}F{{end}}", {"V": value}) == "F"


def test_if_else_if_chain():
    tpl = parse('{{if eq .N 1}}one{{else if eq .N 2}}two{{else if gt .N 9}}big{{else}}other{{end}}')
    assert [tpl.execute({"N": n}) for n in (1, 2, 10, 5)] == ["one", "two", "big", "other"]
    assert r("{{if .Zero}}x{{end}}") == ""
    assert r("{{ if .Empty }}x{{ else }}y{{ end }}") == "y"


def test_with():
    assert r("{{with .State}}{{.Pid}}{{end}}") == "4242"
    assert r("{{with .Nope}}yes{{else}}no{{end}}") == "no"
    assert r("{{with $s := .State.Status}}{{$s}}/{{.}}{{end}}") == "running/running"
    assert r("{{with .Nope}}a{{else with .Name}}{{.}}{{else}}c{{end}}") == "/web"


def test_range():
    assert r("{{range .Empty}}x{{else}}none{{end}}") == "none"
    assert r("{{range .NoMap}}x{{else}}none{{end}}") == "none"
    assert r("{{range .Nope}}x{{else}}none{{end}}") == "none"
    assert r("{{range .Config.Healthcheck}}x{{else}}none{{end}}") == "none"
    assert r("{{range .Config.Labels}}{{.}} {{end}}") == "1 2 "  # values in sorted key order
    assert r("{{range 3}}{{.}}{{end}}") == "012"
    assert r("{{range .RootFS.Layers}}{{if eq . \"sha256:bb\"}}{{break}}{{end}}{{.}} {{end}}") == "sha256:aa "
    assert r("{{range .RootFS.Layers}}{{if eq . \"sha256:bb\"}}{{continue}}{{end}}{{.}} {{end}}") == (
        "sha256:aa sha256:cc ")
    assert r("{{range .Mounts}}{{range $.Args}}{{.}}|{{end}}{{end}}") == "-g|daemon off;|-g|daemon off;|"
    assert err("{{range .Name}}{{end}}") == (
        'template: :1:8: executing "" at <.Name>: range can\'t iterate over /web')


def test_control_parse_errors():
    assert err("{{end}}") == "template: :1: unexpected {{end}}"
    assert err("{{else}}") == "template: :1: unexpected {{else}}"
    assert err("{{if .Zero}}x") == "template: :1: unexpected EOF"
    assert err("{{range .Args}}\n{{.}}\n") == "template: :3: unexpected EOF"
    assert err("{{if}}{{end}}") == "template: :1: missing value for if"
    assert err("{{if 1}}a{{else}}b{{else}}c{{end}}") == "template: :1: expected end; found {{else}}"
    assert err("{{break}}") == "template: :1: {{break}} outside {{range}}"
    assert err("{{$a, $b := .Args}}") == "template: :1: too many declarations in command"
    assert err("{{range $a, $b, $c := .Args}}{{end}}") == "template: :1: too many declarations in range"
    assert err('{{template "x"}}') == "template: :1: {{template}} is not supported"


def test_unclosed_action():
    assert err("{{.Name") == "template: :1: unclosed action"
    assert err("{{.Name\n") == "template: :2: unclosed action started at :1"


# ------------------------------------------------------------ builtin functions

def test_unknown_function_is_a_parse_error():
    assert err("{{foo}}") == 'template: :1: function "foo" not defined'
    assert err("{{.Name | foo}}") == 'template: :1: function "foo" not defined'
    with pytest.raises(TemplateError):
        parse("x\n{{if .A}}{{bar .B}}{{end}}")
    assert err("ok\n{{bar}}") == 'template: :2: function "bar" not defined'


def test_and_or_not_short_circuit():
    def boom():
        raise AssertionError("should not be evaluated")

    data = {"Boom": boom, "T": True, "F": False}
    assert r("{{and 1 0 2}}|{{and 1 2}}|{{or 0 \"\" \"x\"}}|{{or 0 \"\"}}", data) == "0|2|x|"
    assert r("{{and .F .Boom}}|{{or .T .Boom}}", data) == "false|true"
    assert r("{{if and .T (not .F)}}yes{{end}}", data) == "yes"
    assert r("{{not .Missing}} {{not 1}}", data) == "true false"
    assert r("{{.T | and 1}}", data) == "true"


def test_len():
    assert r("{{len .Args}} {{len .Config.Labels}} {{len .Name}} {{len \"héllo\"}}") == "2 2 4 6"
    assert err("{{len .Zero}}") == (
        'template: :1:2: executing "" at <len .Zero>: error calling len: len of type int')
    assert "len of nil pointer" in err("{{len .Config.Healthcheck}}")


def test_index():
    assert r("{{index .RepoTags 1}}") == "nginx:1.25"
    assert r('{{index .Config.Labels "com.example.a"}}') == "1"
    assert r('{{index .Config.Labels "missing"}}') == ""  # map[string]string zero value
    assert r('{{index . "Config" "Labels" "com.example.b"}}') == "2"
    assert r('{{index .Mounts 0 "Source"}}') == "/srv/a"
    assert r("{{index .Name 1}}") == "119"  # a byte, like Go
    assert err("{{index .RepoTags 5}}") == (
        'template: :1:2: executing "" at <index .RepoTags 5>: '
        "error calling index: index out of range: 5")
    assert "index out of range: -1" in err("{{index .RepoTags -1}}")
    assert "cannot index slice/array with type string" in err('{{index .RepoTags "a"}}')
    assert "index of untyped nil" in err("{{index .Nope 0}}")
    assert "can't index item of type int" in err("{{index .Zero 0}}")


def test_slice():
    assert r("{{slice .RootFS.Layers 1}}") == "[sha256:bb sha256:cc]"
    assert r("{{slice .RootFS.Layers 0 1}}") == "[sha256:aa]"
    assert r("{{slice .Name 1 3}}") == "we"
    assert r("{{slice .Name}}") == "/web"
    assert "invalid slice index: 2 > 1" in err("{{slice .Args 2 1}}")
    assert "index out of range: 9" in err("{{slice .Args 9}}")


@pytest.mark.parametrize("text, want", [
    ('{{eq .State.Status "running"}}', "true"),
    ('{{eq .State.Status "exited" "running"}}', "true"),
    ('{{eq .State.Status "exited" "dead"}}', "false"),
    ("{{eq .State.Pid 4242}}", "true"),
    ("{{eq 1 1.0}}", "true"),
    ("{{eq .Nope nil}} {{eq .Nope \"x\"}} {{eq .Config.Healthcheck nil}}", "true false true"),
    ("{{ne .Zero 1}} {{ne \"a\" \"a\"}}", "true false"),
    ("{{lt 1 2}} {{lt 2 1}} {{lt \"a\" \"b\"}} {{lt 1.5 2.5}}", "true false true true"),
    ("{{le 2 2}} {{le 3 2}} {{gt 3 2}} {{gt 2 2}} {{ge 2 2}} {{ge 1 2}}", "true false true false true false"),
    ("{{if gt (len .Args) 1}}many{{end}}", "many"),
])
def test_comparisons(text, want):
    assert r(text) == want


def test_comparison_errors():
    assert err('{{lt 1 "a"}}') == (
        'template: :1:2: executing "" at <lt 1 "a">: error calling lt: incompatible types for comparison')
    assert err('{{eq 1 "a"}}').endswith("error calling eq: incompatible types for comparison")
    assert err("{{lt true false}}").endswith("error calling lt: invalid type for comparison")
    assert err("{{eq 1}}").endswith("error calling eq: missing argument for comparison")
    assert err("{{ne 1 2 3}}") == (
        'template: :1:2: executing "" at <ne>: wrong number of args for ne: want 2 got 3')
    assert err("{{printf}}").endswith("wrong number of args for printf: want at least 1 got 0")


def test_print_and_println():
    assert r('{{print 1 2 "a" "b" 3}}') == "1 2ab3"
    assert r("{{print .Args .Zero nil}}") == "[-g daemon off;] 0 <nil>"
    assert r('{{println 1 "a" .Ratio}}') == "1 a 0.5\n"
    assert r("{{print}}") == ""


@pytest.mark.parametrize("fmt, args, want", [
    ("%s|%10s|%-10s|%.2s", '"abc" "abc" "abc" "abc"', "abc|       abc|abc       |ab"),
    ("%5s|", '"héllo"', "héllo|"),
    ("%q %+q %#q", '"a\\"b\\n" "é" "raw"', '"a\\"b\\n" "\\u00e9" `raw`'),
    ("%x %X % x", '"hi" "hi" "hi"', "6869 6869 68 69"),
    ("%d|%5d|%-5d|%05d|%+d|% d", "42 42 42 42 42 42", "42|   42|42   |00042|+42| 42"),
    ("%x %X %#x %o %#o %O %b", "255 255 255 8 8 8 5", "ff FF 0xff 10 010 0o10 101"),
    ("%c %q %U", "65 65 233", "A 'A' U+00E9"),
    ("%.3d|%.0d", "7 0", "007|"),
    ("%f|%.2f|%8.3f|%-8.2f|%08.3f|%+.1f", "3.14159 3.14159 3.14159 3.14159 -3.14159 2.0",
     "3.141590|3.14|   3.142|3.14    |-003.142|+2.0"),
    ("%e|%E|%.2e|%g|%G|%.3g", "1234.5678 1234.5678 1234.5678 1234.5678 1e21 1234.5678",
     "1.234568e+03|1.234568E+03|1.23e+03|1234.5678|1E+21|1.23e+03"),
    ("%v %v %v %v %v", "0.5 1e6 1234567.0 123456.0 0.00001", "0.5 1e+06 1.234567e+06 123456 1e-05"),
    ("%t %v", "true false", "true false"),
    ("%v|%s|%d", ".Args .Args .RootFS.Layers", "[-g daemon off;]|[-g daemon off;]|"
     "[%!d(string=sha256:aa) %!d(string=sha256:bb) %!d(string=sha256:cc)]"),
    ("%v", ".Config.Labels", "map[com.example.a:1 com.example.b:2]"),
    ("%T %T %T %T %T %T", '1 "s" 1.5 true .Args nil', "int string float64 bool []interface {} <nil>"),
    ("%#v %#v", '"s" 1', '"s" 1'),
    ("%*d|%-*d|", "4 7 4 7", "   7|7   |"),
    ("100%%", "", "100%"),
    ("%d %s", '"x" 1.5', "%!d(string=x) %!s(float64=1.5)"),
    ("%d %d", "1", "1 %!d(MISSING)"),
    ("%d", "1 2 \"x\"", "1%!(EXTRA int=2, string=x)"),
    ("%s", "nil", "%!s(<nil>)"),
    ("%", "", "%!(NOVERB)"),
])
def test_printf(fmt, args, want):
    assert r('{{printf "%s" %s}}' % (fmt.replace('"', '\\"'), args) if args else
             '{{printf "%s"}}' % fmt) == want


def test_html_js_urlquery_call():
    assert r("{{html \"<a href='x'>&\\\"</a>\"}}") == "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
    assert r("{{js \"it's <b> & =\"}}") == "it\\'s \\u003Cb\\u003E \\u0026 \\u003D"
    assert r('{{urlquery "a b&c/d?é"}}') == "a+b%26c%2Fd%3F%C3%A9"
    assert r('{{call (index . "F") "x"}}', {"F": lambda s: s * 2}) == "xx"
    assert "non-function of type string" in err('{{call "x"}}')


# ------------------------------------------------------------ docker functions

def test_json():
    assert r("{{json .Args}}") == '["-g","daemon off;"]'
    assert r("{{json .Config.Labels}}") == '{"com.example.b":"2","com.example.a":"1"}'  # given order
    assert r("{{json .Config.Healthcheck}} {{json .Empty}} {{json .NoMap}}") == "null [] {}"
    assert r("{{json .Name}} {{json .State.Pid}} {{json .Ratio}} {{json .Big}}") == (
        '"/web" 4242 0.5 1000000')
    assert r("{{json 1e21}} {{json 1e-7}} {{json 0.000001}} {{json -2.5}} {{json 100.0}}") == (
        "1e+21 1e-7 0.000001 -2.5 100")
    assert r("{{json .}}", {"s": 'q"\\\n\t\x01é\u2028'}) == '{"s":"q\\"\\\\\\n\\t\\u0001é\\u2028"}'
    assert r("{{json .}}", [True, False, None, [1, {"a": []}]]) == '[true,false,null,[1,{"a":[]}]]'
    # docker/cli's json function uses an Encoder with SetEscapeHTML(false)
    assert r("{{json .Config.Cmd}}") == '["sh","-c","a && b > c"]'
    assert r('{{json "<b>"}}') == '"<b>"'
    assert r("{{json .}}", {"id": "x", "Label": lambda k: k}) == '{"id":"x"}'  # methods skipped


def test_join_split():
    assert r('{{join .RepoTags ", "}}') == "nginx:latest, nginx:1.25"
    assert r('{{join .Empty ","}}') == ""
    assert r('{{split "a:b:c" ":"}}') == "[a b c]"
    assert r('{{index (split .Config.Image ":") 0}}') == "nginx"
    assert r('{{range split "x,y" ","}}<{{.}}>{{end}}') == "<x><y>"
    assert r('{{len (split "" ",")}} {{split "ab" ""}}') == "1 [a b]"
    assert r('{{join (split "a b" " ") "-"}}') == "a-b"
    assert err('{{join .Name ","}}') == (
        'template: :1:7: executing "" at <.Name>: wrong type for value; expected []string; got string')


def test_case_functions():
    assert r('{{title "hello world-foo_bar x.y"}}') == "Hello World-Foo_bar X.Y"
    assert r('{{lower "MiXeD"}} {{upper "MiXeD"}}') == "mixed MIXED"
    assert r('{{upper "straße"}}') == "STRAßE"  # rune-wise, like Go
    assert r("{{.State.Status | title}}") == "Running"
    assert err("{{upper .Zero}}") == (
        'template: :1:8: executing "" at <.Zero>: wrong type for value; expected string; got int')
    assert err("{{upper .Nope}}").endswith("invalid value; expected string")


def test_pad_and_truncate():
    assert r('[{{pad "x" 2 3}}]') == "[  x   ]"
    assert r('[{{pad "" 2 3}}]') == "[]"
    assert r('{{truncate "abcdef" 3}}|{{truncate "ab" 3}}|{{truncate "abc" 3}}') == "abc|ab|abc"
    assert r("{{truncate .Id 6}}") == "4c01db"
    assert r('{{.Id | printf "%.4s"}}') == "4c01"
    assert "negative Repeat count" in err('{{pad "x" -1 0}}')
    assert err('{{truncate "x" "y"}}').endswith("wrong type for value; expected int; got string")


# ------------------------------------------------------------ value printing

@pytest.mark.parametrize("value, want", [
    ("s", "s"), (7, "7"), (-3, "-3"), (10**20, "100000000000000000000"), (True, "true"),
    (False, "false"), (None, "<nil>"), (0.5, "0.5"), (1.0, "1"), (1e6, "1e+06"),
    (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (-2.25, "-2.25"), (1.5e300, "1.5e+300"), (float("inf"), "+Inf"), (float("nan"), "NaN"),
    ([], "[]"), (["a", "b"], "[a b]"), ([1, [2, 3]], "[1 [2 3]]"), ({}, "map[]"),
    ({"b": 1, "a": [True]}, "map[a:[true] b:1]"), ({"k": {"z": None}}, "map[k:map[z:<nil>]]"),
])
def test_printed_values(value, want):
    assert r("{{.V}}", {"V": value}) == want


# ------------------------------------------------------------ callables (Go methods)

def test_callable_values_are_methods():
    calls = []

    def label(key):
        calls.append(key)
        return {"com.example.x": "yes"}.get(key, "")

    row = {"ID": lambda: "abc123", "Label": label, "Names": lambda: "web", "Size": lambda: {"Virtual": 5}}
    assert r('{{.ID}} {{.Label "com.example.x"}}|{{.Label "nope"}}', row) == "abc123 yes|"
    assert r('{{"com.example.x" | .Label}}', row) == "yes"
    assert r("{{.Size.Virtual}}", row) == "5"  # non-final methods are called without args
    assert r("{{.}}", row) == "map[]"  # methods are not printed as map entries
    assert calls == ["com.example.x", "nope", "com.example.x"]
    assert err("{{.Label}}", row) == (
        'template: :1:2: executing "" at <.Label>: wrong number of args for Label: want 1 got 0')
    assert err('{{.ID "x"}}', row).endswith("wrong number of args for ID: want 0 got 1")


def test_callable_errors_are_reported():
    def boom():
        raise RuntimeError("kaboom")

    assert err("{{.Boom}}", {"Boom": boom}) == (
        'template: :1:2: executing "" at <.Boom>: error calling Boom: kaboom')


def test_objects_with_attributes_and_methods():
    class Ctx:
        def __init__(self):
            self.ID = "c0ffee"
            self._secret = 1

        def Label(self, name):
            return "L=" + name

        def Names(self):
            return "web"

    assert r('{{.ID}} {{.Names}} {{.Label "a"}}', Ctx()) == "c0ffee web L=a"
    assert err("{{._secret}}", Ctx()).endswith("can't evaluate field _secret in type Ctx")
    assert err("{{.Nope}}", Ctx()).endswith("can't evaluate field Nope in type Ctx")


# ------------------------------------------------------------ API surface

def test_parse_once_execute_many():
    tpl = parse("{{.Name}}:{{.State.Pid}}")
    assert isinstance(tpl, Template)
    assert tpl.execute(INSPECT) == "/web:4242"
    assert tpl.execute({"Name": "x", "State": {"Pid": 1}}) == "x:1"


def test_template_error_is_a_dockyard_invalid_argument():
    with pytest.raises(InvalidArgument):
        parse("{{nope}}")
    with pytest.raises(TemplateError) as ei:
        render("{{index .RepoTags 9}}", INSPECT)
    assert "\n" not in str(ei.value)


def test_header_mode_uses_docker_header_functions():
    headers = {"ID": "CONTAINER ID", "Names": "NAMES", "Labels": "LABELS", "Size": "SIZE"}
    tpl = '{{truncate .ID 3}}\t{{join .Names ","}}\t{{json .Labels}}\t{{.Size | lower}}\t{{pad .Size 1 1}}'
    assert render(tpl, headers, header=True) == "CONTAINER ID\tNAMES\tLABELS\tSIZE\t SIZE "
    row = {"ID": "abcdef", "Names": ["a", "b"], "Labels": {"x": "1"}, "Size": "2MB"}
    assert render(tpl, row) == 'abc\ta,b\t{"x":"1"}\t2mb\t 2MB '


# ------------------------------------------------------------ tabwriter

def test_tabwrite_docker_ps_empty_header():
    header = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n"
    assert tabwrite(header) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n")


def test_tabwrite_docker_images_empty_header():
    assert tabwrite("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n") == (
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n")


def test_tabwrite_docker_ps_rows():
    text = ("CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n"
            "4c01db0b339c\tubuntu:12.04\t\"bash\"\t17 seconds ago\tUp 16 seconds\t3300-3310/tcp\twebapp\n"
            "d7886598dbe2\tcrosbymichael/redis:latest\t\"/redis-server --dir\"\t33 minutes ago\t"
            "Up 33 minutes\t6379/tcp\tredis,webapp/db\n")
    assert tabwrite(text) == (
        "CONTAINER ID   IMAGE                        COMMAND                 CREATED          "
        "STATUS          PORTS           NAMES\n"
        "4c01db0b339c   ubuntu:12.04                 \"bash\"                  17 seconds ago   "
        "Up 16 seconds   3300-3310/tcp   webapp\n"
        "d7886598dbe2   crosbymichael/redis:latest   \"/redis-server --dir\"   33 minutes ago   "
        "Up 33 minutes   6379/tcp        redis,webapp/db\n")


def test_tabwrite_column_blocks_and_last_cell():
    # column 0 is one block over lines 1-2 (line 3 has no tab-terminated cell), and line 4
    # starts a new block; the last cell of every line is never padded
    text = "a\tb\tc\nlonger cell\tx\nz\n\tq\ttail"
    assert tabwrite(text) == (
        "a             b         c\n"
        "longer cell   x\n"
        "z\n"
        "          q         tail")


def test_tabwrite_edge_cases_and_parameters():
    assert tabwrite("") == ""
    assert tabwrite("no tabs\n") == "no tabs\n"
    assert tabwrite("a\tb") == "a         b"  # no trailing newline is added
    assert tabwrite("é\tx\n") == "é         x\n"  # widths count runes
    assert tabwrite("a\t\tb\n") == "a                   b\n"  # empty cells are padded too
    assert tabwrite("ab\tc\nabcdef\td\n", minwidth=0, padding=1) == "ab     c\nabcdef d\n"
    assert tabwrite("PID\tCMD\n1\tsh\n", minwidth=20) == "PID                 CMD\n1                   sh\n"


def test_table_format_end_to_end():
    rows = [{"ID": "4c01db0b339c", "Image": "nginx"}, {"ID": "d7886598dbe2", "Image": "redis:7"}]
    body = "{{.ID}}\t{{.Image}}"
    lines = [render(body, {"ID": "CONTAINER ID", "Image": "IMAGE"}, header=True)]
    lines += [render(body, row) for row in rows]
    assert tabwrite("\n".join(lines) + "\n") == (
        "CONTAINER ID   IMAGE\n4c01db0b339c   nginx\nd7886598dbe2   redis:7\n")
