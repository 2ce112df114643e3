"""A small rtnetlink client: links, bridges, veth pairs, addresses and routes.

Speaks NETLINK_ROUTE over socket(AF_NETLINK, SOCK_RAW) with struct-packed messages, after
rtnetlink(7), netlink(7), linux/if_link.h and linux/veth.h. A socket works in the network
namespace of the thread that opened it and keeps it for life, so `netns.run_in(path, Netlink)`
gives a socket that works inside that namespace. Every change asks for an ACK; a kernel error
becomes OSError(errno, message) naming the link, address or route (plus the kernel's
extended-ack text when it sends one), so EEXIST is FileExistsError, ENODEV stays ENODEV, and
so on. Malformed input (names, CIDRs, MACs) is refused with dockyard.errors.InvalidArgument
before anything is sent. A Netlink object is not thread-safe.
"""

from __future__ import annotations

import errno
import os
import _socket as socket  # the C module: `socket` would import selectors and build IntEnums (~2 ms)
import struct

from .._record import dataclass
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

# netlink(7)
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP_INTR = 0x1, 0x4, 0x10
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # flags of an NLMSG_ERROR
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED, NLA_TYPE_MASK = 0x8000, 0x3FFF
# rtnetlink(7)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
# linux/if_link.h, linux/veth.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_EXT_MASK = 18, 28, 29
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFF_UP = 0x1
# linux/if_addr.h
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
# linux/rtnetlink.h
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
IFNAMSIZ = 16

_HDR = struct.Struct("=IHHII")        # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")    # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")     # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family dst_len src_len tos table proto scope type flags
_NLA = struct.Struct("=HH")           # nlattr: len, type
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str            # IFLA_INFO_KIND: 'bridge', 'veth', ... or '' (lo, physical devices)
    master: int | None   # the index of the bridge it is enslaved to
    mac: str             # 'aa:bb:cc:dd:ee:ff' ('' when the link has no address)
    up: bool             # administratively up (IFF_UP)
    mtu: int


@dataclass(frozen=True)
class Route:
    dst: str             # 'default' or a CIDR
    gateway: str | None
    oif: int | None      # output interface index
    table: int
    protocol: int
    scope: int
    family: int


# ---- codec (pure functions, no socket) ---------------------------------------------------

