"""engine.stats._blkio: Docker's blkio_stats from cgroup v1 and v2 files (parsing only; the
kernel's own numbers are read by the integration tests of stats)."""

from __future__ import annotations

from pathlib import Path

from dockyard.engine.stats import _blkio


def test_v1_prefers_the_first_family_that_exists(tmp_path: Path) -> None:
    (tmp_path / "blkio.bfq.io_service_bytes_recursive").write_text("8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n")
    (tmp_path / "blkio.bfq.io_serviced_recursive").write_text("8:0 Read 1\n8:0 Write 2\nTotal 3\n")
    (tmp_path / "blkio.throttle.io_service_bytes_recursive").write_text("Total 0\n")
    out = _blkio(1, {"blkio": str(tmp_path)})
    assert out["io_service_bytes_recursive"] == [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                                                 {"major": 8, "minor": 0, "op": "Write", "value": 8192}]
    assert [e["value"] for e in out["io_serviced_recursive"]] == [1, 2]


def test_v1_without_blkio_and_v2_io_stat(tmp_path: Path) -> None:
    assert _blkio(1, {"cpu": str(tmp_path)}) == {}
    (tmp_path / "io.stat").write_text("253:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n")
    out = _blkio(2, {"": str(tmp_path)})
    assert out["io_service_bytes_recursive"] == [{"major": 253, "minor": 0, "op": "read", "value": 100},
                                                 {"major": 253, "minor": 0, "op": "write", "value": 200}]
    assert [e["value"] for e in out["io_serviced_recursive"]] == [3, 4]
