"""DNS messages on the wire (RFC 1035, EDNS from RFC 6891): parse and build them.

Names are text in presentation form without the trailing dot ("" is the root); a label byte
that is a dot, a backslash or not printable is escaped (`\\.`, `\\\\`, `\\DDD`), so any name
survives a round trip. Reading follows compression pointers (backwards only, bounded);
writing compresses repeated suffixes. Names inside PTR/CNAME/NS data are stored uncompressed,
so a `Record` is self-contained. The types are NamedTuples (immutable and typed): the DNS
server is one process per host, and `typing` costs it a third of what `dataclasses` does.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1
CLASS_ANY = 255

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080

UDP_LIMIT = 512          # a UDP reply's limit without EDNS
EDNS_PAYLOAD = 1232      # the payload size this side advertises (DNS flag day 2020)
MAX_MESSAGE = 65535      # TCP's two-byte length prefix

_NAME_TYPES = (TYPE_NS, TYPE_CNAME, TYPE_PTR)
_HEADER = struct.Struct("!6H")
_RR_FIXED = struct.Struct("!HHIH")


class WireError(ValueError):
    """Bytes that are not a well-formed DNS message (or a message that cannot be encoded)."""


class Question(NamedTuple):
    name: str
    qtype: int
    qclass: int = CLASS_IN


class Record(NamedTuple):
    name: str
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes

    def text(self) -> str:
        """The data in presentation form: an address, a name, or hex for other types."""
        if self.rtype == TYPE_A and len(self.rdata) == 4:
            return socket.inet_ntop(socket.AF_INET, self.rdata)
        if self.rtype == TYPE_AAAA and len(self.rdata) == 16:
            return socket.inet_ntop(socket.AF_INET6, self.rdata)
        if self.rtype in _NAME_TYPES:
            return _read_name(self.rdata, 0)[0]
        return self.rdata.hex()


class Message(NamedTuple):
    id: int
    flags: int
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authorities: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)

    def edns_payload(self) -> int | None:
        """The UDP payload size from the OPT record, or None without EDNS."""
        for rr in self.additionals:
            if rr.rtype == TYPE_OPT:
                return rr.rclass
        return None

    def udp_limit(self) -> int:
        """How big a UDP reply to this query may be."""
        size = self.edns_payload()
        return UDP_LIMIT if size is None else max(UDP_LIMIT, min(size, EDNS_PAYLOAD))


# ---- names -------------------------------------------------------------------

def _label_text(raw: bytes) -> str:
    out = []
    for b in raw:
        if b in (0x2E, 0x5C):
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def name_labels(name: str) -> list[bytes]:
    """Split a presentation-form name into raw labels (escapes undone, trailing dot allowed)."""
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(name) if name != "." else 0
    while i < n:
        c = name[i]
        if c == "\\":
            if name[i + 1:i + 4].isdigit() and len(name[i + 1:i + 4]) == 3:
                value = int(name[i + 1:i + 4])
                if value > 255:
                    raise WireError(f"bad escape in name {name!r}")
                cur.append(value)
                i += 4
                continue
            if i + 1 >= n:
                raise WireError(f"name ends in a backslash: {name!r}")
            c = name[i + 1]
            i += 1
        elif c == ".":
            if not cur:
                raise WireError(f"empty label in name {name!r}")
            labels.append(bytes(cur))
            cur = bytearray()
            i += 1
            continue
        code = ord(c)
        if code > 255:
            raise WireError(f"non-ASCII character in name {name!r}")
        cur.append(code)
        i += 1
    if cur:
        labels.append(bytes(cur))
    for label in labels:
        if len(label) > 63:
            raise WireError(f"label longer than 63 bytes in {name!r}")
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        raise WireError(f"name longer than 255 bytes: {name!r}")
    return labels


def encode_name(name: str) -> bytes:
    """A name in uncompressed wire form."""
    return b"".join(bytes((len(label),)) + label for label in name_labels(name)) + b"\0"


def _read_name(data: bytes, off: int) -> tuple[str, int]:
    """Read a possibly compressed name at `off`; returns it and the offset just after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    length = 1
    while True:
        if off >= len(data):
            raise WireError("name runs past the end of the message")
        n = data[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(data):
                raise WireError("truncated compression pointer")
            target = ((n & 0x3F) << 8) | data[off + 1]
            if target >= off:
                raise WireError("compression pointer does not point backwards")
            jumps += 1
            if jumps > 64:
                raise WireError("too many compression pointers")
            if end < 0:
                end = off + 2
            off = target
            continue
        if n & 0xC0:
            raise WireError(f"unsupported label type 0x{n & 0xC0:02x}")
        off += 1
        if n == 0:
            break
        if off + n > len(data):
            raise WireError("label runs past the end of the message")
        length += n + 1
        if length > 255:
            raise WireError("name longer than 255 bytes")
        labels.append(_label_text(data[off:off + n]))
        off += n
    return ".".join(labels), (end if end >= 0 else off)


# ---- parse -------------------------------------------------------------------

def parse_header(data: bytes) -> tuple[int, int]:
    """The ID and flags of a message, for answering one that does not parse."""
    if len(data) < 12:
        raise WireError(f"message shorter than a header ({len(data)} bytes)")
    ident, flags = struct.unpack_from("!HH", data)
    return ident, flags


def _read_records(data: bytes, off: int, count: int) -> tuple[tuple[Record, ...], int]:
    out = []
    for _ in range(count):
        name, off = _read_name(data, off)
        if off + 10 > len(data):
            raise WireError("record header runs past the end of the message")
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, off)
        off += 10
        if off + rdlen > len(data):
            raise WireError("record data runs past the end of the message")
        rdata = data[off:off + rdlen]
        if rtype in _NAME_TYPES:
            target, stop = _read_name(data, off)
            if stop != off + rdlen:
                raise WireError("record data length does not match its name")
            rdata = encode_name(target)
        out.append(Record(name, rtype, rclass, ttl, rdata))
        off += rdlen
    return tuple(out), off


