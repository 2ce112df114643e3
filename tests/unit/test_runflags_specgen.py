"""`run` flags -> Docker Config/HostConfig, and Config/HostConfig -> OCI spec (no kernel)."""

from __future__ import annotations

import os

import pytest

from dockyard import _util
from dockyard.cli import runflags
from dockyard.engine import configs, lifecycle, specgen
from dockyard.engine.records import Container, new_state
from dockyard.errors import InvalidArgument, Unsupported
from dockyard.kernel import caps


def parse(*argv: str):
    ns = runflags.parser("run").parse_args(list(argv))
    return runflags.to_docker(ns)


def test_command_after_image_is_not_parsed_as_flags():
    config, _ = parse("-d", "busybox", "ls", "-la", "--color")
    assert config["Cmd"] == ["ls", "-la", "--color"]


def test_resource_flags_map_to_hostconfig():
    _, hc = parse("-m", "64m", "--cpus", "1.5", "--pids-limit", "20", "--cpu-shares", "512", "busybox")
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["PidsLimit"] == 20
    assert hc["CpuShares"] == 512


@pytest.mark.parametrize("argv,msg", [
    (("--kernel-memory", "10m", "busybox"), "kernel-memory"),
    (("-m", "abc", "busybox"), "invalid size"),
    (("--cpus", "x", "busybox"), "--cpus"),
    (("--memory-swap", "1g", "busybox"), "Memory limit"),
    (("--cpu-period", "10", "busybox"), "CPU cfs period"),
    (("--ulimit", "nofile=10:5", "busybox"), "soft limit"),
    (("--log-opt", "bogus=1", "busybox"), "unknown log opt"),
])
def test_bad_values_are_clear_errors(argv, msg):
    with pytest.raises(InvalidArgument, match=msg):
        parse(*argv)


def test_publish_and_network_flags_become_docker_documents():
    config, hc = parse("-p", "127.0.0.1:8088:1234", "-p", "9000-9001:90-91/udp", "--expose", "7000",
                       "--mac-address", "02:42:0a:00:00:09", "busybox")
    assert hc["PortBindings"] == {"1234/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8088"}],
                                  "90/udp": [{"HostIp": "", "HostPort": "9000"}],
                                  "91/udp": [{"HostIp": "", "HostPort": "9001"}]}
    assert set(config["ExposedPorts"]) == {"1234/tcp", "90/udp", "91/udp", "7000/tcp"}
    assert config["MacAddress"] == "02:42:0a:00:00:09"


@pytest.mark.parametrize("spec", ["80:90:100:1", "x:80", "8000-8002:80-81", "80/sctpx", "0:80", "[::1]:80:80"])
def test_bad_publish_specs_are_refused(spec):
    with pytest.raises(InvalidArgument):
        parse("-p", spec, "busybox")


def test_merge_keeps_image_env_and_lets_user_override():
    img = {"config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/w", "Labels": {"x": "1"}}}
    out = configs.merge_image_config({"Env": ["A=2", "B=3"], "Cmd": None, "Labels": {"y": "2"}}, img)
    assert out["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert out["Cmd"] == ["sh"] and out["WorkingDir"] == "/w"
    assert out["Labels"] == {"x": "1", "y": "2"}


def test_entrypoint_flag_resets_image_cmd():
    img = {"config": {"Entrypoint": ["/init"], "Cmd": ["serve"]}}
    out = configs.merge_image_config({"Entrypoint": ["sh"], "Cmd": None}, img)
    assert out["Entrypoint"] == ["sh"] and out["Cmd"] is None


def _container(config=None, hc=None) -> Container:
    cid = _util.new_id()
    cfg = {"Image": "busybox", "Cmd": ["true"], "Env": [], "Hostname": cid[:12]}
    cfg.update(config or {})
    return Container({"ID": cid, "Config": cfg, "State": new_state(), "Name": "/t"}, hc or {})


def _rootfs(tmp_path) -> str:
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/home:/bin/false\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\nwheel:x:10:nobody\n")
    return str(tmp_path)


def test_spec_has_docker_defaults(tmp_path):
    spec = specgen.build_spec(_container(), _rootfs(tmp_path), lambda ref: 1)
    assert spec["process"]["capabilities"]["bounding"] == [c for c in caps.CAPS if c in caps.DEFAULT_CAPS
                                                           and c in caps.host_caps()]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert {n["type"] for n in spec["linux"]["namespaces"]} >= {"pid", "mount", "ipc", "uts", "network"}
    assert spec["linux"]["cgroupsPath"].startswith("/dockyard/")
    assert any(e.startswith("PATH=") for e in spec["process"]["env"])


def test_privileged_lifts_masks_and_grants_host_caps(tmp_path):
    spec = specgen.build_spec(_container(hc={"Privileged": True}), _rootfs(tmp_path), lambda ref: 1)
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert spec["process"]["capabilities"]["bounding"] == caps.host_caps()


def test_cap_add_drop(tmp_path):
    spec = specgen.build_spec(_container(hc={"CapAdd": ["net_admin"], "CapDrop": ["CHOWN"]}),
                              _rootfs(tmp_path), lambda ref: 1)
    b = spec["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in b and "CAP_CHOWN" not in b
    with pytest.raises(InvalidArgument, match="unknown capability"):
        specgen.build_spec(_container(hc={"CapAdd": ["BOGUS"]}), _rootfs(tmp_path), lambda ref: 1)


def test_user_resolution(tmp_path):
    root = _rootfs(tmp_path)
    assert specgen.resolve_user(root, "nobody")[:3] == (65534, 65534, [10])
    assert specgen.resolve_user(root, "1000:1000")[:2] == (1000, 1000)
    assert specgen.resolve_user(root, "nobody:root")[:2] == (65534, 0)
    with pytest.raises(InvalidArgument, match="unable to find user"):
        specgen.resolve_user(root, "ghost")


def test_resources_in_spec(tmp_path):
    hc = {"Memory": 64 << 20, "NanoCpus": 500_000_000, "PidsLimit": 30, "CpusetCpus": "0"}
    r = specgen.build_spec(_container(hc=hc), _rootfs(tmp_path), lambda ref: 1)["linux"]["resources"]
    assert r["memory"]["limit"] == 64 << 20
    assert r["cpu"]["quota"] == 50000 and r["cpu"]["period"] == 100000
    assert r["pids"]["limit"] == 30 and r["cpu"]["cpus"] == "0"


def test_atomic_write_and_sizes(tmp_path):
    p = tmp_path / "a" / "b.json"
    _util.write_json(p, {"x": 1})
    assert _util.read_json(p) == {"x": 1}
    assert [f for f in os.listdir(p.parent) if f.endswith(".tmp")] == []
    assert _util.parse_bytes("64m") == 64 * 1024 * 1024
    assert _util.human_size(2140160) == "2.14MB"
    assert _util.human_duration(5) == "5 seconds"
    ts = _util.now_rfc3339()
    assert abs(_util.parse_rfc3339(ts) - __import__("time").time()) < 5
