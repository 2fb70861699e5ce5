"""The embedded DNS server on 127.0.0.1 high ports (no namespaces, no root).

Every test runs on plain asyncio and on uvloop (the daemon's loop). Upstreams are fake DNS
servers on 127.0.0.1 run by the test itself (the doubles and the harness: ``dnsfakes``).
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from dnslib import AAAA, EDNS0, QTYPE, RCODE, RR, A, DNSRecord
from tests.unit.dnsfakes import (
    Addr,
    Env,
    FakeResolver,
    FakeUpstream,
    Runner,
    answer_a,
    bound_pair,
    ips,
    never_answer,
    run,
    scenario,
    tcp_ask,
    tcp_ask_many,
    udp_ask,
    udp_raw,
    upstream,
)

from tether.engine.dns import CACHE_LIMIT, DnsServer

__all__ = ["run"]  # the fixture, imported for its tests here

# -- local answers ---------------------------------------------------------------------------


def test_a_record_for_container_name(run: Runner) -> None:
    async def body(env: Env) -> None:
        query = DNSRecord.question("web")
        resp = await udp_ask(env.udp, query)
        assert resp.header.id == query.header.id
        assert resp.header.rcode == RCODE.NOERROR
        assert resp.header.aa == 0 and resp.header.ra == 1 and resp.header.qr == 1
        assert ips(resp) == ["172.28.0.1"]
        assert resp.rr[0].ttl == 600
        assert env.resolver.lookups == [("sb1", "web")]

    run(scenario(body))


def test_repeated_query_answers_from_cache_with_each_clients_id(run: Runner) -> None:
    async def body(env: Env) -> None:
        for qid in (1, 2, 0xFFFF):
            query = DNSRecord.question("web")
            query.header.id = qid
            resp = await udp_ask(env.udp, query)
            assert resp.header.id == qid
            assert ips(resp) == ["172.28.0.1"]
        assert len(env.resolver.lookups) == 1

    run(scenario(body))


def test_names_match_case_insensitively_and_echo_the_question(run: Runner) -> None:
    async def body(env: Env) -> None:
        resp = await udp_ask(env.udp, DNSRecord.question("WeB."))
        assert ips(resp) == ["172.28.0.1"]
        assert str(resp.q.qname) == "WeB."
        assert str(resp.rr[0].rname) == "WeB."
        assert env.resolver.lookups == [("sb1", "web")]

    run(scenario(body))


def test_aaaa_for_known_name_is_empty_noerror(run: Runner) -> None:
    async def body(env: Env) -> None:
        for qtype in ("AAAA", "MX", "TXT"):
            resp = await udp_ask(env.udp, DNSRecord.question("web", qtype))
            assert resp.header.rcode == RCODE.NOERROR
            assert resp.rr == []

    run(scenario(body))


def test_ptr_for_container_ip(run: Runner) -> None:
    resolver = FakeResolver({"web": ["172.28.0.1"]}, ptrs={"172.28.0.1": "web.mynet"})

    async def body(env: Env) -> None:
        resp = await udp_ask(env.udp, DNSRecord.question("1.0.28.172.in-addr.arpa", "PTR"))
        assert resp.header.rcode == RCODE.NOERROR
        assert [str(rr.rdata) for rr in resp.rr] == ["web.mynet."]
        assert resp.rr[0].rtype == QTYPE.PTR

    run(scenario(body, resolver))


def test_several_addresses_are_all_returned(run: Runner) -> None:
    addrs = [f"10.1.0.{i}" for i in range(1, 6)]

    async def body(env: Env) -> None:
        for _ in range(3):
            resp = await udp_ask(env.udp, DNSRecord.question("svc"))
            assert sorted(ips(resp)) == sorted(addrs)

    run(scenario(body, FakeResolver({"svc": addrs})))


def test_large_answer_truncated_over_udp_and_complete_over_tcp(run: Runner) -> None:
    addrs = [f"10.1.{i // 200}.{i % 200 + 1}" for i in range(60)]

    async def body(env: Env) -> None:
        udp = await udp_ask(env.udp, DNSRecord.question("svc"))
        assert udp.header.tc == 1
        assert len(ips(udp)) < 60
        tcp = await tcp_ask(env.tcp, DNSRecord.question("svc"))
        assert tcp.header.tc == 0
        assert sorted(ips(tcp)) == sorted(addrs)
        edns = DNSRecord.question("svc")
        edns.add_ar(EDNS0(udp_len=4096))
        big = await udp_ask(env.udp, edns)
        assert big.header.tc == 0 and len(ips(big)) == 60
        assert [r.rtype for r in big.ar] == [QTYPE.OPT]

    run(scenario(body, FakeResolver({"svc": addrs})))


def test_search_domain_is_stripped_when_configured(run: Runner) -> None:
    async def body(env: Env) -> None:
        resp = await udp_ask(env.udp, DNSRecord.question("web.corp.example"))
        assert ips(resp) == ["172.28.0.1"]

    run(scenario(body, search=["corp.example."]))


def test_tcp_query_for_container_name_pipelined(run: Runner) -> None:
    async def body(env: Env) -> None:
        q1, q2 = DNSRecord.question("web"), DNSRecord.question("WEB", "AAAA")
        r1, r2 = await tcp_ask_many(env.tcp, [q1, q2])
        assert r1.header.id == q1.header.id and ips(r1) == ["172.28.0.1"]
        assert r2.header.id == q2.header.id and r2.rr == [] and r2.header.rcode == 0

    run(scenario(body))


def test_invalidate_makes_a_removed_name_stop_answering(run: Runner) -> None:
    async def body(env: Env) -> None:
        assert ips(await udp_ask(env.udp, DNSRecord.question("web"))) == ["172.28.0.1"]
        del env.resolver.names["web"]
        # Still the cached answer: records changed but nobody said so yet.
        assert ips(await udp_ask(env.udp, DNSRecord.question("web"))) == ["172.28.0.1"]
        env.server.invalidate()
        resp = await udp_ask(env.udp, DNSRecord.question("web"))
        assert ips(resp) == []
        assert resp.header.rcode == RCODE.SERVFAIL  # not ours, and no upstreams

    run(scenario(body))


def test_invalidate_makes_a_new_name_answer(run: Runner) -> None:
    async def body(env: Env) -> None:
        resp = await udp_ask(env.udp, DNSRecord.question("db"))
        assert resp.header.rcode == RCODE.SERVFAIL
        env.resolver.names["db"] = ["172.28.0.9"]
        env.server.invalidate()
        assert ips(await udp_ask(env.udp, DNSRecord.question("db"))) == ["172.28.0.9"]

    run(scenario(body))


def test_cache_is_bounded(run: Runner) -> None:
    async def body(env: Env) -> None:
        for i in range(CACHE_LIMIT + 10):
            env.resolver.names[f"n{i}"] = ["10.0.0.1"]
        for i in range(0, CACHE_LIMIT + 10, 1):
            query = DNSRecord.question(f"n{i}")
            env.server._udp_query(  # drive the slow path directly, no sockets needed
                env.server._listeners["sb1"], _NullProto(), bytes(query.pack()), ("x", 1)
            )
        assert 0 < len(env.server._listeners["sb1"].cache) <= CACHE_LIMIT

    run(scenario(body))


class _NullProto:
    def send(self, packet: bytes, addr: Addr) -> None:
        pass


def test_resolver_failure_gives_servfail_and_server_survives(run: Runner) -> None:
    async def body(env: Env) -> None:
        env.resolver.fail = True
        resp = await udp_ask(env.udp, DNSRecord.question("web"))
        assert resp.header.rcode == RCODE.SERVFAIL
        env.resolver.fail = False
        assert ips(await udp_ask(env.udp, DNSRecord.question("web"))) == ["172.28.0.1"]

    run(scenario(body))


# -- forwarding -------------------------------------------------------------------------------


def test_unknown_name_is_forwarded_with_client_id(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("93.184.216.34")) as up:
            for _ in range(2):  # the second one is answered from the forwarding cache
                query = DNSRecord.question("Example.COM")
                resp = await udp_ask(env.udp, query)
                assert resp.header.id == query.header.id
                assert ips(resp) == ["93.184.216.34"]
                assert str(resp.q.qname) == "Example.COM."
            assert [kind for kind, _ in up.seen] == ["udp"]

    run(scenario(body))


def test_ptr_for_unknown_ip_is_forwarded(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("1.1.1.1", rcode=RCODE.NXDOMAIN)) as up:
            resp = await udp_ask(env.udp, DNSRecord.question("9.9.9.9.in-addr.arpa", "PTR"))
            assert resp.header.rcode == RCODE.NXDOMAIN
            assert len(up.seen) == 1

    run(scenario(body))


def test_no_upstream_answers_servfail(run: Runner) -> None:
    async def body(env: Env) -> None:
        query = DNSRecord.question("example.com")
        resp = await udp_ask(env.udp, query)
        assert resp.header.id == query.header.id
        assert resp.header.rcode == RCODE.SERVFAIL
        tcp = await tcp_ask(env.tcp, DNSRecord.question("example.com"))
        assert tcp.header.rcode == RCODE.SERVFAIL

    run(scenario(body))


def test_truncated_udp_answer_is_retried_over_tcp(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("198.51.100.7", truncate_udp=True)) as up:
            resp = await udp_ask(env.udp, DNSRecord.question("big.example"))
            assert resp.header.tc == 0
            assert ips(resp) == ["198.51.100.7"]
            assert [kind for kind, _ in up.seen] == ["udp", "tcp"]

    run(scenario(body))


def test_truncated_answer_too_big_for_client_stays_truncated(run: Runner) -> None:
    def huge(rec: DNSRecord, tcp: bool) -> bytes:
        reply = rec.reply()
        if tcp:
            for i in range(80):
                reply.add_answer(RR(rec.q.qname, QTYPE.A, rdata=A(f"10.9.0.{i + 1}")))
        else:
            reply.header.tc = 1
        return bytes(reply.pack())

    async def body(env: Env) -> None:
        async with upstream(env, huge):
            resp = await udp_ask(env.udp, DNSRecord.question("big.example"))
            assert resp.header.tc == 1
            tcp = await tcp_ask(env.tcp, DNSRecord.question("big.example"))
            assert tcp.header.tc == 0 and len(ips(tcp)) == 80

    run(scenario(body))


def test_tcp_query_is_forwarded_over_tcp(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("203.0.113.5")) as up:
            query = DNSRecord.question("example.org")
            resp = await tcp_ask(env.tcp, query)
            assert resp.header.id == query.header.id
            assert ips(resp) == ["203.0.113.5"]
            assert [kind for kind, _ in up.seen] == ["tcp"]

    run(scenario(body))


def test_failing_upstreams_fall_through_to_the_next(run: Runner) -> None:
    async def body(env: Env) -> None:
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: timeout
        dead.bind(("127.0.0.1", 0))
        refusing = await FakeUpstream(answer_a("0.0.0.0", rcode=RCODE.REFUSED)).start()
        good = await FakeUpstream(answer_a("192.0.2.1")).start()
        try:
            env.resolver.servers = [
                f"127.0.0.1:{dead.getsockname()[1]}",
                refusing.address,
                good.address,
            ]
            resp = await udp_ask(env.udp, DNSRecord.question("example.net"))
            assert ips(resp) == ["192.0.2.1"]
            assert len(refusing.seen) == 1 and len(good.seen) == 1
        finally:
            dead.close()
            refusing.close()
            good.close()

    run(scenario(body, upstream_timeout=0.3))


def test_only_three_upstreams_are_used_and_last_error_is_returned(run: Runner) -> None:
    async def body(env: Env) -> None:
        ups = [await FakeUpstream(answer_a("0.0.0.0", rcode=RCODE.SERVFAIL)).start()]
        ups.append(await FakeUpstream(answer_a("0.0.0.0", rcode=RCODE.NXDOMAIN)).start())
        ups.append(await FakeUpstream(answer_a("0.0.0.0", rcode=RCODE.REFUSED)).start())
        ups.append(await FakeUpstream(answer_a("192.0.2.1")).start())
        try:
            env.resolver.servers = [u.address for u in ups]
            resp = await udp_ask(env.udp, DNSRecord.question("nothing.example"))
            assert resp.header.rcode == RCODE.NXDOMAIN  # preferred over the other errors
            assert [len(u.seen) for u in ups] == [1, 1, 1, 0]
        finally:
            for u in ups:
                u.close()

    run(scenario(body))


def test_authoritative_nxdomain_is_final(run: Runner) -> None:
    async def body(env: Env) -> None:
        ups = [
            await FakeUpstream(
                answer_a("0.0.0.0", rcode=RCODE.NXDOMAIN, authoritative=True)
            ).start(),
            await FakeUpstream(answer_a("192.0.2.1")).start(),
        ]
        try:
            env.resolver.servers = [u.address for u in ups]
            resp = await udp_ask(env.udp, DNSRecord.question("nothing.example"))
            assert resp.header.rcode == RCODE.NXDOMAIN
            assert [len(u.seen) for u in ups] == [1, 0]
        finally:
            for u in ups:
                u.close()

    run(scenario(body))


def test_closed_upstream_port_is_skipped_quickly(run: Runner) -> None:
    async def body(env: Env) -> None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        probe.close()
        good = await FakeUpstream(answer_a("192.0.2.2")).start()
        try:
            env.resolver.servers = [f"127.0.0.1:{closed_port}", "not-an-ip", good.address]
            resp = await udp_ask(env.udp, DNSRecord.question("example.net"))
            assert ips(resp) == ["192.0.2.2"]
        finally:
            good.close()

    run(scenario(body, upstream_timeout=5.0))


def test_spoofed_reply_with_wrong_question_is_ignored(run: Runner) -> None:
    def wrong(rec: DNSRecord, tcp: bool) -> bytes:
        other = DNSRecord.question("evil.example")
        other.header.id = rec.header.id
        reply = other.reply()
        reply.add_answer(RR("evil.example", QTYPE.A, rdata=A("6.6.6.6")))
        return bytes(reply.pack())

    async def body(env: Env) -> None:
        bad = await FakeUpstream(wrong).start()
        good = await FakeUpstream(answer_a("192.0.2.3")).start()
        try:
            env.resolver.servers = [bad.address, good.address]
            resp = await udp_ask(env.udp, DNSRecord.question("example.net"))
            assert ips(resp) == ["192.0.2.3"]
        finally:
            bad.close()
            good.close()

    run(scenario(body, upstream_timeout=0.3))


def test_aaaa_forwarded_for_unknown_names(run: Runner) -> None:
    def v6(rec: DNSRecord, tcp: bool) -> bytes:
        reply = rec.reply()
        reply.add_answer(RR(rec.q.qname, QTYPE.AAAA, rdata=AAAA("2001:db8::1")))
        return bytes(reply.pack())

    async def body(env: Env) -> None:
        async with upstream(env, v6):
            resp = await udp_ask(env.udp, DNSRecord.question("example.com", "AAAA"))
            assert [str(r.rdata) for r in resp.rr] == ["2001:db8::1"]

    run(scenario(body))


# -- robustness and lifecycle ------------------------------------------------------------------


def test_malformed_packets_do_not_crash_the_server(run: Runner) -> None:
    async def body(env: Env) -> None:
        garbage = [
            b"",
            b"\x00",
            b"\xff" * 11,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
            b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01",
            bytes(range(256)) * 3,
        ]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=env.udp
        )
        for packet in garbage:
            transport.sendto(packet)
        transport.close()
        formerr = await udp_raw(
            env.udp, b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01"
        )
        assert formerr[:2] == b"\x12\x34"
        assert formerr[3] & 0xF == RCODE.FORMERR
        # TCP: a bogus message, then a good one on the same connection.
        reader, writer = await asyncio.open_connection(*env.tcp)
        writer.write(b"\x00\x03abc")
        good = bytes(DNSRecord.question("web").pack())
        writer.write(struct.pack("!H", len(good)) + good)
        (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))
        assert ips(DNSRecord.parse(await reader.readexactly(n))) == ["172.28.0.1"]
        writer.close()
        assert ips(await udp_ask(env.udp, DNSRecord.question("web"))) == ["172.28.0.1"]

    run(scenario(body))


def test_non_query_opcode_and_edns_version(run: Runner) -> None:
    async def body(env: Env) -> None:
        notify = DNSRecord.question("web")
        notify.header.opcode = 4
        resp = await udp_ask(env.udp, notify)
        assert resp.header.rcode == RCODE.NOTIMP
        v1 = DNSRecord.question("web")
        v1.add_ar(EDNS0(version=1))
        raw = await udp_raw(env.udp, bytes(v1.pack()))
        assert raw[3] & 0xF == 0
        assert struct.unpack("!I", raw[-6:-2])[0] >> 24 == 1  # BADVERS in the OPT ttl

    run(scenario(body))


def test_remove_sandbox_closes_its_sockets(run: Runner) -> None:
    async def main() -> None:
        server = DnsServer(FakeResolver({"web": ["172.28.0.1"]}))
        udp, tcp, uaddr, taddr = bound_pair()
        await server.serve_sockets("sb1", udp, tcp)
        assert server.sandboxes() == ["sb1"]
        assert ips(await udp_ask(uaddr, DNSRecord.question("web"))) == ["172.28.0.1"]
        await server.remove_sandbox("sb1")
        assert server.sandboxes() == []
        assert _can_bind(socket.SOCK_DGRAM, uaddr)
        assert _can_bind(socket.SOCK_STREAM, taddr)
        with pytest.raises(OSError):
            await asyncio.open_connection(*taddr)
        await server.remove_sandbox("sb1")  # idempotent
        await server.close()

    run(main())


def _can_bind(kind: int, addr: Addr) -> bool:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_readding_a_sandbox_replaces_its_listeners(run: Runner) -> None:
    async def main() -> None:
        server = DnsServer(FakeResolver({"web": ["172.28.0.1"]}))
        udp, tcp, uaddr, _ = bound_pair()
        await server.serve_sockets("sb1", udp, tcp)
        udp2, tcp2, uaddr2, _ = bound_pair()
        await server.serve_sockets("sb1", udp2, tcp2)
        assert server.sandboxes() == ["sb1"]
        assert _can_bind(socket.SOCK_DGRAM, uaddr)
        assert ips(await udp_ask(uaddr2, DNSRecord.question("web"))) == ["172.28.0.1"]
        await server.close()

    run(main())


def test_close_cancels_in_flight_forwards_and_refuses_new_sandboxes(run: Runner) -> None:
    async def main() -> None:
        resolver = FakeResolver()
        server = DnsServer(resolver, upstream_timeout=30)
        up = await FakeUpstream(never_answer).start()
        resolver.servers = [up.address]
        udp, tcp, uaddr, _ = bound_pair()
        await server.serve_sockets("sb1", udp, tcp)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=uaddr
        )
        transport.sendto(bytes(DNSRecord.question("slow.example").pack()))
        for _ in range(100):
            if up.seen:
                break
            await asyncio.sleep(0.01)
        assert len(up.seen) == 1
        assert server._listeners["sb1"].pending == 1
        tasks = set(server._forwards._tasks)
        assert len(tasks) == 1
        await server.close()
        assert all(t.done() for t in tasks)
        assert server.sandboxes() == []
        u2, t2, _, _ = bound_pair()
        with pytest.raises(Exception, match="shut down"):
            await server.serve_sockets("sb2", u2, t2)
        u2.close()
        t2.close()
        transport.close()
        up.close()

    run(main())


def test_add_sandbox_with_missing_namespace_raises_internal(run: Runner) -> None:
    from tether.errors import Internal

    async def main() -> None:
        server = DnsServer(FakeResolver())
        with pytest.raises(Internal, match="DNS listener"):
            await server.add_sandbox("sb1", "/nonexistent/netns/path")
        assert server.sandboxes() == []
        await server.close()

    run(main())
