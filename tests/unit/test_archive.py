"""save/load formats with tars built in memory: manifest and index generation, the three
archive layouts `load` reads, and the tar-split record that lets `save` give back a
layer's original bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images.archive import (
    ANNOTATION_NAME,
    ANNOTATION_REF,
    MEDIA_CONFIG,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    Blob,
    index_entries,
    oci_manifest,
)
from dockyard.images.archive_load import Archive, docker_specs, oci_specs
from dockyard.images.refs import parse_reference
from dockyard.images.tarsplit import NotReproducible, Recorder, fill, plain_stream


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.uname, ti.gname = "root", "root"
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def config_for(layers: list[bytes]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]}}).encode()


def archive(entries: dict[str, bytes], links: dict[str, str] | None = None) -> Archive:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            t.addfile(ti)
    buf.seek(0)
    return Archive(buf)


# ---- manifest and index generation ---------------------------------------------------


def test_oci_manifest_names_config_and_uncompressed_layers():
    m = json.loads(oci_manifest(Blob("sha256:" + "c" * 64, 10), [Blob("sha256:" + "a" * 64, 1024)]))
    assert m["schemaVersion"] == 2 and m["mediaType"] == MEDIA_MANIFEST
    assert m["config"] == {"mediaType": MEDIA_CONFIG, "digest": "sha256:" + "c" * 64, "size": 10}
    assert m["layers"] == [{"mediaType": MEDIA_LAYER, "digest": "sha256:" + "a" * 64, "size": 1024}]


def test_index_has_one_descriptor_per_tag_with_both_annotations():
    blob = Blob("sha256:" + "d" * 64, 400)
    tags = (parse_reference("busybox:latest"), parse_reference("example.com/me/app:1.0"))
    entries = index_entries(blob, tags)
    assert [e["annotations"] for e in entries] == [
        {ANNOTATION_NAME: "docker.io/library/busybox:latest", ANNOTATION_REF: "latest"},
        {ANNOTATION_NAME: "example.com/me/app:1.0", ANNOTATION_REF: "1.0"},
    ]
    assert all(e["digest"] == blob.digest and e["size"] == 400 for e in entries)
    assert index_entries(blob, ()) == [{"mediaType": MEDIA_MANIFEST, "digest": blob.digest, "size": 400}]


# ---- the three load formats -------------------------------------------------------------


def test_docker_old_format_with_symlinked_layer():
    l1, l2 = layer_tar({"a": b"1"}), layer_tar({"b": b"2"})
    cfg = config_for([l1, l2])
    cid = sha(cfg)[7:]
    manifest = [{"Config": f"{cid}.json", "RepoTags": ["busybox:latest", "bb:x"],
                 "Layers": ["aaa/layer.tar", "bbb/layer.tar"], "Parent": "sha256:" + "f" * 64}]
    ar = archive({"manifest.json": json.dumps(manifest).encode(), f"{cid}.json": cfg,
                  "aaa/layer.tar": l1, "ccc/layer.tar": l2},
                 links={"bbb/layer.tar": "../ccc/layer.tar"})
    (spec,) = docker_specs(ar)
    assert spec.config == cfg and spec.config_digest is None
    assert [t.familiar() for t in spec.tags] == ["busybox:latest", "bb:x"]
    assert spec.parent == "sha256:" + "f" * 64
    assert ar.read(spec.layers[0]) == l1 and ar.read(spec.layers[1]) == l2


def test_docker_new_format_blobs_layout():
    l1 = layer_tar({"a": b"1"})
    cfg = config_for([l1])
    manifest = [{"Config": "blobs/sha256/" + sha(cfg)[7:], "RepoTags": None,
                 "Layers": ["blobs/sha256/" + sha(l1)[7:]]}]
    ar = archive({"manifest.json": json.dumps(manifest).encode(), "blobs/sha256/" + sha(cfg)[7:]: cfg,
                  "blobs/sha256/" + sha(l1)[7:]: l1, "index.json": b"{}"})
    (spec,) = docker_specs(ar)
    assert spec.config_digest == sha(cfg) and spec.tags == ()
    assert ar.read(spec.layers[0]) == l1


def _oci_archive(index_annotations: dict[str, str], nested: bool = False, gzip_layer: bool = True) -> tuple[Archive, bytes, bytes]:
    l1 = layer_tar({"etc/x": b"x"})
    blob = gzip.compress(l1) if gzip_layer else l1
    cfg = config_for([l1])
    man = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                      "config": {"mediaType": MEDIA_CONFIG, "digest": sha(cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MEDIA_LAYER + ("+gzip" if gzip_layer else ""),
                                  "digest": sha(blob), "size": len(blob)}]}).encode()
    entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "blobs/sha256/" + sha(cfg)[7:]: cfg,
               "blobs/sha256/" + sha(blob)[7:]: blob, "blobs/sha256/" + sha(man)[7:]: man}
    desc = {"mediaType": MEDIA_MANIFEST, "digest": sha(man), "size": len(man),
            "platform": {"architecture": "amd64", "os": "linux"}}
    if nested:
        inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [desc, {**desc, "digest": "sha256:" + "9" * 64,
                                                 "platform": {"architecture": "s390x", "os": "linux"}}]}).encode()
        entries["blobs/sha256/" + sha(inner)[7:]] = inner
        desc = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(inner), "size": len(inner)}
    desc["annotations"] = index_annotations
    entries["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    return archive(entries), cfg, blob


def test_oci_layout_with_gzip_layer_and_containerd_name():
    ar, cfg, blob = _oci_archive({ANNOTATION_NAME: "docker.io/library/app:2", ANNOTATION_REF: "2"})
    (spec,) = oci_specs(ar)
    assert spec.config == cfg and spec.config_digest == sha(cfg)
    assert [t.familiar() for t in spec.tags] == ["app:2"]
    assert ar.read(spec.layers[0]) == blob


def test_oci_layout_nested_index_picks_host_platform_and_bare_ref_name_is_no_tag(monkeypatch):
    monkeypatch.setattr("dockyard.images.archive_load.host_architecture", lambda: "amd64")
    ar, cfg, _ = _oci_archive({ANNOTATION_REF: "latest"}, nested=True)
    (spec,) = oci_specs(ar)  # the s390x manifest (absent from the archive) is not read
    assert spec.config == cfg and spec.tags == ()
    ar2, _, _ = _oci_archive({ANNOTATION_REF: "example.com/x:1"})
    assert [t.familiar() for t in oci_specs(ar2)[0].tags] == ["example.com/x:1"]


def test_missing_member_and_bad_archive_are_clear_errors():
    ar = archive({"manifest.json": b'[{"Config":"nope.json","Layers":[]}]'})
    with pytest.raises(InvalidArgument, match="nope.json is missing"):
        docker_specs(ar)
    with pytest.raises(InvalidArgument, match="invalid archive"):
        Archive(io.BytesIO(b"not a tar at all" * 100))


# ---- tar-split: record and reassemble ---------------------------------------------------


def _record(data: bytes) -> list[dict]:
    rec = Recorder(io.BytesIO(data))  # type: ignore[arg-type]
    while rec.read(777):
        pass
    items = rec.finish()
    assert rec.digest() == sha(data)
    return items


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_record_and_fill_reproduce_foreign_tars(tmp_path: Path, fmt: int):
    long = "d/" + "n" * 120 + "/file" if fmt != tarfile.USTAR_FORMAT else "d/" + "n" * 90 + "/file"
    files = {"d/a": b"hello" * 300, long: b"long name", "d/empty": b"", "z": b"\x00" * 513}
    data = layer_tar(files, fmt) + b"\0" * 4096  # trailing padding is kept as recorded
    items = _record(data)
    names = [i["name"] for i in items if i["type"] == 1]
    assert names == ["d/a", long, "z"]  # empty files need no content
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    out = io.BytesIO()
    assert fill(items, str(tmp_path), out) == sha(data)
    assert out.getvalue() == data


def test_fill_refuses_changed_missing_or_symlinked_content(tmp_path: Path):
    data = layer_tar({"a/b": b"content"})
    items = _record(data)
    with pytest.raises(NotReproducible):
        fill(items, str(tmp_path), io.BytesIO())
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "b").write_bytes(b"content")
    (tmp_path / "a").symlink_to("real")
    with pytest.raises(NotReproducible):
        fill(items, str(tmp_path), io.BytesIO())
    (tmp_path / "a").unlink()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_bytes(b"changed")
    assert fill(items, str(tmp_path), io.BytesIO()) != sha(data)


def test_plain_stream_undoes_gzip():
    data = layer_tar({"a": b"1"})
    assert plain_stream(io.BytesIO(gzip.compress(data))).read() == data  # type: ignore[union-attr]
    assert plain_stream(io.BytesIO(data)).read() == data  # type: ignore[union-attr]
