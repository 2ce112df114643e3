"""Published ports: the PortMapping value and host-port reservation.

A published port is reserved by binding a socket on the host port (TCP: bound, never
listening; UDP: bound, tiny receive buffer) and keeping it open for the container's lifetime,
so no other program or container can take the port. The engine hands the sockets to the
container's shim, so the reservation dies with the container. The sockets never see the
forwarded traffic: `nft` DNATs it in prerouting/output, before local delivery.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable

from .._record import dataclass, replace
from dockyard.errors import Conflict, FailedPrecondition, InvalidArgument

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class PortMapping:
    """One published port: host_ip '' means every host address; host_port 0 means ephemeral."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise InvalidArgument(f"published port {self}: protocol {self.proto!r} is not tcp or udp")
        if not 0 <= self.host_port <= 65535:
            raise InvalidArgument(f"published port {self}: host port {self.host_port} is out of range")
        if not 1 <= self.container_port <= 65535:
            raise InvalidArgument(f"published port {self}: container port {self.container_port} is out of range")
        for what, value in (("host address", self.host_ip), ("container address", self.container_ip)):
            if value or what == "container address":
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise InvalidArgument(f"published port {self}: {what} {value!r} is not an IP address") from None

    @property
    def bind_address(self) -> str:
        """The address the reservation binds: host_ip, or 0.0.0.0 for every address."""
        return self.host_ip or "0.0.0.0"

    def __str__(self) -> str:
        """Docker's `docker port` form: 0.0.0.0:8080->10.88.0.2:80/tcp."""
        return f"{_hostport(self.bind_address, self.host_port)}->{_hostport(self.container_ip, self.container_port)}/{self.proto}"


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _bind(m: PortMapping) -> socket.socket:
    family = socket.AF_INET6 if ":" in m.bind_address else socket.AF_INET
    kind = socket.SOCK_STREAM if m.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)  # non-inheritable (PEP 446); no SO_REUSEADDR on purpose
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_DGRAM:
            # nothing reads it: keep what reaches it (only un-DNAT'd stray datagrams) small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        sock.bind((m.bind_address, m.host_port))
    except OSError as e:
        sock.close()
        where = f"Bind for {_hostport(m.bind_address, m.host_port)} failed"
        if e.errno == errno.EADDRINUSE:
            raise Conflict(f"{where}: port is already allocated") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"{where}: {m.bind_address} is not an address of this host") from None
        raise FailedPrecondition(f"{where}: {e.strerror}") from None
    return sock


def reserve(mappings: Iterable[PortMapping]) -> list[tuple[PortMapping, socket.socket]]:
    """Bind one socket per mapping; returns each mapping with its host port resolved.

    All or nothing: on failure the sockets already made are closed and the error raised
    (Conflict "Bind for 0.0.0.0:8088 failed: port is already allocated" when taken).
    """
    made: list[tuple[PortMapping, socket.socket]] = []
    try:
        for m in mappings:
            sock = _bind(m)
            made.append((m, sock))
            if m.host_port == 0:
                made[-1] = (replace(m, host_port=sock.getsockname()[1]), sock)
    except BaseException:
        release(made)
        raise
    return made


def release(reserved: Iterable[tuple[PortMapping, socket.socket]]) -> None:
    """Close reservation sockets (the engine's own copies once the shim holds them)."""
    for _, sock in reserved:
        sock.close()
