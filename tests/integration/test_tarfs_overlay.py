"""tarfs against real overlayfs mounts: layers applied by `apply_layer` work as lower dirs,
and `overlay_changes` / `write_diff_tar` describe what a container did through the
merged dir. Every mount is undone in a finally block."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard.images.tarfs import apply_layer, overlay_changes, write_diff_tar

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount overlayfs"),
    pytest.mark.skipif(shutil.which("mount") is None, reason="needs mount(8)"),
]

# the overlay features whose upper dirs are not self-describing stay off, as the engine mounts
_OPTS = "index=off,metacopy=off,redirect_dir=off"


@contextlib.contextmanager
def overlay(merged: Path, lowers: list[Path], upper: Path | None = None, work: Path | None = None) -> Iterator[Path]:
    """Mount an overlay (read-only when `upper` is None) and always unmount it."""
    merged.mkdir(parents=True, exist_ok=True)
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None:
        assert work is not None
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        opts += f",upperdir={upper},workdir={work},{_OPTS}"
    proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {proc.stderr.strip()}")
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def E(name: str, kind: str = "file", data: bytes = b"", **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}
    ti = tarfile.TarInfo(name)
    ti.type = types[kind]
    ti.mode = 0o755 if kind == "dir" else 0o644
    ti.mtime = 1_600_000_000
    ti.size = len(data)
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti, data


def layer(dest: Path, *entries: tuple[tarfile.TarInfo, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    dest.mkdir(parents=True)
    apply_layer(io.BytesIO(buf.getvalue()), dest)
    return dest


def view(root: Path) -> dict[str, tuple[Any, ...]]:
    """The merged view of a mount, as a container sees it (root dir itself excluded)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            xattrs = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                                  for n in os.listxattr(p, follow_symlinks=False)))
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size if not
                                             stat.S_ISDIR(st.st_mode) else None,
                                             int(st.st_mtime), extra, xattrs)
    return out


BASE = (
    E("etc", "dir"),
    E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
    E("etc/shadow", data=b"root:*:1::::::\n", mode=0o640),
    E("etc/keep-me-not", data=b"bye"),
    E("opt/data", "dir"),
    E("opt/data/a", data=b"a"),
    E("opt/data/sub/b", data=b"b"),
    E("usr/bin/tool", data=b"#!/bin/sh\n", mode=0o755),
    E("usr/bin/tool2", "link", linkname="usr/bin/tool"),
    E("var/log", "dir"),
    E("passwd-link", "sym", linkname="etc/passwd"),
)


def test_changes_and_diff_tar_reproduce_the_merged_view(tmp_path: Path) -> None:
    lower = layer(tmp_path / "lower", *BASE)
    upper = tmp_path / "upper"
    with overlay(tmp_path / "merged", [lower], upper, tmp_path / "work") as m:
        with open(m / "etc/passwd", "a") as f:
            f.write("app:x:1000:1000::/home/app:/bin/sh\n")
        (m / "etc/new").write_text("new file\n")
        os.chown(m / "etc/new", 1000, 1000)
        os.setxattr(m / "etc/new", "user.origin", b"container")
        os.chmod(m / "etc/shadow", 0o600)
        os.unlink(m / "etc/keep-me-not")
        shutil.rmtree(m / "opt/data")  # then re-created: an opaque dir
        (m / "opt/data").mkdir()
        (m / "opt/data/fresh").write_text("fresh")
        (m / "newdir").mkdir()
        (m / "newdir/f").write_text("linked")
        os.link(m / "newdir/f", m / "newdir/g")
        os.symlink("../etc/new", m / "newdir/s")
        os.mkfifo(m / "newdir/p")
        os.unlink(m / "usr/bin/tool")
        expected = view(m)

    assert os.getxattr(upper / "opt/data", "trusted.overlay.opaque") == b"y"
    assert [str(c) for c in overlay_changes(upper, [lower])] == [
        "C /etc", "D /etc/keep-me-not", "A /etc/new", "C /etc/passwd", "C /etc/shadow",
        "A /newdir", "A /newdir/f", "A /newdir/g", "A /newdir/p", "A /newdir/s",
        "C /opt", "C /opt/data", "A /opt/data/fresh",
        "C /usr", "C /usr/bin", "D /usr/bin/tool",
    ]

    buf = io.BytesIO()
    diff_id = write_diff_tar(upper, [lower], buf)
    assert diff_id == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    again = io.BytesIO()
    assert write_diff_tar(upper, [lower], again) == diff_id and again.getvalue() == buf.getvalue()

    layer2 = tmp_path / "layer2"
    layer2.mkdir()
    assert apply_layer(io.BytesIO(buf.getvalue()), layer2).diff_id == diff_id
    with overlay(tmp_path / "merged2", [layer2, lower]) as m2:
        assert view(m2) == expected
        assert not (m2 / "etc/keep-me-not").exists()
        assert not (m2 / "usr/bin/tool").exists() and (m2 / "usr/bin/tool2").read_text() == "#!/bin/sh\n"
        assert sorted(os.listdir(m2 / "opt/data")) == ["fresh"]  # lower a, sub/ hidden
        assert os.lstat(m2 / "newdir/f").st_ino == os.lstat(m2 / "newdir/g").st_ino
        assert (m2 / "etc/passwd").read_text().endswith("app:x:1000:1000::/home/app:/bin/sh\n")

    # the committed layer stacks like any other: a container on top sees the same tree
    with overlay(tmp_path / "merged3", [layer2, lower], tmp_path / "upper3", tmp_path / "work3") as m3:
        assert view(m3) == expected
    assert overlay_changes(tmp_path / "upper3", [layer2, lower]) == []


def test_applied_whiteouts_and_opaque_dirs_hide_lower_content(tmp_path: Path) -> None:
    bottom = layer(tmp_path / "bottom", E("a/x", data=b"x"), E("a/y", data=b"y"),
                   E("b/z", data=b"z"), E("b/deep/w", data=b"w"), E("c", data=b"c"))
    top = layer(tmp_path / "top", E("a/.wh.x"), E("b", "dir", mode=0o700), E("b/.wh..wh..opq"),
                E("b/new", data=b"n"), E(".wh.c"), E(".wh..wh.plnk", "dir"))
    with overlay(tmp_path / "merged", [top, bottom]) as m:
        assert sorted(os.listdir(m)) == ["a", "b"]
        assert sorted(os.listdir(m / "a")) == ["y"]
        assert sorted(os.listdir(m / "b")) == ["new"]
        assert stat.S_IMODE(os.stat(m / "b").st_mode) == 0o700

    # a container deleting and re-adding through those layers
    upper = tmp_path / "upper"
    with overlay(tmp_path / "merged2", [top, bottom], upper, tmp_path / "work") as m:
        (m / "a/x").write_text("back")
        os.unlink(m / "a/y")
        (m / "b/z").write_text("z is new here: b is opaque in top")
    assert [str(c) for c in overlay_changes(upper, [top, bottom])] == [
        "C /a", "A /a/x", "D /a/y", "C /b", "A /b/z",
    ]
