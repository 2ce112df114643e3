"""Dockerfile change instructions for import -c / commit -c (dockyard.images.changes)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images.changes import apply_changes, parse_duration
from dockyard.images.config import container_config, host_architecture


def test_cmd_exec_and_shell_forms() -> None:
    assert apply_changes({}, ['CMD ["echo", "hi"]']) == {"Cmd": ["echo", "hi"]}
    assert apply_changes({}, ["CMD echo hi && ls"]) == {"Cmd": ["/bin/sh", "-c", "echo hi && ls"]}
    assert apply_changes({}, ["cmd echo"]) == {"Cmd": ["/bin/sh", "-c", "echo"]}
    # not valid JSON: shell form, as Docker does
    assert apply_changes({}, ["CMD [echo]"]) == {"Cmd": ["/bin/sh", "-c", "[echo]"]}


def test_entrypoint_resets_cmd_unless_set_in_same_changes() -> None:
    base = {"Cmd": ["sh"]}
    assert apply_changes(base, ['ENTRYPOINT ["/init"]']) == {"Cmd": None, "Entrypoint": ["/init"]}
    out = apply_changes(base, ['CMD ["a"]', "ENTRYPOINT /run.sh"])
    assert out == {"Cmd": ["a"], "Entrypoint": ["/bin/sh", "-c", "/run.sh"]}
    assert base == {"Cmd": ["sh"]}  # input untouched


def test_shell_form_uses_config_shell() -> None:
    out = apply_changes({"Shell": ["/bin/bash", "-o", "pipefail", "-c"]}, ["CMD x | y"])
    assert out["Cmd"] == ["/bin/bash", "-o", "pipefail", "-c", "x | y"]


def test_env_forms_and_replacement() -> None:
    out = apply_changes(
        {"Env": ["PATH=/bin", "A=1"]},
        ['ENV B=$A C="a b" A=2', "ENV D hello  world $B", r"ENV E=\$X F='$A'", "ENV PATH=/x:$PATH"],
    )
    assert out["Env"] == ["PATH=/x:/bin", "A=2", "B=1", "C=a b", "D=hello  world 1", "E=$X", "F=$A"]


def test_env_errors() -> None:
    with pytest.raises(InvalidArgument, match="ENV must have two arguments"):
        apply_changes({}, ["ENV ONLYKEY"])
    with pytest.raises(InvalidArgument, match="can't find = in"):
        apply_changes({}, ["ENV A=1 B"])
    with pytest.raises(InvalidArgument, match="matching double-quote"):
        apply_changes({}, ['ENV A="x'])


def test_expansion_modifiers() -> None:
    out = apply_changes({"Env": ["SET=v", "EMPTY="]}, [
        "ENV A=${SET:-d} B=${UNSET:-d} C=${EMPTY:-d} D=${EMPTY-d} E=${SET:+alt} F=${UNSET:+alt}"
    ])
    assert out["Env"][2:] == ["A=v", "B=d", "C=d", "D=", "E=alt", "F="]


def test_label_expose_volume() -> None:
    out = apply_changes({"Labels": {"keep": "1"}}, [
        'LABEL a=b "c d"=e',
        "LABEL legacy some value",
        "EXPOSE 80 53/udp 8000-8001",
        'VOLUME ["/data", "/logs"]',
        "VOLUME /a /b",
    ])
    assert out["Labels"] == {"keep": "1", "a": "b", "c d": "e", "legacy": "some value"}
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert out["Volumes"] == {"/data": {}, "/logs": {}, "/a": {}, "/b": {}}


def test_expose_invalid() -> None:
    with pytest.raises(InvalidArgument, match="Invalid containerPort: abc"):
        apply_changes({}, ["EXPOSE abc"])
    with pytest.raises(InvalidArgument, match="Invalid proto: foo"):
        apply_changes({}, ["EXPOSE 80/foo"])


def test_user_workdir_stopsignal_onbuild() -> None:
    out = apply_changes({"Env": ["U=app"]}, [
        "USER $U:staff",
        "WORKDIR /srv",
        "WORKDIR sub/../app",
        "STOPSIGNAL SIGINT",
        "ONBUILD RUN make",
    ])
    assert out["User"] == "app:staff"
    assert out["WorkingDir"] == "/srv/app"
    assert out["StopSignal"] == "SIGINT"
    assert out["OnBuild"] == ["RUN make"]
    assert apply_changes({}, ["WORKDIR rel"])["WorkingDir"] == "/rel"
    assert apply_changes({}, ["STOPSIGNAL 9"])["StopSignal"] == "9"
    with pytest.raises(InvalidArgument, match="Invalid signal: SIGNOPE"):
        apply_changes({}, ["STOPSIGNAL SIGNOPE"])
    with pytest.raises(InvalidArgument, match="isn't allowed as an ONBUILD trigger"):
        apply_changes({}, ["ONBUILD FROM x"])
    with pytest.raises(InvalidArgument, match="ONBUILD ONBUILD"):
        apply_changes({}, ["ONBUILD ONBUILD RUN x"])


def test_healthcheck() -> None:
    out = apply_changes({}, ["HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD curl -f http://x/"])
    assert out["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://x/"],
        "Interval": 5_000_000_000,
        "Timeout": 90_000_000_000,
        "Retries": 3,
    }
    assert apply_changes({}, ['HEALTHCHECK CMD ["true"]'])["Healthcheck"] == {"Test": ["CMD", "true"]}
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(InvalidArgument, match='Unknown type "RUN" in HEALTHCHECK'):
        apply_changes({}, ["HEALTHCHECK RUN x"])
    assert parse_duration("1h2m3.5s") == 3_723_500_000_000
    assert parse_duration("250ms") == 250_000_000


@pytest.mark.parametrize("line, cmd", [("FOO bar", "foo"), ("RUN echo", "run"), ("FROM x", "from"),
                                        ("COPY a b", "copy")])
def test_invalid_change_commands(line: str, cmd: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        apply_changes({}, [line])
    assert str(exc.value) == f"{cmd} is not a valid change command"


def test_blank_and_comment_lines_are_ignored() -> None:
    assert apply_changes({"User": "x"}, ["", "  ", "# a comment"]) == {"User": "x"}


def test_container_config_shape() -> None:
    cfg: dict[str, Any] = container_config({"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}})
    assert list(cfg) == [
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
        "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes",
        "WorkingDir", "Entrypoint", "OnBuild", "Labels",
    ]
    assert cfg["Env"] is None and cfg["Labels"] is None and cfg["Image"] == ""
    assert host_architecture() in ("amd64", "arm64") or host_architecture()