def parse(data: bytes) -> Message:
    """Parse a whole message; raises WireError on anything malformed."""
    if len(data) < 12:
        raise WireError(f"message shorter than a header ({len(data)} bytes)")
    if len(data) > MAX_MESSAGE:
        raise WireError("message longer than 65535 bytes")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    off = 12
    questions = []
    for _ in range(qdcount):
        name, off = _read_name(data, off)
        if off + 4 > len(data):
            raise WireError("question runs past the end of the message")
        qtype, qclass = struct.unpack_from("!HH", data, off)
        off += 4
        questions.append(Question(name, qtype, qclass))
    answers, off = _read_records(data, off, ancount)
    authorities, off = _read_records(data, off, nscount)
    additionals, off = _read_records(data, off, arcount)
    return Message(ident, flags, tuple(questions), answers, authorities, additionals)


# ---- build -------------------------------------------------------------------

class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray(12)
        self.suffixes: dict[tuple[bytes, ...], int] = {}

    def name(self, name: str) -> None:
        labels = name_labels(name)
        for i in range(len(labels)):
            key = tuple(label.lower() for label in labels[i:])
            at = self.suffixes.get(key)
            if at is not None:
                self.buf += struct.pack("!H", 0xC000 | at)
                return
            if len(self.buf) < 0x4000:
                self.suffixes[key] = len(self.buf)
            self.buf.append(len(labels[i]))
            self.buf += labels[i]
        self.buf.append(0)

    def record(self, rr: Record) -> None:
        self.name(rr.name)
        self.buf += struct.pack("!HHI", rr.rtype, rr.rclass, rr.ttl)
        if rr.rtype in _NAME_TYPES:
            at = len(self.buf)
            self.buf += b"\0\0"
            self.name(_read_name(rr.rdata, 0)[0])
            struct.pack_into("!H", self.buf, at, len(self.buf) - at - 2)
        else:
            if len(rr.rdata) > 0xFFFF:
                raise WireError("record data longer than 65535 bytes")
            self.buf += struct.pack("!H", len(rr.rdata)) + rr.rdata


