"""Minimal DNS wire format: parse one query's header + question (+ EDNS OPT), build answers.

Only what the embedded DNS server needs on its hot path, written by hand so that answering a
container name costs a few slices and struct calls (dnslib parses the whole packet into objects,
~5k q/s). Names in answers point back at the question (compression pointer 0xC00C), and the
question is copied byte for byte from the query, so a client that randomises the case of its
query name (DNS 0x20) gets exactly its own spelling back.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
EXT_RCODE_BADVERS = 16

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
FLAG_CD = 0x0010
OPCODE_MASK = 0x7800

UDP_PLAIN_MAX = 512  # RFC 1035 limit without EDNS
EDNS_UDP_SIZE = 1232  # what we advertise (DNS flag day 2020 recommendation)
TCP_MAX = 65535

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_U16 = struct.Struct("!H")
_NAME_PTR_QNAME = b"\xc0\x0c"  # pointer to offset 12: the question's name
_IN_ADDR_ARPA = (b"in-addr", b"arpa")
_LABEL_OK = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


class WireError(ValueError):
    """The packet is not a well-formed DNS query. ``id`` is set when a header was read."""

    def __init__(self, message: str, query_id: int | None = None, flags: int = 0) -> None:
        super().__init__(message)
        self.query_id = query_id
        self.flags = flags


@dataclass(frozen=True, slots=True)
class Edns:
    udp_size: int
    version: int
    do: bool


@dataclass(frozen=True, slots=True)
class Query:
    """The parts of a query the server looks at."""

    id: int
    flags: int
    qname: bytes  # wire form exactly as sent (uncompressed, original case)
    qtype: int
    qclass: int
    question_end: int  # offset just past the question section
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags & OPCODE_MASK) >> 11

    def max_udp_size(self) -> int:
        if self.edns is None:
            return UDP_PLAIN_MAX
        return max(UDP_PLAIN_MAX, min(self.edns.udp_size, TCP_MAX))


def _read_name(data: bytes, pos: int, *, allow_pointer: bool) -> int:
    """Return the offset just past the (possibly compressed) name that starts at ``pos``."""
    total = 0
    while True:
        if pos >= len(data):
            raise WireError("name runs past the end of the packet")
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if not allow_pointer:
                raise WireError("compression pointer in the question")
            if pos + 2 > len(data):
                raise WireError("truncated compression pointer")
            return pos + 2
        if length & 0xC0:
            raise WireError("unsupported label type")
        total += length + 1
        if total > 255:
            raise WireError("name longer than 255 bytes")
        pos += length + 1


def skip_name(data: bytes, pos: int) -> int:
    """The offset just past the (possibly compressed) name at ``pos`` (:class:`WireError`)."""
    return _read_name(data, pos, allow_pointer=True)


def parse_query(data: bytes) -> Query:
    """Parse a query; raise :class:`WireError` when it is malformed or not a query."""
    if len(data) < HEADER.size:
        raise WireError("packet shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & FLAG_QR:
        raise WireError("not a query", qid, flags)
    if qdcount != 1:
        raise WireError("query must hold exactly one question", qid, flags)
    try:
        end = _read_name(data, HEADER.size, allow_pointer=False)
        if end + 4 > len(data):
            raise WireError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", data, end)
        question_end = end + 4
        edns = _parse_additional(data, question_end, ancount + nscount, arcount)
    except WireError as exc:
        raise WireError(str(exc), qid, flags) from None
    return Query(qid, flags, data[HEADER.size : end], qtype, qclass, question_end, edns)


def _parse_additional(data: bytes, pos: int, skip: int, arcount: int) -> Edns | None:
    edns: Edns | None = None
    for index in range(skip + arcount):
        name_start = pos
        pos = _read_name(data, pos, allow_pointer=True)
        if pos + _RR_FIXED.size > len(data):
            raise WireError("truncated resource record")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
        pos += _RR_FIXED.size + rdlength
        if pos > len(data):
            raise WireError("resource record data runs past the end")
        if index >= skip and rtype == TYPE_OPT:
            if edns is not None:
                raise WireError("more than one OPT record")
            if data[name_start] != 0:
                raise WireError("OPT record with a non-root owner")
            edns = Edns(udp_size=rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & 0x8000))
    return edns


def name_to_text(qname: bytes) -> str | None:
    """Lower-case dotted text of a wire name, without the trailing dot.

    Returns ``None`` for the root name and for labels that cannot be a container or network
    name (bytes outside letters, digits, ``-`` and ``_``): such queries are never local.
    """
    labels: list[str] = []
    pos = 0
    while pos < len(qname):
        length = qname[pos]
        if length == 0:
            break
        label = qname[pos + 1 : pos + 1 + length].lower()
        if not label or not _LABEL_OK.issuperset(label):
            return None
        labels.append(label.decode("ascii"))
        pos += length + 1
    if not labels:
        return None
    return ".".join(labels)


def text_to_name(text: str) -> bytes:
    """Wire form of a dotted name (trailing dot optional)."""
    out = bytearray()
    for label in text.rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not raw or len(raw) > 63:
            raise ValueError(f"invalid DNS label in {text!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name too long: {text!r}")
    return bytes(out)


def reverse_ipv4(qname: bytes) -> str | None:
    """``d.c.b.a.in-addr.arpa`` (wire form) → ``"a.b.c.d"``, else ``None``."""
    labels: list[bytes] = []
    pos = 0
    while pos < len(qname) and qname[pos]:
        length = qname[pos]
        labels.append(qname[pos + 1 : pos + 1 + length].lower())
        pos += length + 1
    if len(labels) != 6 or tuple(labels[4:]) != _IN_ADDR_ARPA:
        return None
    octets: list[str] = []
    for raw in reversed(labels[:4]):
        if not raw.isdigit() or len(raw) > 3 or int(raw) > 255:
            return None
        octets.append(str(int(raw)))
    return ".".join(octets)


_IP6_ARPA = (b"ip6", b"arpa")


def reverse_ipv6(qname: bytes) -> str | None:
    """``<32 nibbles reversed>.ip6.arpa`` (wire form) → the IPv6 address, else ``None``."""
    labels: list[bytes] = []
    pos = 0
    while pos < len(qname) and qname[pos]:
        length = qname[pos]
        labels.append(qname[pos + 1 : pos + 1 + length].lower())
        pos += length + 1
    if len(labels) != 34 or tuple(labels[32:]) != _IP6_ARPA:
        return None
    nibbles = [lab.decode("ascii", "replace") for lab in reversed(labels[:32])]
    if any(len(n) != 1 or n not in "0123456789abcdef" for n in nibbles):
        return None
    text = "".join(nibbles)
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex(text))


def aaaa_record(ip: str, ttl: int) -> bytes:
    """An AAAA record whose owner is the question name."""
    raw = socket.inet_pton(socket.AF_INET6, ip)
    return _NAME_PTR_QNAME + _RR_FIXED.pack(TYPE_AAAA, CLASS_IN, ttl, 16) + raw


def a_record(ip: str, ttl: int) -> bytes:
    """An A record whose owner is the question name."""
    return _NAME_PTR_QNAME + _RR_FIXED.pack(TYPE_A, CLASS_IN, ttl, 4) + socket.inet_aton(ip)


def ptr_record(target: str, ttl: int) -> bytes:
    """A PTR record whose owner is the question name, pointing at ``target``."""
    wire = text_to_name(target)
    return _NAME_PTR_QNAME + _RR_FIXED.pack(TYPE_PTR, CLASS_IN, ttl, len(wire)) + wire


def opt_record(ext_rcode: int = 0, *, do: bool = False) -> bytes:
    """Our own minimal OPT record: version 0, no options, DO clear unless ``do``."""
    flags = ((ext_rcode >> 4) & 0xFF) << 24 | (0x8000 if do else 0)
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, EDNS_UDP_SIZE, flags, 0)


def response_flags(query_flags: int, rcode: int) -> int:
    """QR, the query's opcode and RD, RA (we recurse through upstreams), low 4 bits of rcode."""
    return FLAG_QR | (query_flags & (OPCODE_MASK | FLAG_RD)) | FLAG_RA | (rcode & 0xF)


