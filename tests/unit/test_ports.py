"""PortMapping validation and host-port reservation on 127.0.0.1 (no root needed)."""

from __future__ import annotations

import socket

import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.network import ports
from dockyard.network.ports import PortMapping


def test_mapping_str_and_bind_address() -> None:
    m = PortMapping("tcp", "", 8080, "10.88.0.2", 80)
    assert m.bind_address == "0.0.0.0"
    assert str(m) == "0.0.0.0:8080->10.88.0.2:80/tcp"
    assert str(PortMapping("udp", "::1", 53, "10.88.0.2", 53)) == "[::1]:53->10.88.0.2:53/udp"


@pytest.mark.parametrize("args", [
    ("sctp", "", 1, "10.0.0.2", 80),
    ("tcp", "", 65536, "10.0.0.2", 80),
    ("tcp", "", 1, "10.0.0.2", 0),
    ("tcp", "localhost", 1, "10.0.0.2", 80),
    ("tcp", "", 1, "", 80),
])
def test_mapping_rejects_bad_values(args: tuple) -> None:
    with pytest.raises(InvalidArgument, match="published port"):
        PortMapping(*args)


def test_reserve_resolves_ephemeral_ports_and_keeps_them() -> None:
    reserved = ports.reserve([PortMapping("tcp", "127.0.0.1", 0, "10.0.0.2", 80),
                              PortMapping("udp", "127.0.0.1", 0, "10.0.0.2", 53)])
    try:
        (mt, st), (mu, su) = reserved
        assert mt.host_port == st.getsockname()[1] != 0
        assert mu.host_port == su.getsockname()[1] != 0
        assert st.type == socket.SOCK_STREAM and su.type == socket.SOCK_DGRAM
        assert not st.get_inheritable() and not su.get_inheritable()
        with pytest.raises(Conflict) as e:
            ports.reserve([PortMapping("tcp", "127.0.0.1", mt.host_port, "10.0.0.3", 80)])
        assert str(e.value) == f"Bind for 127.0.0.1:{mt.host_port} failed: port is already allocated"
    finally:
        ports.release(reserved)


def test_reserve_is_all_or_nothing() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    try:
        with pytest.raises(Conflict):
            ports.reserve([PortMapping("tcp", "127.0.0.1", free, "10.0.0.2", 80),
                           PortMapping("tcp", "127.0.0.1", taken.getsockname()[1], "10.0.0.2", 81)])
        ports.release(ports.reserve([PortMapping("tcp", "127.0.0.1", free, "10.0.0.2", 80)]))
    finally:
        taken.close()


def test_reserve_names_an_address_that_is_not_local() -> None:
    with pytest.raises(InvalidArgument, match="203.0.113.254 is not an address of this host"):
        ports.reserve([PortMapping("tcp", "203.0.113.254", 8080, "10.0.0.2", 80)])
