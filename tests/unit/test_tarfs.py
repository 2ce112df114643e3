"""Layer tar apply / diff / tree tars, on plain directories (no mounts; needs root for
chown, mknod and trusted.* xattrs)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import Conflict, FailedPrecondition, InvalidArgument, Unsupported
from dockyard.images.tarfs import (
    ApplyResult,
    Change,
    ChangeKind,
    apply_layer,
    extract_tree_tar,
    overlay_changes,
    write_diff_tar,
    write_tree_tar,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, trusted.* xattrs)")

OPAQUE = "trusted.overlay.opaque"


# ---- helpers ---------------------------------------------------------------------


def E(name: str, kind: str = "file", data: bytes = b"", **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    """One tar entry: kind is file/dir/sym/link/fifo/chr/blk."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
             "link": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
             "blk": tarfile.BLKTYPE}
    ti = tarfile.TarInfo(name)
    ti.type = types[kind]
    ti.mode = 0o755 if kind == "dir" else 0o644
    ti.mtime = 1_600_000_000
    ti.size = len(data) if kind == "file" else 0
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def apply(data: bytes, dest: Path) -> ApplyResult:
    dest.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(data), dest)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def xattrs(path: Path) -> dict[str, bytes]:
    return {n: os.getxattr(path, n, follow_symlinks=False)
            for n in os.listxattr(path, follow_symlinks=False)}


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything observable about a tree (bar atime/ctime/inode numbers)."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            link = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                link = inodes.setdefault((st.st_dev, st.st_ino), rel)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns // 10**9, extra, link,
                        tuple(sorted(xattrs(p).items())))
    return out


