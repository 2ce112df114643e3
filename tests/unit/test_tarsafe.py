"""dockyard._tarsafe: the tar/data extraction filters' rules, also where tarfile lacks them."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from dockyard import _tarsafe


@pytest.fixture(params=["native", "fallback"])
def mode(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no extraction filters")
    return request.param


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r")


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.linkname = kind, mode, link
    return i


def test_plain_members_extract(mode, tmp_path):
    tf = _tar((_info("d", tarfile.DIRTYPE, 0o755), None), (_info("d/f", mode=0o4775), b"hi"),
              (_info("d/l", tarfile.SYMTYPE, link="f"), None))
    _tarsafe.extract_all(tf, str(tmp_path))
    assert (tmp_path / "d" / "f").read_bytes() == b"hi"
    assert os.readlink(tmp_path / "d" / "l") == "f"
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o755  # no setuid, no group write


def test_leading_slash_is_stripped(mode, tmp_path):
    _tarsafe.extract_all(_tar((_info("/abs.txt"), b"x")), str(tmp_path))
    assert (tmp_path / "abs.txt").read_bytes() == b"x"


@pytest.mark.parametrize("members", [
    [(_info("../escape"), b"x")],
    [(_info("a/../../escape"), b"x")],
    [(_info("l", tarfile.SYMTYPE, link="../.."), None), (_info("l/escape"), b"x")],
])
def test_escapes_are_refused(mode, tmp_path, members):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(tarfile.TarError):
        _tarsafe.extract_all(_tar(*members), str(dest))
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("members", [
    [(_info("l", tarfile.SYMTYPE, link="../../etc/passwd"), None)],
    [(_info("d", tarfile.DIRTYPE, 0o755), None), (_info("d/l", tarfile.SYMTYPE, link="../../x"), None)],
])
def test_links_outside_are_kept_by_tar_and_refused_by_data(mode, tmp_path, members):
    dest = tmp_path / "dest"
    dest.mkdir()
    _tarsafe.extract_all(_tar(*members), str(dest))  # as in a build context: kept as they are
    data_dest = tmp_path / "data"
    data_dest.mkdir()
    with pytest.raises(tarfile.TarError):
        _tarsafe.extract_all(_tar(*members), str(data_dest), data=True)


def test_data_refuses_devices_and_absolute_links(mode, tmp_path):
    with pytest.raises(tarfile.TarError):
        _tarsafe.extract_all(_tar((_info("fifo", tarfile.FIFOTYPE), None)), str(tmp_path), data=True)
    with pytest.raises(tarfile.TarError):
        _tarsafe.extract_all(_tar((_info("l", tarfile.SYMTYPE, link="/etc/passwd"), None)), str(tmp_path), data=True)
