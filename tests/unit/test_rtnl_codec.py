"""rtnetlink message encoding and decoding, without a socket (dockyard.network.rtnl's codec)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from dockyard.errors import InvalidArgument
from dockyard.network import rtnl


def test_attr_is_padded_to_four_bytes():
    a = rtnl.attr_str(rtnl.IFLA_IFNAME, "eth0")  # 4 header + 5 data → 12
    assert a == struct.pack("=HH", 9, rtnl.IFLA_IFNAME) + b"eth0\0" + b"\0\0\0"
    assert rtnl.attr_u32(rtnl.IFLA_MTU, 1500) == struct.pack("=HHI", 8, rtnl.IFLA_MTU, 1500)


def test_parse_attrs_round_trip_and_nested_flag_masked():
    buf = (rtnl.attr_str(rtnl.IFLA_IFNAME, "br0") + rtnl.attr_u32(rtnl.IFLA_MTU, 9000)
           + rtnl.nest(rtnl.IFLA_LINKINFO, rtnl.attr_str(rtnl.IFLA_INFO_KIND, "bridge")))
    a = rtnl.parse_attrs(buf)
    assert a[rtnl.IFLA_IFNAME] == b"br0\0"
    assert struct.unpack("=I", a[rtnl.IFLA_MTU]) == (9000,)
    assert rtnl.parse_attrs(a[rtnl.IFLA_LINKINFO])[rtnl.IFLA_INFO_KIND] == b"bridge\0"


def test_parse_attrs_stops_at_truncated_attribute():
    good = rtnl.attr_u32(rtnl.IFLA_MTU, 1)
    bad = struct.pack("=HH", 200, rtnl.IFLA_IFNAME) + b"xx"
    assert rtnl.parse_attrs(good + bad) == {rtnl.IFLA_MTU: struct.pack("=I", 1)}


def test_message_header_and_split():
    body = rtnl.ifinfo(7, rtnl.IFF_UP, rtnl.IFF_UP)
    m = rtnl.message(rtnl.RTM_SETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK, 42, body)
    assert struct.unpack_from("=IHHII", m) == (16 + 16, rtnl.RTM_SETLINK, 5, 42, 0)
    assert list(rtnl.split_messages(m + m)) == [(rtnl.RTM_SETLINK, 5, 42, body)] * 2
    assert struct.unpack("=BxHiII", body) == (0, 0, 7, 1, 1)


def _error(code: int, flags: int = 0, tlvs: bytes = b"", echoed_len: int = 16) -> bytes:
    echoed = struct.pack("=IHHII", echoed_len, rtnl.RTM_NEWLINK, 0, 1, 0)
    return struct.pack("=i", -code) + echoed + tlvs


def test_parse_error_plain_ack_and_extack():
    assert rtnl.parse_error(_error(0), 0) == (0, "")
    assert rtnl.parse_error(_error(errno.EEXIST), 0) == (errno.EEXIST, "")
    tlv = rtnl.attr_str(rtnl.NLMSGERR_ATTR_MSG, "Invalid prefix")
    flags = rtnl.NLM_F_CAPPED | rtnl.NLM_F_ACK_TLVS
    assert rtnl.parse_error(_error(errno.EINVAL, flags, tlv), flags) == (errno.EINVAL, "Invalid prefix")


def test_parse_error_uncapped_skips_the_whole_echoed_request():
    request_body = b"\x01" * 20
    payload = (struct.pack("=i", -errno.ENODEV) + struct.pack("=IHHII", 36, rtnl.RTM_SETLINK, 5, 1, 0)
               + request_body + rtnl.attr_str(rtnl.NLMSGERR_ATTR_MSG, "no such device"))
    assert rtnl.parse_error(payload, rtnl.NLM_F_ACK_TLVS) == (errno.ENODEV, "no such device")


def test_os_error_is_errno_faithful_and_names_the_object():
    e = rtnl.os_error(errno.EEXIST, "add bridge br0", "kernel says")
    assert isinstance(e, FileExistsError) and e.errno == errno.EEXIST
    assert str(e) == "[Errno 17] add bridge br0: File exists (kernel says)"


def test_link_from_newlink_payload():
    payload = (rtnl.ifinfo(5, rtnl.IFF_UP | 0x1000, 0) + rtnl.attr_str(rtnl.IFLA_IFNAME, "vethabc")
               + rtnl.attr(rtnl.IFLA_ADDRESS, bytes.fromhex("02420a0a0002")) + rtnl.attr_u32(rtnl.IFLA_MTU, 1400)
               + rtnl.attr_u32(rtnl.IFLA_MASTER, 3)
               + rtnl.nest(rtnl.IFLA_LINKINFO, rtnl.attr_str(rtnl.IFLA_INFO_KIND, "veth")))
    assert rtnl.link_from(payload) == rtnl.Link(5, "vethabc", "veth", 3, "02:42:0a:0a:00:02", True, 1400)
    bare = rtnl.ifinfo(1, 0, 0) + rtnl.attr_str(rtnl.IFLA_IFNAME, "lo")
    assert rtnl.link_from(bare) == rtnl.Link(1, "lo", "", None, "", False, 0)


def test_route_from_payload():
    hdr = struct.pack("=BBBBBBBBI", socket.AF_INET, 16, 0, 0, 254, 2, 253, 1, 0)
    p = hdr + rtnl.attr(rtnl.RTA_DST, socket.inet_aton("10.200.0.0")) + rtnl.attr_u32(rtnl.RTA_OIF, 9)
    assert rtnl.route_from(p) == rtnl.Route("10.200.0.0/16", None, 9, 254, 2, 253, socket.AF_INET)
    hdr = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)
    p = hdr + rtnl.attr(rtnl.RTA_GATEWAY, socket.inet_aton("10.200.0.1")) + rtnl.attr_u32(rtnl.RTA_TABLE, 254)
    assert rtnl.route_from(p).dst == "default" and rtnl.route_from(p).gateway == "10.200.0.1"


@pytest.mark.parametrize("cidr,want", [
    ("10.200.0.1/16", (socket.AF_INET, bytes([10, 200, 0, 1]), 16)),
    ("10.0.0.5", (socket.AF_INET, bytes([10, 0, 0, 5]), 32)),
    ("fd00::1/64", (socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "fd00::1"), 64)),
])
def test_parse_cidr(cidr, want):
    assert rtnl.parse_cidr(cidr) == want


@pytest.mark.parametrize("cidr", ["10.0.0.1/33", "10.0.0.1/", "10.0.0.1/x", "300.1.1.1/8", "", "fd00::1/129"])
def test_parse_cidr_refuses(cidr):
    with pytest.raises(InvalidArgument):
        rtnl.parse_cidr(cidr)


def test_broadcast():
    assert rtnl.broadcast(bytes([10, 200, 0, 1]), 16) == bytes([10, 200, 255, 255])
    assert rtnl.broadcast(bytes([10, 0, 0, 1]), 31) is None
    assert rtnl.broadcast(socket.inet_pton(socket.AF_INET6, "fd00::1"), 64) is None


def test_mac_and_ifname_checks():
    assert rtnl.parse_mac("02:42:AC:11:00:02") == bytes.fromhex("0242ac110002")
    assert rtnl.format_mac(bytes.fromhex("0242ac110002")) == "02:42:ac:11:00:02"
    for bad in ("02:42:ac:11:00", "02-42-ac-11-00-02", "zz:42:ac:11:00:02", "2:42:ac:11:00:02:"):
        with pytest.raises(InvalidArgument):
            rtnl.parse_mac(bad)
    assert rtnl.check_ifname("dyt0123456789ab") == "dyt0123456789ab"  # 15 characters
    for bad in ("", "dyt0123456789abc", "a/b", "a b", "eth0:1", ".."):
        with pytest.raises(InvalidArgument):
            rtnl.check_ifname(bad)


def test_invalid_name_is_refused_before_any_socket():
    nl = rtnl.Netlink.__new__(rtnl.Netlink)  # no socket: a request would fail loudly
    with pytest.raises(InvalidArgument, match="interface name"):
        nl.link("x" * 16)
