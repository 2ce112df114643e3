"""dnswire: DNS messages encode and decode (RFC 1035), compression, truncation, bad input."""

from __future__ import annotations

import struct

import pytest

from dockyard.network import dnswire as w


def test_query_round_trip() -> None:
    q = w.make_query("Web.Example.", w.TYPE_A, 0xBEEF)
    data = w.encode(q)
    assert data[:2] == b"\xbe\xef"
    m = w.parse(data)
    assert m.id == 0xBEEF and not m.is_response and m.flags & w.RD
    assert m.questions == (w.Question("Web.Example", w.TYPE_A, w.CLASS_IN),)
    assert m.edns_payload() is None and m.udp_limit() == 512


def test_response_round_trip_with_records() -> None:
    q = w.parse(w.encode(w.make_query("web", w.TYPE_A, 7, edns=4096)))
    assert q.edns_payload() == 4096 and q.udp_limit() == w.EDNS_PAYLOAD
    answers = (w.address_record("web", "10.1.2.3", 600), w.address_record("web", "fd00::5", 600),
               w.ptr_record("3.2.1.10.in-addr.arpa", "web.net", 30))
    r = w.make_response(q, w.NOERROR, answers)
    m = w.parse(w.encode(r))
    assert m.is_response and m.rcode == w.NOERROR and m.id == 7 and m.flags & w.AA and m.flags & w.RD
    assert m.questions == q.questions
    assert [a.text() for a in m.answers] == ["10.1.2.3", "fd00::5", "web.net"]
    assert [a.ttl for a in m.answers] == [600, 600, 30]
    assert m.edns_payload() == w.EDNS_PAYLOAD            # the OPT record is echoed


@pytest.mark.parametrize("rcode", [w.NXDOMAIN, w.SERVFAIL, w.NOERROR])
def test_empty_responses(rcode: int) -> None:
    q = w.make_query("nothing.here", w.TYPE_AAAA, 99)
    m = w.parse(w.encode(w.make_response(q, rcode, authoritative=False)))
    assert m.rcode == rcode and m.answers == () and m.questions == q.questions
    assert not m.flags & w.AA


def test_compression_on_write_and_read() -> None:
    q = w.make_query("a.long.domain.example", w.TYPE_A, 1)
    answers = tuple(w.address_record("a.long.domain.example", f"10.0.0.{i}", 60) for i in range(5))
    data = w.encode(w.make_response(q, w.NOERROR, answers))
    assert data.count(b"\x06domain") == 1                 # written once, then pointers
    assert data.count(b"\xc0\x0c") == 5                   # each answer points at the question name
    m = w.parse(data)
    assert [a.name for a in m.answers] == ["a.long.domain.example"] * 5


def test_hand_built_pointers_are_followed() -> None:
    header = struct.pack("!6H", 1, w.QR, 1, 1, 0, 0)
    question = b"\x03foo\x07example\x00" + struct.pack("!HH", w.TYPE_PTR, 1)
    # answer name: "bar" + pointer to "example" (offset 12 + 4); rdata: "x" + pointer to the question name
    rdata = b"\x01x\xc0\x0c"
    answer = b"\x03bar\xc0\x10" + struct.pack("!HHIH", w.TYPE_PTR, 1, 5, len(rdata)) + rdata
    m = w.parse(header + question + answer)
    assert m.questions[0].name == "foo.example"
    assert m.answers[0].name == "bar.example"
    assert m.answers[0].text() == "x.foo.example"
    assert m.answers[0].rdata == w.encode_name("x.foo.example")   # stored uncompressed


def test_odd_labels_survive() -> None:
    name = "a\\.b.c\\\\d.\\000\\255x"
    assert w.parse(w.encode(w.make_query(name, w.TYPE_A, 1))).questions[0].name == name
    assert w.name_labels(name) == [b"a.b", b"c\\d", b"\x00\xffx"]
    assert w.encode_name("") == w.encode_name(".") == b"\0"