def _encode(msg: Message) -> bytes:
    w = _Writer()
    for q in msg.questions:
        w.name(q.name)
        w.buf += struct.pack("!HH", q.qtype, q.qclass)
    for rr in msg.answers + msg.authorities + msg.additionals:
        w.record(rr)
    _HEADER.pack_into(w.buf, 0, msg.id, msg.flags, len(msg.questions), len(msg.answers),
                      len(msg.authorities), len(msg.additionals))
    return bytes(w.buf)


def encode(msg: Message, limit: int = MAX_MESSAGE) -> bytes:
    """Wire form of `msg`. Past `limit` the records are dropped and TC is set (the OPT record
    stays), as a server does for a UDP reply that does not fit."""
    data = _encode(msg)
    if len(data) <= limit:
        return data
    opt = tuple(rr for rr in msg.additionals if rr.rtype == TYPE_OPT)
    data = _encode(msg._replace(flags=msg.flags | TC, answers=(), authorities=(), additionals=opt))
    if len(data) > limit:
        raise WireError(f"message does not fit in {limit} bytes even truncated")
    return data


def opt_record(payload: int = EDNS_PAYLOAD) -> Record:
    return Record("", TYPE_OPT, payload, 0, b"")


def make_query(name: str, qtype: int, ident: int, edns: int | None = None,
               recursion: bool = True) -> Message:
    extra = (opt_record(edns),) if edns is not None else ()
    return Message(ident & 0xFFFF, RD if recursion else 0, (Question(name, qtype, CLASS_IN),),
                   additionals=extra)


def make_response(query: Message, rcode: int = NOERROR, answers: tuple[Record, ...] = (),
                  authoritative: bool = True) -> Message:
    """A reply to `query`: its ID, opcode, RD bit and questions; an OPT record if it had one."""
    flags = QR | (query.flags & 0x7800) | (query.flags & RD) | RA | (rcode & 0xF)
    if authoritative:
        flags |= AA
    extra = (opt_record(),) if query.edns_payload() is not None else ()
    return Message(query.id, flags, query.questions, answers, (), extra)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply with `rcode` to raw bytes that may not parse; None if they are not
    a query at all (too short, or already a response)."""
    try:
        ident, flags = parse_header(data)
    except WireError:
        return None
    if flags & QR:
        return None
    return _HEADER.pack(ident, QR | (flags & 0x7800) | (flags & RD) | RA | rcode, 0, 0, 0, 0)


def address_record(name: str, ip: str, ttl: int) -> Record:
    """An A or AAAA record, by the address's family."""
    if ":" in ip:
        return Record(name, TYPE_AAAA, CLASS_IN, ttl, socket.inet_pton(socket.AF_INET6, ip))
    return Record(name, TYPE_A, CLASS_IN, ttl, socket.inet_pton(socket.AF_INET, ip))


def ptr_record(name: str, target: str, ttl: int) -> Record:
    return Record(name, TYPE_PTR, CLASS_IN, ttl, encode_name(target))


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name of an address."""
    if ":" in ip:
        nibbles = socket.inet_pton(socket.AF_INET6, ip).hex()
        return ".".join(reversed(nibbles)) + ".ip6.arpa"
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def reverse_address(name: str) -> str | None:
    """The address a reverse-lookup name stands for (canonical text), or None."""
    n = name.lower().rstrip(".")
    try:
        if n.endswith(".in-addr.arpa"):
            parts = n[:-13].split(".")
            if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
                return None
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, ".".join(reversed(parts))))
        if n.endswith(".ip6.arpa"):
            parts = n[:-9].split(".")
            if len(parts) != 32 or not all(len(p) == 1 for p in parts):
                return None
            return socket.inet_ntop(socket.AF_INET6, bytes.fromhex("".join(reversed(parts))))
    except (OSError, ValueError):
        return None
    return None