def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    n = _NLA.size + len(data)
    return _NLA.pack(n, kind) + data + b"\0" * (_pad(n) - n)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def nest(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def parse_attrs(buf: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes from `offset` to the end of `buf` by type (flag bits masked; last one wins)."""
    out: dict[int, bytes] = {}
    end = len(buf)
    while offset + _NLA.size <= end:
        n, kind = _NLA.unpack_from(buf, offset)
        if n < _NLA.size or offset + n > end:
            break
        out[kind & NLA_TYPE_MASK] = bytes(buf[offset + _NLA.size:offset + n])
        offset += _pad(n)
    return out


def message(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(_HDR.size + len(body), mtype, flags, seq, 0) + body


def split_messages(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) of each message in one datagram."""
    offset = 0
    while offset + _HDR.size <= len(buf):
        n, mtype, flags, seq, _pid = _HDR.unpack_from(buf, offset)
        if n < _HDR.size or offset + n > len(buf):
            break
        yield mtype, flags, seq, bytes(buf[offset + _HDR.size:offset + n])
        offset += _pad(n)


def parse_error(payload: bytes, flags: int) -> tuple[int, str]:
    """(errno, extended-ack message) of an NLMSG_ERROR (errno 0 is an ACK) or NLMSG_DONE."""
    if len(payload) < 4:
        return 0, ""
    code = -_I32.unpack_from(payload)[0]
    if not flags & NLM_F_ACK_TLVS or len(payload) < 4 + _HDR.size:
        return code, ""
    echoed = _HDR.unpack_from(payload, 4)[0]
    offset = 4 + (_HDR.size if flags & NLM_F_CAPPED else _pad(echoed))
    text = parse_attrs(payload, offset).get(NLMSGERR_ATTR_MSG, b"")
    return code, text.rstrip(b"\0").decode(errors="replace")


def check_ifname(name: str) -> str:
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or name in (".", "..") \
            or any(c.isspace() or c == ":" for c in name):
        raise InvalidArgument(f"invalid interface name {name!r} (1-15 characters, no '/', ':' or spaces)")
    return name


def parse_mac(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in _HEX for c in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address {mac!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_ip(text: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return family, socket.inet_pton(family, text)
    except OSError:
        raise InvalidArgument(f"invalid IP address {text!r}") from None


def parse_cidr(cidr: str) -> tuple[int, bytes, int]:
    """'10.200.0.1/16' → (AF_INET, packed address, 16); a bare address is a host prefix."""
    address, slash, plen = cidr.partition("/")
    family, packed = parse_ip(address)
    bits = len(packed) * 8
    if not slash:
        return family, packed, bits
    if not plen.isdigit() or int(plen) > bits:
        raise InvalidArgument(f"invalid prefix length in {cidr!r}")
    return family, packed, int(plen)


def broadcast(packed: bytes, plen: int) -> bytes | None:
    """The IPv4 broadcast address of a prefix (none for /31, /32 or IPv6)."""
    if len(packed) != 4 or plen >= 31:
        return None
    return (int.from_bytes(packed, "big") | ((1 << (32 - plen)) - 1)).to_bytes(4, "big")


def link_from(payload: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
    a = parse_attrs(payload, _IFINFO.size)
    kind = parse_attrs(a[IFLA_LINKINFO]).get(IFLA_INFO_KIND, b"") if IFLA_LINKINFO in a else b""
    master = _U32.unpack(a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0
    return Link(index=index, name=a.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace"),
                kind=kind.rstrip(b"\0").decode(), master=master or None,
                mac=format_mac(a.get(IFLA_ADDRESS, b"")), up=bool(flags & IFF_UP),
                mtu=_U32.unpack(a[IFLA_MTU])[0] if IFLA_MTU in a else 0)


def route_from(payload: bytes) -> Route:
    family, dst_len, _s, _t, table, proto, scope, _type, _f = _RTMSG.unpack_from(payload)
    a = parse_attrs(payload, _RTMSG.size)
    if RTA_TABLE in a:
        table = _U32.unpack(a[RTA_TABLE])[0]
    dst = f"{socket.inet_ntop(family, a[RTA_DST])}/{dst_len}" if RTA_DST in a else "default"
    gw = socket.inet_ntop(family, a[RTA_GATEWAY]) if RTA_GATEWAY in a else None
    oif = _U32.unpack(a[RTA_OIF])[0] if RTA_OIF in a else None
    return Route(dst, gw, oif, table, proto, scope, family)


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


# ---- the socket ------------------------------------------------------------------------

class Netlink:
    """A NETLINK_ROUTE socket in the network namespace of the thread that makes it."""

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                try:
                    sock.setsockopt(SOL_NETLINK, opt, 1)
                except OSError:  # older kernels: plain errors, whole request echoed
                    pass
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, mtype: int, flags: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Send one request; return the (type, payload) replies. Dumps end at NLMSG_DONE, other
        requests carry NLM_F_ACK and end at the ACK. A kernel error raises OSError naming `what`.
        A dump the kernel marks inconsistent (changed while dumping) is redone, up to 3 times."""
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        flags |= NLM_F_REQUEST | (0 if dump else NLM_F_ACK)
        for _attempt in range(3):
            self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
            self._sock.send(message(mtype, flags, seq, body))
            replies, intr = self._replies(seq, dump, what)
            if not intr:
                break
        return replies

    def _replies(self, seq: int, dump: bool, what: str) -> tuple[list[tuple[int, bytes]], bool]:
        replies: list[tuple[int, bytes]] = []
        intr = False
        while True:
            for rtype, rflags, rseq, payload in split_messages(self._sock.recv(1 << 16)):
                if rseq != seq:
                    continue  # a late answer to an earlier, interrupted request
                intr |= bool(rflags & NLM_F_DUMP_INTR)
                if rtype in (NLMSG_ERROR, NLMSG_DONE):
                    code, text = parse_error(payload, rflags)
                    if code:
                        raise os_error(code, what, text)
                    if rtype == NLMSG_DONE or not dump:
                        return replies, intr
                else:
                    replies.append((rtype, payload))

    # -- links --

    def link(self, name: str) -> Link | None:
        """The link called `name`, or None."""
        body = ifinfo() + attr_str(IFLA_IFNAME, check_ifname(name)) + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        try:
            replies = self.request(RTM_GETLINK, 0, body, f"link {name}")
        except OSError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return next((link_from(p) for t, p in replies if t == RTM_NEWLINK), None)

    def link_index(self, name: str) -> int | None:
        found = self.link(name)
        return found.index if found else None

    def links(self) -> list[Link]:
        body = ifinfo() + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        return [link_from(p) for t, p in self.request(RTM_GETLINK, NLM_F_DUMP, body, "links") if t == RTM_NEWLINK]

    def _index(self, name: str) -> int:
        index = self.link_index(name)
        if index is None:
            raise os_error(errno.ENODEV, f"link {name}")
        return index

    def _setlink(self, name: str, what: str, *attrs: bytes, flags: int = 0, change: int = 0) -> None:
        body = ifinfo(0, flags, change) + attr_str(IFLA_IFNAME, check_ifname(name)) + b"".join(attrs)
        self.request(RTM_SETLINK, 0, body, f"{what} link {name}")

    def add_bridge(self, name: str, mtu: int | None = None) -> None:
        body = (ifinfo() + attr_str(IFLA_IFNAME, check_ifname(name))
                + (attr_u32(IFLA_MTU, mtu) if mtu else b"")
                + nest(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge")))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"add bridge {name}")

    def add_veth(self, name: str, peer: str, peer_netns_fd: int | None = None, *, mtu: int | None = None,
                 master: str | None = None, up: bool = False, mac: str | None = None,
                 peer_mac: str | None = None) -> None:
        """A veth pair `name` ⇄ `peer`, the peer made directly in the namespace of `peer_netns_fd`
        when given. Optionally in the same message: the MTU of both ends, each end's MAC, and
        this end's bridge `master` and up state (the kernel refuses to bring up a peer made in
        another namespace: ENOTCONN; set it up from inside)."""
        check_ifname(name)
        check_ifname(peer)
        common = attr_u32(IFLA_MTU, mtu) if mtu else b""
        peer_info = (ifinfo() + attr_str(IFLA_IFNAME, peer) + common
                     + (attr(IFLA_ADDRESS, parse_mac(peer_mac)) if peer_mac else b"")
                     + (attr_u32(IFLA_NET_NS_FD, peer_netns_fd) if peer_netns_fd is not None else b""))
        body = (ifinfo(0, IFF_UP if up else 0, IFF_UP if up else 0) + attr_str(IFLA_IFNAME, name) + common
                + (attr(IFLA_ADDRESS, parse_mac(mac)) if mac else b"")
                + (attr_u32(IFLA_MASTER, self._index(master)) if master else b"")
                + nest(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"),
                       nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info))))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"add veth {name} (peer {peer})")

    def del_link(self, name: str, missing_ok: bool = False) -> None:
        body = ifinfo() + attr_str(IFLA_IFNAME, check_ifname(name))
        try:
            self.request(RTM_DELLINK, 0, body, f"delete link {name}")
        except OSError as e:
            if not (missing_ok and e.errno == errno.ENODEV):
                raise

    def set_netns(self, name: str, netns_fd: int) -> None:
        self._setlink(name, "move", attr_u32(IFLA_NET_NS_FD, netns_fd))

    def rename(self, name: str, new: str) -> None:
        body = ifinfo(self._index(name)) + attr_str(IFLA_IFNAME, check_ifname(new))
        self.request(RTM_SETLINK, 0, body, f"rename link {name} to {new}")

    def set_mac(self, name: str, mac: str) -> None:
        self._setlink(name, f"set MAC {mac} of", attr(IFLA_ADDRESS, parse_mac(mac)))

    def set_mtu(self, name: str, mtu: int) -> None:
        self._setlink(name, f"set MTU {mtu} of", attr_u32(IFLA_MTU, mtu))

    def set_up(self, name: str) -> None:
        self._setlink(name, "bring up", flags=IFF_UP, change=IFF_UP)

    def set_down(self, name: str) -> None:
        self._setlink(name, "bring down", flags=0, change=IFF_UP)

    def set_master(self, name: str, bridge: str | None) -> None:
        """Enslave `name` to `bridge` (None: release it from its master)."""
        index = self._index(bridge) if bridge else 0
        self._setlink(name, f"set master {bridge} of" if bridge else "release", attr_u32(IFLA_MASTER, index))

    # -- addresses --

    def _addr_body(self, name: str, cidr: str) -> bytes:
        family, packed, plen = parse_cidr(cidr)
        brd = broadcast(packed, plen)
        return (_IFADDR.pack(family, plen, 0, RT_SCOPE_UNIVERSE, self._index(name)) + attr(IFA_LOCAL, packed)
                + attr(IFA_ADDRESS, packed) + (attr(IFA_BROADCAST, brd) if brd else b""))

    def add_addr(self, name: str, cidr: str) -> None:
        """Add `cidr` (e.g. '10.200.0.1/16') to link `name`, with its broadcast address."""
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, self._addr_body(name, cidr), f"add address {cidr} to link {name}")

    def del_addr(self, name: str, cidr: str) -> None:
        self.request(RTM_DELADDR, 0, self._addr_body(name, cidr), f"delete address {cidr} from link {name}")

    def addrs(self, name: str, family: int = socket.AF_UNSPEC) -> list[str]:
        """The addresses of link `name` as CIDRs (IPv4 and IPv6 unless `family` says which)."""
        index = self._index(name)
        out = []
        body = _IFADDR.pack(family, 0, 0, 0, 0)
        for t, p in self.request(RTM_GETADDR, NLM_F_DUMP, body, f"addresses of link {name}"):
            fam, plen, _flags, _scope, idx = _IFADDR.unpack_from(p)
            if t != RTM_NEWADDR or idx != index:
                continue
            a = parse_attrs(p, _IFADDR.size)
            raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
            if raw:
                out.append(f"{socket.inet_ntop(fam, raw)}/{plen}")
        return out

    # -- routes --

    def _route_body(self, dst: str, gateway: str | None, dev: str | None,
                    metric: int | None, table: int) -> bytes:
        if gateway is None and dev is None:
            raise InvalidArgument(f"route {dst}: needs a gateway or a device")
        gw = parse_ip(gateway) if gateway else None
        if dst == "default":
            family = gw[0] if gw else socket.AF_INET
            packed, plen = b"", 0
        else:
            family, packed, plen = parse_cidr(dst)
        if gw and gw[0] != family:
            raise InvalidArgument(f"route {dst}: gateway {gateway} is of another address family")
        scope = RT_SCOPE_UNIVERSE if gw else RT_SCOPE_LINK
        return (_RTMSG.pack(family, plen, 0, 0, table if table < 256 else 0, RTPROT_BOOT, scope, RTN_UNICAST, 0)
                + attr_u32(RTA_TABLE, table)
                + (attr(RTA_DST, packed) if plen else b"")
                + (attr(RTA_GATEWAY, gw[1]) if gw else b"")
                + (attr_u32(RTA_OIF, self._index(dev)) if dev else b"")
                + (attr_u32(RTA_PRIORITY, metric) if metric is not None else b""))

    @staticmethod
    def _route_name(dst: str, gateway: str | None, dev: str | None) -> str:
        return f"route {dst}" + (f" via {gateway}" if gateway else "") + (f" dev {dev}" if dev else "")

    def add_route(self, dst: str, gateway: str | None, dev: str | None = None, *,
                  metric: int | None = None, table: int = RT_TABLE_MAIN) -> None:
        """Add a route to `dst` ('default' or a CIDR) via `gateway` and/or out of `dev`."""
        body = self._route_body(dst, gateway, dev, metric, table)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, "add " + self._route_name(dst, gateway, dev))

    def del_route(self, dst: str, gateway: str | None, dev: str | None = None, *,
                  metric: int | None = None, table: int = RT_TABLE_MAIN) -> None:
        body = self._route_body(dst, gateway, dev, metric, table)
        self.request(RTM_DELROUTE, 0, body, "delete " + self._route_name(dst, gateway, dev))

    def routes(self, family: int = socket.AF_INET, table: int | None = RT_TABLE_MAIN) -> list[Route]:
        """The unicast routes of `table` (None: every table)."""
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        out = []
        for t, p in self.request(RTM_GETROUTE, NLM_F_DUMP, body, "routes"):
            if t != RTM_NEWROUTE or _RTMSG.unpack_from(p)[7] != RTN_UNICAST:
                continue
            r = route_from(p)
            if table is None or r.table == table:
                out.append(r)
        return out


def os_error(code: int, what: str, detail: str = "") -> OSError:
    """OSError(code, '<what>: <strerror> (<kernel message>)'): EEXIST → FileExistsError, etc."""
    return OSError(code, f"{what}: {os.strerror(code)}" + (f" ({detail})" if detail else ""))