def test_truncation_sets_tc() -> None:
    q = w.parse(w.encode(w.make_query("big", w.TYPE_A, 5)))
    answers = tuple(w.address_record("big", f"10.0.{i // 250}.{i % 250}", 60) for i in range(60))
    full = w.encode(w.make_response(q, w.NOERROR, answers))
    assert len(full) > 512
    assert not w.parse(full).truncated
    cut = w.encode(w.make_response(q, w.NOERROR, answers), q.udp_limit())
    m = w.parse(cut)
    assert len(cut) <= 512 and m.truncated and m.answers == () and m.questions == q.questions
    q2 = w.parse(w.encode(w.make_query("big", w.TYPE_A, 5, edns=1232)))
    assert not w.parse(w.encode(w.make_response(q2, w.NOERROR, answers), q2.udp_limit())).truncated


def test_error_reply_from_raw_bytes() -> None:
    raw = w.encode(w.make_query("x", w.TYPE_A, 0x1234)) + b"junk"
    reply = w.error_reply(raw[:14], w.FORMERR)
    assert reply is not None
    m = w.parse(reply)
    assert m.id == 0x1234 and m.rcode == w.FORMERR and m.is_response and m.questions == ()
    assert w.error_reply(b"short", w.FORMERR) is None
    assert w.error_reply(reply, w.FORMERR) is None                 # never answer a response


def test_reverse_names() -> None:
    assert w.reverse_name("10.1.2.3") == "3.2.1.10.in-addr.arpa"
    assert w.reverse_address("3.2.1.10.IN-ADDR.ARPA.") == "10.1.2.3"
    six = w.reverse_name("fd00::1")
    assert six.endswith(".ip6.arpa") and w.reverse_address(six) == "fd00::1"
    for bad in ("1.2.3.in-addr.arpa", "x.2.3.4.in-addr.arpa", "999.1.1.1.in-addr.arpa", "web", "1.ip6.arpa"):
        assert w.reverse_address(bad) is None


@pytest.mark.parametrize("data", [
    b"",
    b"\x00" * 11,
    struct.pack("!6H", 1, 0, 1, 0, 0, 0),                              # question missing
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x03abc",                 # name runs off the end
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x03abc\x00\x00",         # type/class cut short
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\0" * 4,    # pointer to itself
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\xc0\x20" + b"\0" * 4,    # pointer forwards
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x01a\xc0\x0c" + b"\0" * 4,   # pointer loop
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x80abc\x00" + b"\0" * 4,     # reserved label type
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\x3fx" * 5 + b"\0" * 5,       # label past the end
    struct.pack("!6H", 1, 0, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\0" + b"\0" * 4,  # > 255
    struct.pack("!6H", 1, 0, 0, 1, 0, 0) + b"\x00" + struct.pack("!HHIH", 1, 1, 0, 10) + b"1234",
    struct.pack("!6H", 1, 0, 0, 1, 0, 0) + b"\x00" + struct.pack("!HHIH", 12, 1, 0, 5) + b"\x01a\x00xx",
    struct.pack("!6H", 1, 0, 65535, 0, 0, 0) + b"\x00\x00\x01\x00\x01",
])
def test_malformed_input_raises_wire_error(data: bytes) -> None:
    with pytest.raises(w.WireError):
        w.parse(data)


def test_fuzzed_input_never_raises_anything_else() -> None:
    import random

    rng = random.Random(1035)
    base = w.encode(w.make_response(w.make_query("a.b.example", w.TYPE_A, 3), w.NOERROR,
                                    (w.address_record("a.b.example", "10.0.0.1", 5),
                                     w.ptr_record("a.b.example", "c.b.example", 5))))
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[:rng.randint(0, len(data))]
        try:
            m = w.parse(bytes(data))
        except w.WireError:
            continue
        for rr in m.answers:
            rr.text()


@pytest.mark.parametrize("name", ["a..b", "x" * 64, ".".join(["abcdefgh"] * 30), "caf\u00e9\u20ac", "a\\"])
def test_unencodable_names_raise(name: str) -> None:
    with pytest.raises(w.WireError):
        w.encode_name(name)
