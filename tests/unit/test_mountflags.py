"""-v / --mount / --tmpfs / --volumes-from -> HostConfig, the engine's mount parsing, and the
OCI mounts made from MountPoints (no kernel, no root)."""

from __future__ import annotations

import pytest

from dockyard.cli import mountflags, runflags
from dockyard.engine import mounts, mountspec
from dockyard.engine.records import Container, new_state
from dockyard.errors import InvalidArgument


def parse(*argv: str):
    ns = runflags.parser("run").parse_args([*argv, "busybox"])
    return runflags.to_docker(ns)


def test_no_mount_flags_leave_hostconfig_as_before():
    config, hc = parse()
    assert hc["Binds"] is None and "Mounts" not in hc and "Tmpfs" not in hc
    assert config["Volumes"] is None and hc["VolumesFrom"] is None


def test_volume_flags_split_into_binds_and_anonymous_volumes(tmp_path):
    config, hc = parse("-v", "named:/data:ro", "-v", f"{tmp_path}:/host", "-v", "/anon", "-v", "/x:/y:rw,z")
    assert hc["Binds"] == ["named:/data:ro", f"{tmp_path}:/host", "/x:/y:rw,z"]
    assert config["Volumes"] == {"/anon": {}}


def test_relative_dot_host_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, hc = parse("-v", "./sub:/s")
    assert hc["Binds"] == [f"{tmp_path}/sub:/s"]


def test_mount_tmpfs_and_volumes_from(tmp_path):
    _, hc = parse("--mount", "type=volume,src=v,dst=/d,readonly,volume-nocopy,volume-opt=type=tmpfs,volume-label=a=b",
                  "--mount", f"type=bind,source={tmp_path},target=/b,bind-propagation=rshared",
                  "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
                  "--tmpfs", "/run:size=64k,exec", "--tmpfs", "/cache", "--volumes-from", "other:ro")
    assert hc["Mounts"] == [
        {"Type": "volume", "Source": "v", "Target": "/d", "ReadOnly": True,
         "VolumeOptions": {"NoCopy": True, "DriverConfig": {"Options": {"type": "tmpfs"}, "Name": "local"},
                           "Labels": {"a": "b"}}},
        {"Type": "bind", "Source": str(tmp_path), "Target": "/b", "BindOptions": {"Propagation": "rshared"}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}},
    ]
    assert hc["Tmpfs"] == {"/run": "size=64k,exec", "/cache": ""}
    assert hc["VolumesFrom"] == ["other:ro"]