@pytest.fixture
def area(tmp_path: Path) -> dict[str, Path]:
    """dest = tmp/layer (fresh), with a sentinel dir beside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep me")
    dest = tmp_path / "layer"
    dest.mkdir()
    return {"tmp": tmp_path, "dest": dest, "outside": outside}


# ---- apply_layer: what is kept -------------------------------------------------------


def test_apply_keeps_every_kind_and_its_metadata(tmp_path: Path) -> None:
    binary = b"\x00\xff\x01bin"
    data = make_tar(
        E("etc", "dir", mode=0o755, mtime=1_000_000_001),
        E("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n", mode=0o4755, uid=1000, gid=1000,
          pax_headers={"mtime": "1500000000.25", "SCHILY.xattr.user.comment": "hello",
                       "SCHILY.xattr.trusted.blob": binary.decode("utf-8", "surrogateescape")}),
        E("etc/passwd-link", "link", linkname="etc/passwd"),
        E("etc/shadow-abs-link", "link", linkname="/etc/passwd"),
        E("tmp", "dir", mode=0o1777, mtime=1_000_000_002),
        E("srv", "dir", mode=0o2750, uid=1000, gid=1000, mtime=1_000_000_003),
        E("srv/f", data=b"x" * 5000, mode=0o2644),
        E("bin", "sym", linkname="usr/bin", uid=1000, gid=1000, mtime=1_234_567_890),
        E("dev", "dir"),
        E("dev/null", "chr", devmajor=1, devminor=3, mode=0o666),
        E("dev/loop9", "blk", devmajor=7, devminor=9, mode=0o660, gid=6),
        E("run/fifo", "fifo", mode=0o620, uid=1000),  # parent dir missing: created 0755
    )
    dest = tmp_path / "layer"
    result = apply(data, dest)

    assert result == ApplyResult(diff_id=sha(data), size=len(b"root:x:0:0:root:/root:/bin/sh\n") + 5000)
    passwd = dest / "etc/passwd"
    st = os.lstat(passwd)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert st.st_mtime_ns == 1_500_000_000_250_000_000
    assert passwd.read_bytes() == b"root:x:0:0:root:/root:/bin/sh\n"
    assert xattrs(passwd) == {"user.comment": b"hello", "trusted.blob": binary}
    assert st.st_nlink == 3
    assert os.lstat(dest / "etc/passwd-link").st_ino == st.st_ino
    assert os.lstat(dest / "etc/shadow-abs-link").st_ino == st.st_ino

    # directory metadata survives the entries added to it afterwards
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert os.lstat(dest / "etc").st_mtime == 1_000_000_001
    assert os.lstat(dest / "tmp").st_mtime == 1_000_000_002
    srv = os.lstat(dest / "srv")
    assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_gid, srv.st_mtime) == (0o2750, 1000, 1000, 1_000_000_003)
    assert stat.S_IMODE(os.lstat(dest / "srv/f").st_mode) == 0o2644

    link = os.lstat(dest / "bin")
    assert stat.S_ISLNK(link.st_mode) and os.readlink(dest / "bin") == "usr/bin"
    assert (link.st_uid, link.st_gid, link.st_mtime) == (1000, 1000, 1_234_567_890)

    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(dest / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    assert (stat.S_IMODE(loop.st_mode), loop.st_gid) == (0o660, 6)

    fifo = os.lstat(dest / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620 and fifo.st_uid == 1000
    run = os.lstat(dest / "run")
    assert stat.S_IMODE(run.st_mode) == 0o755 and run.st_uid == 0


def test_absolute_names_are_made_relative(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(make_tar(E("/abs/dir/file", data=b"hi"), E("./rel/./x/../y", data=b"yo")), dest)
    assert (dest / "abs/dir/file").read_bytes() == b"hi"
    assert (dest / "rel/y").read_bytes() == b"yo"
    assert sorted(os.listdir(dest)) == ["abs", "rel"]


def test_root_entry_sets_the_layer_root_metadata(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(make_tar(E("./", "dir", mode=0o700, mtime=1_111_111_111), E("./f", data=b"1")), dest)
    st = os.stat(dest)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_mtime == 1_111_111_111


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(make_tar(
        E("f", data=b"one"), E("f", data=b"two!"),
        E("d", "dir", mode=0o700), E("d/keep", data=b"k"), E("d", "dir", mode=0o750),
        E("g", "dir"), E("g/gone", data=b"g"), E("g", data=b"now a file"),
        E("h", data=b"file"), E("h", "dir"), E("h/inside", data=b"i"),
        E("s", data=b"file"), E("s", "sym", linkname="f"),
        E("real", "dir"), E("lnk", "sym", linkname="real"), E("lnk", "dir"), E("lnk/x", data=b"x"),
    ), dest)
    assert (dest / "f").read_bytes() == b"two!"
    assert stat.S_IMODE(os.lstat(dest / "d").st_mode) == 0o750 and (dest / "d/keep").read_bytes() == b"k"
    assert (dest / "g").read_bytes() == b"now a file"
    assert (dest / "h/inside").read_bytes() == b"i"
    assert os.readlink(dest / "s") == "f"
    assert not (dest / "lnk").is_symlink() and (dest / "lnk/x").read_bytes() == b"x"
    assert os.listdir(dest / "real") == []


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(area: dict[str, Path]) -> None:
    sentinel = area["outside"] / "sentinel"
    apply(make_tar(E("f", "sym", linkname=str(sentinel)), E("f", data=b"evil")), area["dest"])
    assert (area["dest"] / "f").read_bytes() == b"evil" and not (area["dest"] / "f").is_symlink()
    assert sentinel.read_text() == "keep me"


def test_symlinked_parent_inside_the_layer_is_followed_inside_it(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(make_tar(
        E("usr/lib", "dir"), E("lib", "sym", linkname="usr/lib"), E("lib/libc.so", data=b"elf"),
        E("usr/share/doc", "sym", linkname="../lib"), E("usr/share/doc/README", data=b"r"),
    ), dest)
    assert os.readlink(dest / "lib") == "usr/lib"
    assert (dest / "usr/lib/libc.so").read_bytes() == b"elf"
    assert (dest / "usr/lib/README").read_bytes() == b"r"


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(make_tar(
        E("etc", "dir"),
        E("etc/.wh.passwd", uid=0),
        E("etc/gone", data=b"x"), E("etc/.wh.gone"),  # a whiteout replaces an earlier entry
        E("opt", "dir", mode=0o711), E("opt/.wh..wh..opq"), E("opt/new", data=b"n"),
        E("var/.wh..wh..opq"),  # the directory is created
        E(".wh..wh.plnk", "dir"), E(".wh..wh.plnk/123.456", data=b"aufs"),
        E("usr/linked", "link", linkname=".wh..wh.plnk/123.456"),  # aufs hardlink source
        E(".wh..wh.aufs"), E(".wh..wh.orph", "dir"), E(".wh..wh.orph/x", data=b"o"),
        E("etc/.wh..wh.other"),
    ), dest)
    for name in ("etc/passwd", "etc/gone"):
        st = os.lstat(dest / name)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (dest / "etc/.wh.passwd").exists()
    assert os.getxattr(dest / "opt", OPAQUE) == b"y"
    assert stat.S_IMODE(os.lstat(dest / "opt").st_mode) == 0o711
    assert (dest / "opt/new").read_bytes() == b"n"
    assert os.getxattr(dest / "var", OPAQUE) == b"y"
    assert sorted(os.listdir(dest)) == ["etc", "opt", "usr", "var"]
    assert sorted(os.listdir(dest / "etc")) == ["gone", "passwd"]
    assert (dest / "usr/linked").read_bytes() == b"aufs"
    assert sorted(os.listdir(dest / "opt")) == ["new"]


def test_overlay_xattrs_in_the_archive_are_ignored(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(make_tar(E("d", "dir", pax_headers={"SCHILY.xattr.trusted.overlay.opaque": "y",
                                               "SCHILY.xattr.trusted.overlay.redirect": "/x",
                                               "SCHILY.xattr.user.ok": "1"})), dest)
    assert xattrs(dest / "d") == {"user.ok": b"1"}


# ---- apply_layer: streams and digests --------------------------------------------------


def _sample_tar() -> bytes:
    return make_tar(E("a", "dir"), E("a/b", data=b"hello" * 1000), E("c", "sym", linkname="a/b"))


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b],
                         ids=["gzip", "bzip2", "xz", "plain"])
def test_diff_id_is_the_digest_of_the_uncompressed_tar(tmp_path: Path, compress: Any) -> None:
    data = _sample_tar()
    result = apply(compress(data), tmp_path / "layer")
    assert result.diff_id == sha(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == 5000
    assert (tmp_path / "layer/a/b").read_bytes() == b"hello" * 1000


def test_gzip_and_plain_give_the_same_result(tmp_path: Path) -> None:
    data = _sample_tar()
    plain = apply(data, tmp_path / "plain")
    gz = apply(gzip.compress(data), tmp_path / "gz")
    assert plain == gz
    assert snapshot(tmp_path / "plain") == snapshot(tmp_path / "gz")


def test_diff_id_covers_trailing_zero_blocks_and_padding(tmp_path: Path) -> None:
    data = _sample_tar() + b"\0" * 7000  # more end padding than tarfile itself reads
    assert apply(data, tmp_path / "layer").diff_id == sha(data)
    assert apply(gzip.compress(data), tmp_path / "layer2").diff_id == sha(data)


def test_tar_without_end_blocks_is_accepted(tmp_path: Path) -> None:
    ti, body = E("f", data=b"abc")
    data = ti.tobuf(tarfile.PAX_FORMAT) + body + b"\0" * (512 - len(body))
    result = apply(data, tmp_path / "layer")
    assert result.diff_id == sha(data) and (tmp_path / "layer/f").read_bytes() == b"abc"


def test_empty_stream_is_an_empty_layer(tmp_path: Path) -> None:
    result = apply(b"", tmp_path / "layer")
    assert result == ApplyResult(diff_id=sha(b""), size=0)
    assert os.listdir(tmp_path / "layer") == []


def test_zstd_without_the_module_is_unsupported(tmp_path: Path) -> None:
    try:
        import zstandard  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        dest = tmp_path / "layer"
        with pytest.raises(Unsupported, match="zstandard"):
            apply(b"\x28\xb5\x2f\xfd" + b"\0" * 64, dest)
        assert os.listdir(dest) == []
    else:
        data = _sample_tar()
        compressed = zstandard.ZstdCompressor().compress(data)
        assert apply(compressed, tmp_path / "layer").diff_id == sha(data)


def _corrupt_middle_header() -> bytes:
    data = bytearray(make_tar(E("first", data=b"1"), E("second", data=b"2"), E("third", data=b"3")))
    # find the "second" header and break its checksum
    idx = data.index(b"second")
    header_start = idx - idx % 512
    data[header_start + 148 : header_start + 156] = b"0000000\0"
    return bytes(data)


@pytest.mark.parametrize("data", [
    b"this is not a tar archive at all" * 40,
    gzip.compress(_sample_tar())[:-30],
    b"\x1f\x8b" + b"garbage" * 100,
    _sample_tar()[:700],
    _corrupt_middle_header(),
], ids=["garbage", "truncated-gzip", "bad-gzip", "truncated-tar", "bad-middle-header"])
def test_invalid_input_is_refused_and_dest_left_empty(tmp_path: Path, data: bytes) -> None:
    dest = tmp_path / "layer"
    with pytest.raises(InvalidArgument, match="layer is not a valid"):
        apply(data, dest)
    assert os.listdir(dest) == []


def test_dest_must_be_empty(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    dest.mkdir()
    (dest / "old").write_text("x")
    with pytest.raises(FailedPrecondition):
        apply(_sample_tar(), dest)
    assert os.listdir(dest) == ["old"]


# ---- apply_layer: malicious archives ---------------------------------------------------


def _outside_state(area: dict[str, Path]) -> Any:
    """Everything outside dest that an escape could touch."""
    tree = []
    for dirpath, dirnames, filenames in os.walk(area["tmp"]):
        if Path(dirpath) == area["dest"] or area["dest"] in Path(dirpath).parents:
            continue
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p == area["dest"]:
                continue
            st = os.lstat(p)
            tree.append((str(p), st.st_mode, st.st_nlink, st.st_mtime_ns, st.st_uid))
    passwd = os.lstat("/etc/passwd")
    return (sorted(tree), (area["outside"] / "sentinel").read_text(),
            (passwd.st_nlink, passwd.st_mtime_ns, passwd.st_mode, Path("/etc/passwd").read_bytes()),
            os.path.exists("/etc/x"), os.listxattr(area["dest"]))


MALICIOUS = {
    "dotdot": ([E("ok", data=b"fine"), E("../x", data=b"evil")], "'../x' escapes the layer root"),
    "nested-dotdot": ([E("a", "dir"), E("a/../../x", data=b"evil")], "'a/../../x' escapes the layer root"),
    "symlink-abs-etc": ([E("evil", "sym", linkname="/etc"), E("evil/passwd", data=b"pwned")],
                        "'evil/passwd' goes through symlink 'evil' -> '/etc'"),
    "symlink-abs-outside": ([E("evil", "sym", linkname="{outside}"), E("evil/x", data=b"pwned")],
                            "goes through symlink 'evil'"),
    "symlink-dotdot": ([E("evil", "sym", linkname="../../.."), E("evil/x", data=b"pwned")],
                       "'evil/x' goes through symlink 'evil' -> '../../..', which points outside the layer root"),
    "nested-symlink-dotdot": ([E("d", "dir"), E("d/evil", "sym", linkname="../.."),
                               E("d/evil/outside/sentinel", data=b"pwned")], "goes through symlink 'd/evil'"),
    "symlink-chain": ([E("a", "sym", linkname="b"), E("b", "sym", linkname="../outside"),
                       E("a/sentinel", data=b"pwned")], "goes through symlink 'b'"),
    "hardlink-etc-passwd": ([E("x", "link", linkname="/etc/passwd")],
                            "'x' is a hardlink to '/etc/passwd', which is not in the layer"),
    "hardlink-dotdot": ([E("x", "link", linkname="../outside/sentinel")],
                        "'x' is a hardlink to '../outside/sentinel', which escapes the layer root"),
    "hardlink-missing": ([E("x", "link", linkname="nope")], "which is not in the layer"),
    "hardlink-via-symlink": ([E("evil", "sym", linkname="/etc"), E("x", "link", linkname="evil/passwd")],
                             "goes through symlink 'evil' -> '/etc'"),
    "whiteout-dotdot": ([E("../.wh.sentinel")], "escapes the layer root"),
    "whiteout-via-symlink": ([E("evil", "sym", linkname="{outside}"), E("evil/.wh.sentinel")],
                             "goes through symlink 'evil'"),
    "opaque-via-symlink": ([E("evil", "sym", linkname="{outside}"), E("evil/.wh..wh..opq")],
                           "goes through symlink 'evil'"),
    "root-replaced": ([E("./", data=b"x")], "would replace the layer root"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_layers_are_refused(area: dict[str, Path], case: str) -> None:
    entries, message = MALICIOUS[case]
    fixed = []
    for ti, body in entries:
        ti.linkname = ti.linkname.replace("{outside}", str(area["outside"]))
        fixed.append((ti, body))
    before = _outside_state(area)
    with pytest.raises(InvalidArgument) as err:
        apply(make_tar(E("first/file", data=b"written before the bad entry"), *fixed), area["dest"])
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert os.listdir(area["dest"]) == []
    assert _outside_state(area) == before


# ---- extract_tree_tar --------------------------------------------------------------------


def test_extract_resolves_symlinks_in_dest_as_a_chroot(area: dict[str, Path]) -> None:
    root = area["dest"]
    (root / "data").mkdir()
    os.symlink("/data", root / "abs")
    os.symlink("../../../..", root / "up")
    before = _outside_state(area)
    extract_tree_tar(io.BytesIO(make_tar(E("abs/f", data=b"1"), E("up/g", data=b"2"),
                                         E("up/data/h", data=b"3"))), root)
    assert (root / "data/f").read_bytes() == b"1"
    assert (root / "g").read_bytes() == b"2"
    assert (root / "data/h").read_bytes() == b"3"
    assert _outside_state(area)[:4] == before[:4]


def test_extract_refuses_escapes(area: dict[str, Path]) -> None:
    before = _outside_state(area)
    for entries in ([E("../outside/sentinel", data=b"x")], [E("x", "link", linkname="../outside/sentinel")]):
        with pytest.raises(InvalidArgument, match="escapes the destination directory"):
            extract_tree_tar(io.BytesIO(make_tar(*entries)), area["dest"])
    assert _outside_state(area)[:4] == before[:4]


def test_extract_keeps_whiteout_names_owners_and_overrides(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    dest.mkdir()
    data = make_tar(E("d", "dir", uid=5, gid=6), E("d/.wh.x", data=b"w", uid=7, gid=8))
    extract_tree_tar(io.BytesIO(gzip.compress(data)), dest)
    assert (dest / "d/.wh.x").read_bytes() == b"w"
    st = os.lstat(dest / "d/.wh.x")
    assert (st.st_uid, st.st_gid) == (7, 8) and os.lstat(dest / "d").st_uid == 5
    extract_tree_tar(io.BytesIO(data), dest, chown=(42, 43))
    assert {(os.lstat(p).st_uid, os.lstat(p).st_gid) for p in (dest / "d", dest / "d/.wh.x")} == {(42, 43)}


def test_extract_no_overwrite_dir_non_dir(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    (dest / "dir").mkdir(parents=True)
    (dest / "file").write_text("f")
    with pytest.raises(Conflict, match="cannot overwrite directory '/dir' with non-directory"):
        extract_tree_tar(io.BytesIO(make_tar(E("dir", data=b"x"))), dest, no_overwrite_dir_non_dir=True)
    with pytest.raises(Conflict, match="cannot overwrite non-directory '/file' with directory"):
        extract_tree_tar(io.BytesIO(make_tar(E("file", "dir"))), dest, no_overwrite_dir_non_dir=True)
    extract_tree_tar(io.BytesIO(make_tar(E("dir", data=b"x"), E("file", "dir"))), dest)
    assert (dest / "dir").read_bytes() == b"x" and (dest / "file").is_dir()


# ---- write_tree_tar ----------------------------------------------------------------------


def _rich_tree(dest: Path) -> None:
    apply(make_tar(
        E("etc", "dir", mode=0o755, mtime=1_000_000_000),
        E("etc/passwd", data=b"root\n", mode=0o4755, uid=1000, gid=1000,
          pax_headers={"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.b": "\udcff\x00"}),
        E("etc/hard", "link", linkname="etc/passwd"),
        E("etc/sym", "sym", linkname="passwd", uid=3),
        E("dev/null", "chr", devmajor=1, devminor=3, mode=0o666),
        E("dev/sda", "blk", devmajor=8, devminor=0),
        E("fifo", "fifo", mode=0o600),
        E("tmp", "dir", mode=0o1777),
        E("n\udcffon-utf8", data=b"raw name"),
        E("deep/" + "x" * 120 + "/long", data=b"long name"),
    ), dest)


def test_write_tree_tar_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _rich_tree(src)
    buf = io.BytesIO()
    write_tree_tar(src, buf)
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert not any(n.startswith("/") for n in names)
    assert names.index("etc") < names.index("etc/hard") < names.index("etc/passwd")
    hard = next(m for m in members if m.name == "etc/passwd")
    assert hard.islnk() and hard.linkname == "etc/hard"  # first in sorted order holds the data
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert all("atime" not in m.pax_headers and "ctime" not in m.pax_headers for m in members)
    out = tmp_path / "out"
    out.mkdir()
    extract_tree_tar(io.BytesIO(data), out)
    assert snapshot(out) == snapshot(src)


def test_write_tree_tar_include_and_arcname(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _rich_tree(src)
    buf = io.BytesIO()
    write_tree_tar(src, buf, include=lambda rel: rel != "dev" and not rel.startswith("deep"))
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        names = tf.getnames()
    assert "etc/passwd" in names and not any(n.startswith(("dev", "deep")) for n in names)

    buf = io.BytesIO()
    write_tree_tar(src / "etc", buf, arcname="etc")
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert tf.getnames() == ["etc", "etc/hard", "etc/passwd", "etc/sym"]
    buf = io.BytesIO()
    write_tree_tar(src / "etc/sym", buf, arcname="renamed")
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        (m,) = tf.getmembers()
    assert m.name == "renamed" and m.issym() and m.linkname == "passwd"


# ---- write_diff_tar / overlay_changes on hand-made upper dirs --------------------------------


def _make_upper(root: Path, reverse: bool = False) -> None:
    """An overlay upper dir as the kernel leaves it; `reverse` creates things in another order."""
    steps = []
    steps.append(lambda: (root / "etc").mkdir(parents=True))
    steps.append(lambda: (root / "etc/passwd").write_bytes(b"root:changed\n"))
    steps.append(lambda: os.mknod(root / "etc/shadow", stat.S_IFCHR, 0))
    steps.append(lambda: (root / "opt/data").mkdir(parents=True))
    steps.append(lambda: (root / "opt/data/fresh").write_bytes(b"new"))
    steps.append(lambda: (root / "new").mkdir())
    steps.append(lambda: (root / "new/a").write_bytes(b"same inode"))
    steps.append(lambda: os.symlink("../etc/passwd", root / "new/s"))
    root.mkdir()
    order = [0, 1, 2, 3, 4, 5, 6, 7]
    if reverse:
        order = [5, 6, 7, 3, 4, 0, 2, 1]
    for i in order:
        steps[i]()
    os.link(root / "new/a", root / "new/b")
    os.setxattr(root / "opt/data", OPAQUE, b"y")
    os.setxattr(root / "etc", "trusted.overlay.origin", b"\x00fh")
    os.setxattr(root / "etc/passwd", "user.note", b"kept")
    os.chown(root / "new/a", 1000, 1000)
    os.chmod(root / "new", 0o750)
    for p in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(p, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789), follow_symlinks=False)


def _lower(root: Path) -> Path:
    apply(make_tar(
        E("etc/passwd", data=b"root\n"), E("etc/shadow", data=b"secret"), E("etc/group", data=b"g"),
        E("opt/data/a", data=b"a"), E("opt/data/sub/b", data=b"b"),
    ), root)
    return root


def test_write_diff_tar_content(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    _make_upper(upper)
    buf = io.BytesIO()
    diff_id = write_diff_tar(upper, [_lower(tmp_path / "lower")], buf)
    data = buf.getvalue()
    assert diff_id == sha(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        order = tf.getnames()
    assert order == ["etc", "etc/passwd", "etc/.wh.shadow", "new", "new/a", "new/b", "new/s",
                     "opt", "opt/data", "opt/data/.wh..wh..opq", "opt/data/fresh"]
    assert members["etc/.wh.shadow"].isreg() and members["etc/.wh.shadow"].size == 0
    assert members["opt/data/.wh..wh..opq"].isreg()
    assert members["new/b"].islnk() and members["new/b"].linkname == "new/a"
    assert (members["new/a"].uid, members["new/a"].gid, members["new/a"].uname) == (1000, 1000, "")
    assert members["new"].mode == 0o750
    assert members["etc"].pax_headers == {}  # trusted.overlay.* never written
    assert members["etc/passwd"].pax_headers == {"SCHILY.xattr.user.note": "kept"}
    assert members["opt/data"].pax_headers == {}
    assert all(m.mtime == 1_700_000_000 for m in members.values())


def test_write_diff_tar_is_deterministic(tmp_path: Path) -> None:
    _make_upper(tmp_path / "u1")
    _make_upper(tmp_path / "u2", reverse=True)
    outs = []
    for name in ("u1", "u1", "u2"):
        buf = io.BytesIO()
        outs.append((write_diff_tar(tmp_path / name, [], buf), buf.getvalue()))
    assert outs[0] == outs[1] == outs[2]


def test_empty_upper_gives_dockers_empty_layer(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    buf = io.BytesIO()
    diff_id = write_diff_tar(upper, [], buf)
    assert buf.getvalue() == b"\0" * 1024
    assert diff_id == "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    assert overlay_changes(upper, []) == []
    result = apply(buf.getvalue(), tmp_path / "layer")
    assert result == ApplyResult(diff_id=diff_id, size=0) and os.listdir(tmp_path / "layer") == []


def test_write_diff_tar_mtime_clamp(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    _make_upper(upper)
    os.utime(upper / "etc/passwd", (1000, 1000))
    buf = io.BytesIO()
    write_diff_tar(upper, [], buf, mtime_clamp=1_500_000_000)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        mtimes = {m.name: m.mtime for m in tf.getmembers()}
    assert mtimes["etc/passwd"] == 1000
    assert {v for k, v in mtimes.items() if k != "etc/passwd"} == {1_500_000_000}


def test_write_diff_tar_applies_back_to_the_same_upper(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    _make_upper(upper)
    buf = io.BytesIO()
    diff_id = write_diff_tar(upper, [], buf)
    layer = tmp_path / "layer"
    result = apply(buf.getvalue(), layer)
    assert result.diff_id == diff_id and result.size == len(b"root:changed\n") + len(b"new") + len(b"same inode")
    assert os.getxattr(layer / "opt/data", OPAQUE) == b"y"
    assert os.lstat(layer / "etc/shadow").st_rdev == 0 and stat.S_ISCHR(os.lstat(layer / "etc/shadow").st_mode)
    assert os.lstat(layer / "new/a").st_ino == os.lstat(layer / "new/b").st_ino
    def strip(snap: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
        return {k: v[:6] + (tuple(x for x in v[6] if not x[0].startswith("trusted.overlay.")),)
                for k, v in snap.items()}
    assert strip(snapshot(layer)) == strip(snapshot(upper))


def test_write_diff_tar_refuses_redirect_dirs(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(Unsupported, match="redirect"):
        write_diff_tar(upper, [], io.BytesIO())


def test_overlay_changes(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    _make_upper(upper)
    changes = overlay_changes(upper, [_lower(tmp_path / "lower")])
    assert [str(c) for c in changes] == [
        "C /etc", "C /etc/passwd", "D /etc/shadow",
        "A /new", "A /new/a", "A /new/b", "A /new/s",
        "C /opt", "C /opt/data", "A /opt/data/fresh",
    ]
    assert changes[0] == Change(ChangeKind.MODIFIED, "/etc") and changes[0].kind.api_code == 0
    assert ChangeKind.A is ChangeKind.ADDED and ChangeKind.D.api_code == 2


def test_overlay_changes_use_the_merged_lowers(tmp_path: Path) -> None:
    bottom = tmp_path / "bottom"
    apply(make_tar(E("usr/bin/tool", data=b"t"), E("srv/x", data=b"x"), E("srv/y", data=b"y")), bottom)
    top = tmp_path / "top"
    apply(make_tar(E("usr/bin/.wh.tool"), E("srv", "dir"), E("srv/.wh..wh..opq"), E("srv/z", data=b"z")), top)
    upper = tmp_path / "upper"
    (upper / "usr/bin").mkdir(parents=True)
    (upper / "usr/bin/tool").write_text("again")  # hidden by `top`: an addition
    (upper / "srv").mkdir()
    (upper / "srv/x").write_text("x")  # srv is opaque in `top`: x is new
    (upper / "srv/z").write_text("z2")  # z is in `top`: modified
    (upper / "srv-old").write_text("'-' sorts before '/', as in docker diff")
    changes = overlay_changes(upper, [top, bottom])
    assert [str(c) for c in changes] == [
        "C /srv", "A /srv-old", "A /srv/x", "C /srv/z", "C /usr", "C /usr/bin", "A /usr/bin/tool",
    ]