def build_response(
    data: bytes,
    query: Query,
    answers: list[bytes],
    *,
    rcode: int = RCODE_NOERROR,
    max_size: int = UDP_PLAIN_MAX,
    truncate_flag: bool = True,
) -> bytes:
    """A response to ``query`` (whose packet is ``data``) holding ``answers``.

    The question is copied from the query; an OPT record is added when the query had one.
    If the message would exceed ``max_size``, trailing answers are dropped and, when
    ``truncate_flag`` (UDP), TC is set so the client retries over TCP.
    """
    question = data[HEADER.size : query.question_end]
    opt = opt_record(rcode) if query.edns is not None else b""
    flags = response_flags(query.flags, rcode)
    size = HEADER.size + len(question) + len(opt)
    kept = 0
    for rr in answers:
        if size + len(rr) > max_size:
            if truncate_flag:
                flags |= FLAG_TC
            break
        size += len(rr)
        kept += 1
    header = HEADER.pack(query.id, flags, 1, kept, 0, 1 if opt else 0)
    return b"".join([header, question, *answers[:kept], opt])


def error_response(data: bytes, query_id: int, query_flags: int, rcode: int) -> bytes:
    """A header-only (or header + question when parsable) error answer to a bad packet."""
    try:
        query = parse_query(data)
    except WireError:
        return HEADER.pack(query_id, response_flags(query_flags, rcode), 0, 0, 0, 0)
    return build_response(data, query, [], rcode=rcode)


def rcode_of(response: bytes) -> int:
    return response[3] & 0xF


def question_matches(query: bytes, query_end: int, response: bytes) -> bool:
    """Whether ``response`` carries the query's question (name compared case-insensitively).

    Some servers omit the question in error responses; those are accepted.
    """
    if len(response) < HEADER.size:
        return False
    if response[4:6] == b"\x00\x00":
        return True
    if response[4:6] != b"\x00\x01" or len(response) < query_end:
        return False
    name_end = query_end - 4
    return (
        response[HEADER.size : name_end].lower() == query[HEADER.size : name_end].lower()
        and response[name_end:query_end] == query[name_end:query_end]
    )


def with_id(message: bytes, new_id: int) -> bytes:
    return _U16.pack(new_id) + message[2:]
