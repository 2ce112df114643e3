"""tarfs_stream: Gunzip against Python's gzip module (members, padding, errors) and the
hashing reader's read-ahead (any read size gives the same bytes, digest and end block)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib

import pytest

from dockyard.images.tarfs_stream import Gunzip, _HashingReader, _open_stream


class Trickle(io.RawIOBase):
    """A reader that hands out at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self.f, self.step = io.BytesIO(data), step

    def read(self, n: int = -1) -> bytes:
        return self.f.read(self.step if n is None or n < 0 else min(n, self.step))


def _data() -> bytes:
    text = b"".join(b"line %d of some compressible text\n" % i for i in range(60000))
    return text + os.urandom(300_000) + text[:1000]


@pytest.mark.parametrize("step", [1, 7, 65536, 1 << 22])
def test_gunzip_matches_gzip_for_members_and_padding(step: int) -> None:
    data = _data()
    blob = gzip.compress(data[:500_000], 6) + gzip.compress(b"", 1) + gzip.compress(data[500_000:], 1)
    blob += b"\0" * 1000  # zero padding after the last member, as GzipFile allows
    assert gzip.decompress(blob) == data
    out = bytearray()
    g = Gunzip(Trickle(blob, step))
    while chunk := g.read(10240):
        assert len(chunk) <= 10240
        out += chunk
    assert bytes(out) == data and g.read(5) == b""
    assert Gunzip(io.BytesIO(blob)).read() == data


def test_gunzip_errors() -> None:
    data = _data()
    blob = gzip.compress(data, 6)
    with pytest.raises(EOFError):  # truncated
        Gunzip(io.BytesIO(blob[:-100])).read()
    bad_crc = bytearray(blob)
    bad_crc[-8] ^= 0xFF  # the member's CRC-32
    with pytest.raises(zlib.error):
        Gunzip(io.BytesIO(bytes(bad_crc))).read()
    with pytest.raises(gzip.BadGzipFile):
        Gunzip(io.BytesIO(blob + b"garbage after the member")).read()


@pytest.mark.parametrize("step", [1, 10240, 3 << 20])
def test_hashing_reader_read_ahead(step: int) -> None:
    data = _data() * 3  # several MiB: more than one read-ahead chunk
    r = _open_stream(io.BytesIO(gzip.compress(data, 1)))
    assert isinstance(r, _HashingReader) and not r.at_eof()
    got = bytearray()
    while chunk := r.read(step):
        assert len(chunk) <= step
        got += chunk
    assert bytes(got) == data and r.count == len(data)
    assert r.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
    assert r.block_at(len(data) - 512, 512) == data[-512:]
