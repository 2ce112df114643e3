"""The layer store and image store on a temporary data root, with the real kernel.

Covers Docker's on-disk layout (layerdb, overlay2 link/lower, l/ short links), chain IDs,
container read-write layers mounted with overlayfs, `rmi` semantics, concurrent tagging and
crash/failure hygiene.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.images._mount import MNT_DETACH, is_mounted, umount2
from dockyard.images.layers import LayerStore, chain_id_of, chain_ids
from dockyard.images.store import ImageStore
from dockyard.paths import Paths

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts, file owners)"),
]

Entry = tuple[str, bytes | None, int]  # (name, data or None for a directory, mode)


def make_tar(entries: list[Entry], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            ti.mtime = 1_700_000_000
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
    return buf.getvalue()


BASE_TAR = make_tar(
    [("bin", None, 0o755), ("bin/sh", b"#!fake shell\n", 0o755), ("etc", None, 0o755),
     ("etc/os-release", b"NAME=test\n", 0o644)],
    {"bin/ash": "sh"},
)
TOP_TAR = make_tar([("app", None, 0o755), ("app/run", b"run\n", 0o755)])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[Paths]:
    p = Paths(root=tmp_path / "root", runroot=tmp_path / "run")
    yield p
    leaked = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split(" ")[4]
            if mnt.startswith(str(tmp_path)):
                leaked.append(mnt)
    for mnt in reversed(leaked):
        umount2(mnt, MNT_DETACH)
    assert not leaked, f"test leaked mounts: {leaked}"


@pytest.fixture
def layers(paths: Paths) -> LayerStore:
    return LayerStore(paths)


@pytest.fixture
def store(paths: Paths, layers: LayerStore) -> ImageStore:
    return ImageStore(paths, layers)


def layer_dirs(paths: Paths) -> list[str]:
    if not paths.overlay.is_dir():
        return []
    return sorted(p.name for p in paths.overlay.iterdir() if p.name != "l")


def layerdb_entries(paths: Paths) -> list[str]:
    d = paths.layerdb / "sha256"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def no_containers(image_id: str) -> list[tuple[str, bool]]:
    return []


def two_layer_image(store: ImageStore, tag: str | None = "app:1") -> str:
    base = store.layers.register(io.BytesIO(BASE_TAR), None)
    top = store.layers.register(io.BytesIO(TOP_TAR), base.chain_id)
    config = {
        "architecture": "amd64",
        "config": {"Cmd": ["/app/run"], "Env": ["PATH=/bin"]},
        "created": "2024-01-01T00:00:00Z",
        "history": [{"created": "2024-01-01T00:00:00Z"}, {"created": "2024-01-01T00:00:00Z"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [base.diff_id, top.diff_id]},
    }
    image_id = store.create_image(config)
    if tag:
        store.tag(image_id, tag)
    return image_id


# ---- layers --------------------------------------------------------------------------


def test_chain_ids_and_layerdb_files(paths: Paths, layers: LayerStore) -> None:
    base = layers.register(io.BytesIO(BASE_TAR), None)
    top = layers.register(io.BytesIO(TOP_TAR), base.chain_id)

    assert base.diff_id == sha256(BASE_TAR)
    assert top.diff_id == sha256(TOP_TAR)
    assert base.chain_id == base.diff_id
    manual = "sha256:" + hashlib.sha256(f"{base.diff_id} {top.diff_id}".encode()).hexdigest()
    assert top.chain_id == manual == chain_id_of(base.chain_id, top.diff_id)
    assert chain_ids([base.diff_id, top.diff_id]) == [base.chain_id, manual]

    db = paths.layerdb / "sha256"
    bdir, tdir = db / base.chain_id[7:], db / manual[7:]
    assert (bdir / "diff").read_text() == base.diff_id
    assert (bdir / "cache-id").read_text() == base.cache_id
    assert int((bdir / "size").read_text()) == base.size > 0
    assert not (bdir / "parent").exists()
    assert (tdir / "parent").read_text() == base.chain_id
    assert (tdir / "diff").read_text() == top.diff_id
    assert layerdb_entries(paths) == sorted([base.chain_id[7:], manual[7:]])

    assert layers.get(manual) == top
    assert [l.chain_id for l in layers.chain(manual)] == [base.chain_id, manual]
    assert layers.diff_dirs(manual) == [paths.overlay / top.cache_id / "diff",
                                        paths.overlay / base.cache_id / "diff"]
    assert (paths.overlay / base.cache_id / "diff" / "etc" / "os-release").read_bytes() == b"NAME=test\n"
    with pytest.raises(NotFound):
        layers.get("sha256:" + "0" * 64)
    with pytest.raises(NotFound):
        layers.register(io.BytesIO(TOP_TAR), "sha256:" + "0" * 64)


def test_link_lower_and_short_links(paths: Paths, layers: LayerStore) -> None:
    l1 = layers.register(io.BytesIO(BASE_TAR), None)
    l2 = layers.register(io.BytesIO(TOP_TAR), l1.chain_id)
    l3 = layers.register(io.BytesIO(make_tar([("x", b"3", 0o644)])), l2.chain_id)
    links = {}
    for layer in (l1, l2, l3):
        d = paths.overlay / layer.cache_id
        assert re.fullmatch(r"[0-9a-f]{64}", layer.cache_id)
        short = (d / "link").read_text()
        assert re.fullmatch(r"[A-Z0-9]{26}", short)
        link = paths.overlay / "l" / short
        assert os.readlink(link) == f"../{layer.cache_id}/diff"
        assert link.resolve() == (d / "diff").resolve()
        links[layer.chain_id] = short
    base_dir = paths.overlay / l1.cache_id
    assert not (base_dir / "lower").exists() and not (base_dir / "work").exists()
    assert (paths.overlay / l2.cache_id / "lower").read_text() == f"l/{links[l1.chain_id]}"
    assert (paths.overlay / l2.cache_id / "work").is_dir()
    assert (paths.overlay / l3.cache_id / "lower").read_text() == (
        f"l/{links[l2.chain_id]}:l/{links[l1.chain_id]}"
    )


def test_same_layer_is_stored_once(paths: Paths, store: ImageStore) -> None:
    a = store.import_tar(io.BytesIO(BASE_TAR), "one", [], "")
    b = store.import_tar(io.BytesIO(BASE_TAR), "two", [], "")
    assert a != b  # different "created"
    assert len(layer_dirs(paths)) == 1
    assert layerdb_entries(paths) == [sha256(BASE_TAR)[7:]]
    assert len(list((paths.overlay / "l").iterdir())) == 1
    assert store.resolve("one").top_chain_id == store.resolve("two").top_chain_id


def test_unsafe_layer_leaves_nothing(paths: Paths, layers: LayerStore, store: ImageStore) -> None:
    evil = make_tar([("ok", b"fine", 0o644), ("../escape", b"boom", 0o644)])
    with pytest.raises(InvalidArgument):
        layers.register(io.BytesIO(evil), None)
    assert layerdb_entries(paths) == []
    assert layer_dirs(paths) == []
    assert not (paths.root / "escape").exists() and not (paths.overlay / "escape").exists()
    with pytest.raises(InvalidArgument):
        store.import_tar(io.BytesIO(evil), "evil", [], "")
    assert layer_dirs(paths) == [] and store.list_images() == []


def test_crash_before_layerdb_entry_leaves_no_half_layer(
    paths: Paths, layers: LayerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(layer: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(layers, "_write_db", boom)
    with pytest.raises(OSError):
        layers.register(io.BytesIO(BASE_TAR), None)
    assert layerdb_entries(paths) == [] and layer_dirs(paths) == []
    assert list((paths.overlay / "l").iterdir()) == []


def test_release_keeps_shared_parents(paths: Paths, layers: LayerStore) -> None:
    base = layers.register(io.BytesIO(BASE_TAR), None)
    a = layers.register(io.BytesIO(TOP_TAR), base.chain_id)
    b = layers.register(io.BytesIO(make_tar([("b", b"b", 0o644)])), base.chain_id)
    assert layers.release(a.chain_id, in_use={b.chain_id}) == [a]
    assert layers.exists(base.chain_id) and not layers.exists(a.chain_id)
    assert not (paths.overlay / a.cache_id).exists()
    assert layers.release(b.chain_id, in_use={b.chain_id}) == []
    assert layers.release(b.chain_id, in_use=set()) == [b, base]
    assert layer_dirs(paths) == [] and layerdb_entries(paths) == []
    assert list((paths.overlay / "l").iterdir()) == []


def test_gc_removes_crash_leftovers(paths: Paths, layers: LayerStore) -> None:
    keep = layers.register(io.BytesIO(BASE_TAR), None)
    orphan = paths.overlay / ("f" * 64)
    (orphan / "diff").mkdir(parents=True)
    os.symlink(f"../{'f' * 64}/diff", paths.overlay / "l" / "DANGLINGLINK0000000000000A")
    (orphan / "diff").rmdir()
    (paths.layerdb / "sha256" / ".tmp-half").mkdir()
    removed = layers.gc()
    assert str(orphan) in removed
    assert layer_dirs(paths) == [keep.cache_id]
    assert layerdb_entries(paths) == [keep.chain_id[7:]]
    assert [p.name for p in (paths.overlay / "l").iterdir()] == [
        (paths.overlay / keep.cache_id / "link").read_text()
    ]


# ---- container read-write layers -----------------------------------------------------

INIT_FILES = {
    "etc/hostname": (b"abc123\n", 0o644),
    "etc/hosts": (b"127.0.0.1 localhost\n", 0o644),
    "etc/resolv.conf": (b"nameserver 1.1.1.1\n", 0o644),
}


def test_rw_layer_mount_and_remove(paths: Paths, store: ImageStore, layers: LayerStore) -> None:
    image = store.resolve(two_layer_image(store))
    cid = "c" * 64
    rw = layers.create_rw(cid, image.top_chain_id, INIT_FILES)
    assert rw.init_id == f"{rw.mount_id}-init" and re.fullmatch(r"[0-9a-f]{64}", rw.mount_id)
    entry = paths.layerdb / "mounts" / cid
    assert (entry / "mount-id").read_text() == rw.mount_id
    assert (entry / "init-id").read_text() == rw.init_id
    assert (entry / "parent").read_text() == image.top_chain_id

    init = paths.overlay / rw.init_id
    assert (init / "diff" / "etc" / "hostname").read_bytes() == b"abc123\n"
    assert (init / "diff" / ".dockerenv").is_file()
    assert (init / "diff" / "dev" / "pts").is_dir() and (init / "diff" / "dev" / "shm").is_dir()
    assert (init / "diff" / "proc").is_dir() and (init / "diff" / "sys").is_dir()
    assert os.readlink(init / "diff" / "etc" / "mtab") == "/proc/mounts"
    init_short = (init / "link").read_text()
    image_lower = layers.lower_string(image.top_chain_id)
    assert (init / "lower").read_text() == image_lower
    top = paths.overlay / rw.mount_id
    assert (top / "lower").read_text() == f"l/{init_short}:{image_lower}"
    for sub in ("diff", "work", "merged"):
        assert (top / sub).is_dir()

    p = layers.rw_paths(cid)
    assert p.lower_dirs == (init / "diff", *layers.diff_dirs(image.top_chain_id))
    assert (p.upper, p.work, p.merged) == (top / "diff", top / "work", top / "merged")
    gd = layers.graph_driver(cid)
    assert gd["Name"] == "overlay2"
    assert gd["Data"]["LowerDir"] == ":".join(str(d) for d in p.lower_dirs)
    assert gd["Data"]["UpperDir"] == str(top / "diff")

    merged = layers.mount_rw(cid)
    try:
        assert merged == p.merged and is_mounted(merged)
        assert layers.mount_rw(cid) == merged  # idempotent
        assert (merged / "etc" / "hostname").read_bytes() == b"abc123\n"
        assert (merged / "etc" / "os-release").read_bytes() == b"NAME=test\n"
        assert (merged / "app" / "run").read_bytes() == b"run\n"
        assert os.readlink(merged / "bin" / "ash") == "sh"
        (merged / "new.txt").write_bytes(b"x" * 1000)
        (merged / "etc" / "os-release").unlink()
        assert (p.upper / "new.txt").read_bytes() == b"x" * 1000
        assert os.stat(p.upper / "etc" / "os-release").st_rdev == 0  # whiteout
        assert (paths.overlay / image_layer_cache(layers, image.top_chain_id, 0) / "diff" / "etc" /
                "os-release").exists()
        assert layers.rw_size(cid) == 1000
    finally:
        layers.unmount_rw(cid)
    assert not is_mounted(merged)
    layers.unmount_rw(cid)  # a no-op now

    layers.mount_rw(cid)
    layers.remove_rw(cid)
    assert not is_mounted(merged)
    assert not top.exists() and not init.exists() and not entry.exists()
    names = {p.name for p in (paths.overlay / "l").iterdir()}
    assert init_short not in names and len(names) == 2
    layers.remove_rw(cid)  # idempotent
    with pytest.raises(NotFound):
        layers.rw_paths(cid)


def image_layer_cache(layers: LayerStore, chain_id: str, index: int) -> str:
    return layers.chain(chain_id)[index].cache_id


def test_rw_layer_without_image_layers(paths: Paths, layers: LayerStore) -> None:
    cid = "d" * 64
    rw = layers.create_rw(cid, None, {})
    assert not (paths.layerdb / "mounts" / cid / "parent").exists()
    assert not (paths.overlay / rw.init_id / "lower").exists()
    merged = layers.mount_rw(cid)
    try:
        assert (merged / ".dockerenv").is_file()
        assert (merged / "etc" / "hostname").is_file()
    finally:
        layers.remove_rw(cid)
    assert layer_dirs(paths) == []


def test_init_layer_keeps_image_paths(layers: LayerStore) -> None:
    base = layers.register(io.BytesIO(make_tar([("etc", None, 0o755),
                                                ("etc/mtab", b"real\n", 0o644)])), None)
    rw = layers.create_rw("e" * 64, base.chain_id, {})
    try:
        init_diff = layers.home / rw.init_id / "diff"
        assert not os.path.lexists(init_diff / "etc" / "mtab")
        assert (init_diff / "etc" / "hosts").is_file()
    finally:
        layers.remove_rw("e" * 64)
    with pytest.raises(InvalidArgument):
        layers.create_rw("f" * 64, base.chain_id, {"../x": (b"", 0o644)})
    assert layers.list_rw() == []


def test_mount_with_long_lowerdir_uses_short_links(tmp_path: Path) -> None:
    root = tmp_path / ("deep-" + "x" * 150) / "root"
    paths = Paths(root=root, runroot=tmp_path / "run")
    layers = LayerStore(paths)
    parent = None
    for i in range(40):
        parent = layers.register(io.BytesIO(make_tar([(f"f{i}", str(i).encode(), 0o644)])),
                                 parent).chain_id
    cid = "a" * 64
    layers.create_rw(cid, parent, {})
    p = layers.rw_paths(cid)
    assert len(":".join(str(d) for d in p.lower_dirs)) > 4096
    try:
        merged = layers.mount_rw(cid)
        assert all((merged / f"f{i}").read_text() == str(i) for i in range(40))
        assert os.getcwd() != str(paths.overlay)
    finally:
        layers.remove_rw(cid)
    assert not is_mounted(p.merged)


# ---- images --------------------------------------------------------------------------


def test_import_builds_docker_config(paths: Paths, store: ImageStore) -> None:
    image_id = store.import_tar(io.BytesIO(BASE_TAR), "busybox", ['CMD ["sh"]', "ENV A=1"], "")
    raw = (paths.imagedb / "content" / "sha256" / image_id[7:]).read_bytes()
    assert sha256(raw) == image_id
    config = json.loads(raw)
    assert config["os"] == "linux" and config["architecture"]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(BASE_TAR)]}
    assert config["config"]["Cmd"] == ["sh"] and config["config"]["Env"] == ["A=1"]
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    assert config["comment"] == "Imported from -"
    repos = json.loads(paths.repositories.read_text())
    assert repos == {"Repositories": {"busybox": {"busybox:latest": image_id}}}
    assert (paths.imagedb / "metadata" / "sha256" / image_id[7:] / "lastUpdated").is_file()

    other = store.import_tar(io.BytesIO(TOP_TAR), None, [], "my message")
    img = store.resolve(other)
    assert img.config["history"][0]["comment"] == "my message"
    assert img.config["config"]["Env"] is None and img.repo_tags == ()
    with pytest.raises(InvalidArgument, match="run is not a valid change command"):
        store.import_tar(io.BytesIO(TOP_TAR), None, ["RUN x"], "")


def test_create_image_is_content_addressed(store: ImageStore) -> None:
    image_id = two_layer_image(store, tag=None)
    again = two_layer_image(store, tag=None)
    assert image_id == again and len(store.list_images()) == 1


def test_resolve(store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    hexid = image_id[7:]
    for name in ("app:1", "docker.io/library/app:1", image_id, hexid, hexid[:12], hexid[:4],
                 "sha256:" + hexid[:12]):
        assert store.resolve(name).id == image_id, name
    img = store.resolve("app:1")
    assert img.repo_tags == ("app:1",)
    assert img.diff_ids == (sha256(BASE_TAR), sha256(TOP_TAR))
    assert img.top_chain_id == chain_ids(list(img.diff_ids))[-1]
    assert img.size == sum(l.size for l in store.layers.chain(img.top_chain_id))
    with pytest.raises(NotFound) as exc:
        store.resolve("app")
    assert str(exc.value) == "No such image: app:latest"
    with pytest.raises(NotFound) as exc:
        store.resolve("busybox")
    assert str(exc.value) == "No such image: busybox:latest"
    with pytest.raises(NotFound) as exc:
        store.resolve("sha256:" + "0" * 64)
    assert str(exc.value) == "No such image: sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        store.resolve("Bad:Name:x")


def test_tag_and_untag(paths: Paths, store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    store.tag("app:1", "localhost:5000/team/app:2")
    store.tag(image_id[7:19], "app")
    img = store.resolve("app:latest")
    assert img.repo_tags == ("app:1", "app:latest", "localhost:5000/team/app:2")
    repos = json.loads(paths.repositories.read_text())["Repositories"]
    assert repos["localhost:5000/team/app"] == {"localhost:5000/team/app:2": image_id}
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        store.tag("app:1", "App")
    with pytest.raises(InvalidArgument, match="digest reference"):
        store.tag("app:1", "app@sha256:" + "a" * 64)
    with pytest.raises(NotFound):
        store.tag("nope", "x")
    assert store.untag("app") == image_id
    with pytest.raises(NotFound, match="No such image: app:latest"):
        store.untag("app")
    info = store.inspect(store.resolve("app:1"))
    assert info["Metadata"]["LastTagTime"].startswith("20")


def test_inspect_shape(paths: Paths, store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    img = store.resolve("app:1")
    info = store.inspect(img)
    assert list(info) == ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created",
                          "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
                          "GraphDriver", "RootFS", "Metadata"]
    assert info["Id"] == image_id and info["RepoTags"] == ["app:1"] and info["RepoDigests"] == []
    assert info["Parent"] == "" and info["DockerVersion"] == "" and info["Author"] == ""
    cfg = info["Config"]
    assert cfg["Hostname"] == "" and cfg["AttachStdin"] is False and cfg["Cmd"] == ["/app/run"]
    assert cfg["Volumes"] is None and cfg["Entrypoint"] is None and cfg["OnBuild"] is None
    assert cfg["Labels"] is None and cfg["WorkingDir"] == "" and cfg["Image"] == ""
    assert info["Size"] == img.size
    top, base = store.layers.chain(img.top_chain_id)[::-1]
    assert info["GraphDriver"] == {"Name": "overlay2", "Data": {
        "LowerDir": str(paths.overlay / base.cache_id / "diff"),
        "MergedDir": str(paths.overlay / top.cache_id / "merged"),
        "UpperDir": str(paths.overlay / top.cache_id / "diff"),
        "WorkDir": str(paths.overlay / top.cache_id / "work"),
    }}
    assert info["RootFS"] == {"Type": "layers", "Layers": [base.diff_id, top.diff_id]}
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    one = store.inspect(store.resolve(store.import_tar(io.BytesIO(TOP_TAR), None, [], "")))
    assert "LowerDir" not in one["GraphDriver"]["Data"]
    assert one["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}


# ---- rmi -----------------------------------------------------------------------------


def test_rmi_untags_when_other_tags_remain(store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    store.tag("app:1", "other")
    assert store.remove("app:1", False, no_containers) == [("Untagged", "app:1")]
    assert store.resolve("other").id == image_id


def test_rmi_deletes_image_and_layers(paths: Paths, store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    img = store.resolve(image_id)
    base_chain = store.layers.chain(img.top_chain_id)[0].chain_id
    out = store.remove("app:1", False, no_containers)
    assert out == [("Untagged", "app:1"), ("Deleted", image_id),
                   ("Deleted", img.top_chain_id), ("Deleted", base_chain)]
    assert store.list_images() == [] and layer_dirs(paths) == [] and layerdb_entries(paths) == []
    assert not (paths.imagedb / "content" / "sha256" / image_id[7:]).exists()
    assert json.loads(paths.repositories.read_text()) == {"Repositories": {}}
    with pytest.raises(NotFound, match="No such image: app:1"):
        store.remove("app:1", False, no_containers)


def test_rmi_keeps_layers_shared_with_other_images(store: ImageStore) -> None:
    a = store.import_tar(io.BytesIO(BASE_TAR), "a", [], "")
    b = store.import_tar(io.BytesIO(BASE_TAR), "b", [], "")
    assert store.remove("a", False, no_containers) == [("Untagged", "a:latest"), ("Deleted", a)]
    assert store.layers.exists(sha256(BASE_TAR))
    assert store.remove("b", False, no_containers)[-1] == ("Deleted", sha256(BASE_TAR))
    del b


def test_rmi_refused_while_in_use(store: ImageStore, layers: LayerStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    short = image_id[7:19]
    cid = "0123abcd" * 8
    stopped = lambda i: [(cid, False)] if i == image_id else []  # noqa: E731
    running = lambda i: [(cid, True)] if i == image_id else []  # noqa: E731

    with pytest.raises(Conflict) as exc:
        store.remove("app:1", False, stopped)
    assert str(exc.value) == (
        f'conflict: unable to remove repository reference "app:1" (must force) - container '
        f"0123abcd0123 is using its referenced image {short}"
    )
    with pytest.raises(Conflict) as exc:
        store.remove(short, False, stopped)
    assert str(exc.value) == (
        f"conflict: unable to delete {short} (must be forced) - image is being used by "
        f"stopped container 0123abcd0123"
    )
    with pytest.raises(Conflict) as exc:
        store.remove(short, True, running)
    assert str(exc.value) == (
        f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
        f"running container 0123abcd0123"
    )
    # forcing a tag away from an image a running container uses only untags it
    store.tag("app:1", "keep")
    assert store.remove("keep", True, running) == [("Untagged", "keep:latest")]
    assert store.resolve(image_id).repo_tags == ("app:1",)

    # forced removal while a stopped container's RW layer sits on the image
    img = store.resolve(image_id)
    layers.create_rw(cid, img.top_chain_id, {})
    try:
        out = store.remove("app:1", True, stopped)
        assert out == [("Untagged", "app:1"), ("Deleted", image_id)]
        assert layers.exists(img.top_chain_id)  # the container still needs its layers
    finally:
        # removing the container's layer releases the force-removed image's layers
        released = store.remove_container_layer(cid, image_id)  # the image is gone: not a hint
    assert released == [img.top_chain_id, chain_ids([img.diff_ids[0]])[0]]
    assert layers.list_layers() == [] and layers.list_rw() == []
    assert store.remove_container_layer(cid) == []


def test_container_layer_removal_keeps_its_existing_images_layers(store: ImageStore, layers: LayerStore) -> None:
    image_id = two_layer_image(store, tag="app:2")
    img = store.resolve(image_id)
    cid = "4567cdef" * 8
    layers.create_rw(cid, img.top_chain_id, {})
    assert store.remove_container_layer(cid, image_id) == []  # the hint: no other image is read
    assert layers.exists(img.top_chain_id) and layers.list_rw() == []
    layers.create_rw(cid, img.top_chain_id, {})
    assert store.remove_container_layer(cid) == []  # without it: every image is read
    assert layers.exists(img.top_chain_id)


def test_rmi_by_id_with_several_repositories_needs_force(store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    store.tag("app:1", "other:2")
    short = image_id[7:19]
    with pytest.raises(Conflict) as exc:
        store.remove(short, False, no_containers)
    assert str(exc.value) == (
        f"conflict: unable to delete {short} (must be forced) - image is referenced in "
        "multiple repositories"
    )
    out = store.remove(short, True, no_containers)
    assert out[:3] == [("Untagged", "app:1"), ("Untagged", "other:2"), ("Deleted", image_id)]


def test_rmi_by_id_single_tag(store: ImageStore) -> None:
    image_id = two_layer_image(store, tag="app:1")
    out = store.remove(image_id, False, no_containers)
    assert out[:2] == [("Untagged", "app:1"), ("Deleted", image_id)]


def test_digest_references(store: ImageStore) -> None:
    from dockyard.images.refs import parse_reference

    image_id = two_layer_image(store, tag="app:1")
    digest = "sha256:" + "d" * 64
    store.add_digest(parse_reference(f"app:1@{digest}"), image_id)
    img = store.resolve(f"app@{digest}")
    assert img.id == image_id
    assert img.repo_tags == ("app:1",) and img.repo_digests == (f"app@{digest}",)
    assert store.resolve(f"app:9@{digest}").id == image_id  # the tag is ignored
    out = store.remove("app:1", False, no_containers)
    assert out[:3] == [("Untagged", "app:1"), ("Untagged", f"app@{digest}"),
                       ("Deleted", image_id)]


# ---- commit --------------------------------------------------------------------------


def test_commit_layer(paths: Paths, store: ImageStore, layers: LayerStore) -> None:
    parent = store.resolve(two_layer_image(store, tag="app:1"))
    cid = "9" * 64
    layers.create_rw(cid, parent.top_chain_id, INIT_FILES)
    try:
        merged = layers.mount_rw(cid)
        (merged / "app" / "data").write_text("committed\n")
        (merged / "etc" / "os-release").unlink()
        p = layers.rw_paths(cid)
        new_id = store.commit_layer(p.upper, list(p.lower_dirs), parent,
                                    {**parent.config["config"], "Cmd": ["/bin/sh"]},
                                    author="me", comment="snap", created_by="/bin/sh")
    finally:
        layers.remove_rw(cid)
    img = store.resolve(new_id)
    assert img.parent == parent.id
    assert img.diff_ids[:2] == parent.diff_ids and len(img.diff_ids) == 3
    assert layers.get(img.top_chain_id).parent == parent.top_chain_id
    hist = img.config["history"]
    assert len(hist) == 3 and hist[-1]["author"] == "me" and hist[-1]["comment"] == "snap"
    assert hist[-1]["created_by"] == "/bin/sh" and "empty_layer" not in hist[-1]
    assert img.config["config"]["Cmd"] == ["/bin/sh"] and img.config["author"] == "me"
    assert store.inspect(img)["Parent"] == parent.id

    cid2 = "8" * 64
    layers.create_rw(cid2, img.top_chain_id, {})
    try:
        merged = layers.mount_rw(cid2)
        assert (merged / "app" / "data").read_text() == "committed\n"
        assert not (merged / "etc" / "os-release").exists()
        assert (merged / "etc" / "hostname").read_bytes() == b""
        p = layers.rw_paths(cid2)
        empty = store.commit_layer(p.upper, list(p.lower_dirs), img, img.config["config"])
    finally:
        layers.remove_rw(cid2)
    e = store.resolve(empty)
    assert e.diff_ids == img.diff_ids and e.config["history"][-1]["empty_layer"] is True

    with pytest.raises(Conflict, match="image has dependent child images"):
        store.remove(parent.id, True, no_containers)
    # removing the newest image prunes its untagged parent (img) but not the tagged one
    out = store.remove(empty, False, no_containers)
    assert ("Deleted", empty) in out and ("Deleted", img.id) in out
    assert ("Deleted", img.top_chain_id) in out
    assert store.resolve("app:1").id == parent.id


# ---- concurrency ---------------------------------------------------------------------


def _tag_many(root: str, runroot: str, image_id: str, prefix: str) -> None:
    s = ImageStore(Paths(Path(root), Path(runroot)), LayerStore(Paths(Path(root), Path(runroot))))
    for i in range(25):
        s.tag(image_id, f"{prefix}:{i}")


def _register_many(root: str, runroot: str) -> None:
    layers = LayerStore(Paths(Path(root), Path(runroot)))
    for _ in range(5):
        base = layers.register(io.BytesIO(BASE_TAR), None)
        layers.register(io.BytesIO(TOP_TAR), base.chain_id)


def test_concurrent_register_stores_each_layer_once(paths: Paths) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_register_many, args=(str(paths.root), str(paths.runroot)))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert len(layerdb_entries(paths)) == 2 and len(layer_dirs(paths)) == 2
    assert len(list((paths.overlay / "l").iterdir())) == 2


def test_concurrent_tags_from_two_processes(paths: Paths, store: ImageStore) -> None:
    image_id = two_layer_image(store, tag=None)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_tag_many, args=(str(paths.root), str(paths.runroot), image_id, p))
             for p in ("left", "right")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    tags = set(store.resolve(image_id).repo_tags)
    assert tags == {f"{p}:{i}" for p in ("left", "right") for i in range(25)}
