"""dockyard._path.Path behaves as pathlib.PosixPath for what the engine uses."""

from __future__ import annotations

import os
import pathlib
import pickle

import pytest

from dockyard._path import Path

SAMPLES = ["", ".", "/", "//", "///", "a", "a/", "/a", "//a", "///a", "a//b", "a/./b/", "./a", "a/..",
           "../a", "/a/b/c.tar.gz", "a/.hidden", "a/b.", "x/..y", "/a/b/../c"]


@pytest.mark.parametrize("s", SAMPLES)
def test_pure_parts_match_pathlib(s):
    ours, ref = Path(s), pathlib.PurePosixPath(s)
    assert str(ours) == str(ref)
    assert ours.parts == ref.parts
    assert ours.name == ref.name
    assert str(ours.parent) == str(ref.parent)
    assert ours.suffix == ref.suffix
    assert ours.stem == ref.stem
    assert ours.is_absolute() == ref.is_absolute()
    assert ours == ref and ref == ours
    assert hash(ours) == hash(ref) and {ref: 1}[ours] == 1 and {ours: 1}[ref] == 1
    for other in ["x", "x/y", "/abs", "..", ".", "", "x//y/"]:
        assert str(ours / other) == str(ref / other)
        assert str(other / ours) == str(other / ref)
        assert str(Path(s, other)) == str(pathlib.PurePosixPath(s, other))


def test_ordering_follows_parts_not_strings():
    names = ["a/b", "a-b", "a", "a/b/c", "b", "/z", "/a"]
    assert [str(p) for p in sorted(Path(n) for n in names)] == [str(p) for p in sorted(pathlib.PurePosixPath(n) for n in names)]


def test_with_name_and_suffix():
    assert str(Path("/a/b.txt").with_name("c")) == "/a/c"
    assert str(Path("/a/b.txt").with_suffix(".gz")) == "/a/b.gz"
    with pytest.raises(ValueError):
        Path("/").with_name("x")
    with pytest.raises(ValueError):
        Path("/a").with_suffix("gz")


def test_file_methods(tmp_path):
    root = Path(tmp_path)
    d = root / "x" / "y"
    with pytest.raises(FileNotFoundError):
        d.mkdir()
    d.mkdir(parents=True)
    d.mkdir(parents=True, exist_ok=True)
    with pytest.raises(FileExistsError):
        d.mkdir()
    f = d / "f.txt"
    assert not f.exists() and not f.is_file()
    assert f.write_text("héllo") == 5
    assert f.read_text() == "héllo" and f.read_bytes() == "héllo".encode()
    assert f.exists() and f.is_file() and not f.is_dir() and d.is_dir()
    with pytest.raises(FileExistsError):
        f.mkdir(exist_ok=True)  # exists, but not as a directory
    link = root / "l"
    link.symlink_to(f)
    assert link.is_symlink() and link.readlink() == f and link.resolve() == Path(os.path.realpath(f))
    assert sorted(p.name for p in d.iterdir()) == ["f.txt"]
    g = f.rename(d / "g.txt")
    assert g.exists() and not f.exists() and isinstance(g, Path)
    g.chmod(0o600)
    assert g.stat().st_mode & 0o777 == 0o600
    (d / "t").touch()
    assert (d / "t").lstat().st_size == 0
    (d / "t").unlink()
    (d / "t").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        (d / "t").unlink()
    assert (f / "below").exists() is False  # ENOTDIR counts as "does not exist"
    with g.open("a") as h:
        h.write("!")
    assert g.read_text() == "héllo!"


def test_falls_back_to_pathlib_for_the_rest(tmp_path):
    root = Path(tmp_path)
    (root / "a.txt").write_text("1")
    (root / "b.log").write_text("2")
    assert [p.name for p in root.glob("*.txt")] == ["a.txt"]
    assert str((root / "a.txt").relative_to(root)) == "a.txt"
    assert Path("/a/b/c").parents[1] == pathlib.PurePosixPath("/a")
    assert Path("x/y.py").match("*.py")


def test_fspath_hash_pickle_and_mixing():
    p = Path("/a/b")
    assert os.fspath(p) == "/a/b" and os.path.join(p, "c") == "/a/b/c"
    assert isinstance(p, os.PathLike)
    assert {p: 1}[Path("/a//b/")] == 1
    assert pickle.loads(pickle.dumps(p)) == p
    assert p != "/a/b"  # as pathlib: a path is not its string
    assert pathlib.Path("/x") / p == pathlib.Path("/a/b")
    assert repr(p) == "PosixPath('/a/b')"
