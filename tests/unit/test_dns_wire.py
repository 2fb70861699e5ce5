"""The hand-written DNS wire parser/builder, checked against dnslib as an oracle."""

from __future__ import annotations

import struct

import pytest
from dnslib import AAAA, EDNS0, QTYPE, RR, DNSRecord

from tether.engine import dns_wire as wire
from tether.engine.dns_forward import Upstream, parse_upstream


def q(name: str, qtype: str = "A", **kw: object) -> bytes:
    return bytes(DNSRecord.question(name, qtype, **kw).pack())


def test_parse_simple_query() -> None:
    data = q("Web.Example.")
    query = wire.parse_query(data)
    assert query.id == DNSRecord.parse(data).header.id
    assert query.qtype == wire.TYPE_A
    assert query.qclass == wire.CLASS_IN
    assert query.qname == b"\x03Web\x07Example\x00"
    assert query.question_end == len(data)
    assert query.edns is None
    assert query.opcode == 0
    assert query.max_udp_size() == 512


def test_parse_edns() -> None:
    rec = DNSRecord.question("web", "AAAA")
    rec.add_ar(EDNS0(udp_len=4096, flags="do"))
    query = wire.parse_query(bytes(rec.pack()))
    assert query.edns == wire.Edns(udp_size=4096, version=0, do=True)
    assert query.max_udp_size() == 4096


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00",
        b"\x12\x34" + b"\x00" * 9,  # short header
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",  # question missing
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web",  # name runs off
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # pointer
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00",  # short type
        b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01",  # 2 q
        b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01",  # QR
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03web\x00\x00\x01\x00\x01",  # ar
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 63 * 5,
    ],
)
def test_malformed_packets_raise_wire_error(packet: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_query(packet)


def test_wire_error_keeps_the_id_when_the_header_was_read() -> None:
    bad = b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00"
    with pytest.raises(wire.WireError) as info:
        wire.parse_query(bad)
    assert info.value.query_id == 0x1234
    assert info.value.flags == 0x0100


def test_two_opt_records_are_rejected() -> None:
    rec = DNSRecord.question("web")
    rec.add_ar(EDNS0())
    rec.add_ar(EDNS0())
    with pytest.raises(wire.WireError):
        wire.parse_query(bytes(rec.pack()))


def test_answer_and_authority_records_in_a_query_are_skipped() -> None:
    rec = DNSRecord.question("web")
    rec.add_answer(RR("web", QTYPE.AAAA, rdata=AAAA("::1")))
    rec.add_ar(EDNS0(udp_len=1400))
    query = wire.parse_query(bytes(rec.pack()))
    assert query.edns is not None and query.edns.udp_size == 1400


def test_name_to_text() -> None:
    assert wire.name_to_text(b"\x03WeB\x03Net\x00") == "web.net"
    assert wire.name_to_text(b"\x00") is None
    assert wire.name_to_text(b"\x03w.b\x00") is None
    assert wire.name_to_text(b"\x03w\xffb\x00") is None
    assert wire.name_to_text(b"\x05my_db\x00") == "my_db"


def test_text_to_name() -> None:
    assert wire.text_to_name("web.net.") == b"\x03web\x03net\x00"
    assert wire.text_to_name("web") == b"\x03web\x00"
    with pytest.raises(ValueError):
        wire.text_to_name("a" * 64)


def test_reverse_ipv4() -> None:
    assert wire.reverse_ipv4(wire.text_to_name("3.0.28.172.In-Addr.Arpa")) == "172.28.0.3"
    assert wire.reverse_ipv4(wire.text_to_name("0.28.172.in-addr.arpa")) is None
    assert wire.reverse_ipv4(wire.text_to_name("300.0.28.172.in-addr.arpa")) is None
    assert wire.reverse_ipv4(wire.text_to_name("x.0.28.172.in-addr.arpa")) is None
    assert wire.reverse_ipv4(wire.text_to_name("web")) is None


def test_build_response_parses_with_dnslib() -> None:
    data = q("WEB.")
    query = wire.parse_query(data)
    resp = wire.build_response(
        data, query, [wire.a_record("10.0.0.2", 600), wire.a_record("10.0.0.3", 600)]
    )
    rec = DNSRecord.parse(resp)
    assert rec.header.id == query.id
    assert rec.header.qr == 1 and rec.header.ra == 1 and rec.header.aa == 0
    assert rec.header.rd == 1
    assert str(rec.q.qname) == "WEB."
    assert [str(a.rdata) for a in rec.rr] == ["10.0.0.2", "10.0.0.3"]
    assert {a.ttl for a in rec.rr} == {600}
    assert str(rec.rr[0].rname) == "WEB."


def test_ptr_record() -> None:
    data = q("2.0.0.10.in-addr.arpa", "PTR")
    query = wire.parse_query(data)
    rec = DNSRecord.parse(wire.build_response(data, query, [wire.ptr_record("web.net", 600)]))
    assert rec.rr[0].rtype == QTYPE.PTR
    assert str(rec.rr[0].rdata) == "web.net."


def test_truncation_sets_tc_and_drops_answers() -> None:
    data = q("web")
    query = wire.parse_query(data)
    answers = [wire.a_record(f"10.0.{i // 250}.{i % 250}", 600) for i in range(100)]
    udp = wire.build_response(data, query, answers)
    assert len(udp) <= 512
    rec = DNSRecord.parse(udp)
    assert rec.header.tc == 1
    assert 0 < len(rec.rr) < 100
    tcp = wire.build_response(data, query, answers, max_size=65535, truncate_flag=False)
    rec = DNSRecord.parse(tcp)
    assert rec.header.tc == 0 and len(rec.rr) == 100


def test_response_to_edns_query_carries_opt() -> None:
    rec = DNSRecord.question("web")
    rec.add_ar(EDNS0(udp_len=4096))
    data = bytes(rec.pack())
    query = wire.parse_query(data)
    resp = DNSRecord.parse(wire.build_response(data, query, [wire.a_record("10.0.0.2", 600)]))
    opts = [r for r in resp.ar if r.rtype == QTYPE.OPT]
    assert len(opts) == 1
    assert opts[0].rclass == wire.EDNS_UDP_SIZE


def test_badvers_goes_into_the_opt_record() -> None:
    rec = DNSRecord.question("web")
    rec.add_ar(EDNS0(version=1))
    data = bytes(rec.pack())
    query = wire.parse_query(data)
    resp = wire.build_response(data, query, [], rcode=wire.EXT_RCODE_BADVERS)
    assert resp[3] & 0xF == 0
    opt_ttl = struct.unpack("!I", resp[-6:-2])[0]
    assert opt_ttl >> 24 == 1


def test_error_response_for_unparsable_query() -> None:
    resp = wire.error_response(b"\xab\xcd\x01\x00\x00\x02", 0xABCD, 0x0100, wire.RCODE_FORMERR)
    rec = DNSRecord.parse(resp)
    assert rec.header.id == 0xABCD
    assert rec.header.rcode == wire.RCODE_FORMERR


def test_question_matches() -> None:
    data = q("web.example")
    query = wire.parse_query(data)
    same = wire.build_response(q("WEB.example"), wire.parse_query(q("WEB.example")), [])
    other = wire.build_response(q("db.example"), wire.parse_query(q("db.example")), [])
    other_type = wire.build_response(
        q("web.example", "MX"), wire.parse_query(q("web.example", "MX")), []
    )
    assert wire.question_matches(data, query.question_end, same)
    assert not wire.question_matches(data, query.question_end, other)
    assert not wire.question_matches(data, query.question_end, other_type)
    assert wire.question_matches(data, query.question_end, b"\x00\x01\x81\x82" + b"\x00" * 8)
    assert not wire.question_matches(data, query.question_end, b"\x00")


def test_with_id() -> None:
    assert wire.with_id(b"\x00\x01rest", 0xBEEF) == b"\xbe\xefrest"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.8.8.8", Upstream("8.8.8.8", 53)),
        ("127.0.0.53:5353", Upstream("127.0.0.53", 5353)),
        ("::1", Upstream("::1", 53)),
        ("[2001:db8::1]:54", Upstream("2001:db8::1", 54)),
        (" 1.1.1.1 ", Upstream("1.1.1.1", 53)),
    ],
)
def test_parse_upstream(text: str, expected: Upstream) -> None:
    assert parse_upstream(text) == expected


@pytest.mark.parametrize("text", ["dns.google", "1.2.3.4:0", "1.2.3.4:x", "[::1", "[::1]x", ""])
def test_parse_upstream_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_upstream(text)