@pytest.mark.parametrize("flag,message", [
    ("type=bind,src=/nonexistent-dy,dst=/x",
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-dy'),
    ("src=v,dst=/x", 'invalid argument "src=v,dst=/x" for "--mount" flag: type is required'),
    ("type=volume,src=v", 'invalid argument "type=volume,src=v" for "--mount" flag: target is required'),
    ("type=volume,dst=/x,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
    ("type=volume,dst=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=bind,src=/tmp,dst=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=volume,dst=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=fancy,dst=/x", 'invalid mount config for type "fancy": mount type unknown'),
    ("type=tmpfs,src=foo,dst=/x", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=volume,dst=rel", "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"),
    ("type=volume,dst=/", "invalid specification: destination can't be '/'"),
])
def test_mount_errors_use_dockers_wording(flag, message):
    with pytest.raises(InvalidArgument) as e:
        parse("--mount", flag)
    assert message in str(e.value)


@pytest.mark.parametrize("flag,message", [
    ("/data:ro", "invalid volume specification: '/data:ro'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("v:/data:bogus", "invalid mode: bogus"),
    ("v:/data:ro,rw", "invalid mode: ro,rw"),
    ("/h:/data:nocopy", 'invalid mount config for type "bind": field VolumeOptions must not be specified'),
    ("v:data", "invalid mount config for type \"volume\": invalid mount path: 'data' mount path must be absolute"),
])
def test_volume_errors_use_dockers_wording(flag, message):
    with pytest.raises(InvalidArgument) as e:
        parse("-v", flag)
    assert str(e.value) == message


def test_parse_bind_fields():
    s = mountspec.parse_bind("/h//x/:/c/d/:ro,rslave")
    assert (s.type, s.source, s.target, s.read_only, s.propagation, s.mode) == \
        ("bind", "/h/x", "/c/d", True, "rslave", "ro,rslave")
    v = mountspec.parse_bind("vol:/d:nocopy")
    assert (v.type, v.source, v.nocopy, v.read_only) == ("volume", "vol", True, False)
    assert v.to_api() == {"Type": "volume", "Source": "vol", "Target": "/d", "VolumeOptions": {"NoCopy": True}}
    a = mountspec.parse_bind("/anon")
    assert (a.type, a.source, a.target) == ("volume", "", "/anon")


def test_tmpfs_path_must_be_absolute():
    with pytest.raises(InvalidArgument):
        parse("--tmpfs", "relative")


def test_volume_name_must_be_valid():
    from dockyard.volumes.store import validate_name

    with pytest.raises(InvalidArgument) as e:
        validate_name("bad/name")
    assert 'includes invalid characters for a local volume name' in str(e.value)


def _container(mount_points, tmpfs=None) -> Container:
    doc = {"ID": "c" * 64, "Name": "/x", "Config": {}, "State": new_state(), "MountPoints": mount_points}
    return Container(doc, {"Tmpfs": tmpfs} if tmpfs else {})


def test_oci_mounts_sorted_with_options_and_propagation():
    c = _container({
        "/a/b": {"Type": "volume", "Source": "/v/_data", "RW": False, "Name": "v", "Propagation": ""},
        "/a": {"Type": "bind", "Source": "/h", "RW": True, "Propagation": "rshared"},
        "/t": {"Type": "tmpfs", "Source": "", "RW": True,
               "Spec": {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o700}}},
    }, tmpfs={"/run": "size=1m,exec"})
    got, prop = mounts.oci_mounts(c)
    assert [m["destination"] for m in got] == ["/a", "/run", "/t", "/a/b"]
    assert got[0] == {"destination": "/a", "type": "bind", "source": "/h", "options": ["rbind", "rshared"]}
    assert got[1]["options"] == ["nosuid", "nodev", "noexec", "size=1m", "exec"]
    assert got[2]["options"] == ["nosuid", "nodev", "noexec", "size=1024", "mode=700"]
    assert got[3]["options"] == ["rbind", "ro", "rprivate"]
    assert prop == "rslave"
    assert mounts.oci_mounts(_container({"/a": {"Type": "bind", "Source": "/h", "RW": True}}))[1] == "rprivate"


def test_inspect_mounts_shape():
    c = _container({
        "/d": {"Type": "volume", "Source": "/r/volumes/v/_data", "RW": True, "Name": "v", "Driver": "local",
               "Relabel": "z", "Propagation": ""},
        "/b": {"Type": "bind", "Source": "/h", "RW": False, "Name": "", "Driver": "", "Relabel": "ro",
               "Propagation": "rprivate"},
    })
    assert mounts.inspect_mounts(c) == [
        {"Type": "bind", "Source": "/h", "Destination": "/b", "Mode": "ro", "RW": False, "Propagation": "rprivate"},
        {"Type": "volume", "Name": "v", "Source": "/r/volumes/v/_data", "Destination": "/d", "Driver": "local",
         "Mode": "z", "RW": True, "Propagation": ""},
    ]


def test_mountflags_module_is_not_loaded_without_mount_flags():
    import sys

    sys.modules.pop("dockyard.cli.mountflags", None)
    parse("-e", "A=1")
    assert "dockyard.cli.mountflags" not in sys.modules
    assert mountflags  # imported above for the other tests
