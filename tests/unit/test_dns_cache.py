"""The forwarding cache of the embedded DNS (tether.engine.dns_cache), against fake upstreams
on 127.0.0.1 (no root). Time is a fake clock, so TTL expiry is tested without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, SOA, A, DNSRecord
from tests.unit.dnsfakes import (
    Addr,
    Env,
    FakeResolver,
    FakeUpstream,
    Handler,
    Runner,
    answer_a,
    bound_pair,
    ips,
    run,
    scenario,
    tcp_ask,
    udp_ask,
    udp_raw,
    upstream,
)

from tether.engine import dns, dns_cache
from tether.engine.dns_cache import FAILURE_TTL, NEGATIVE_TTL_CAP, parse_reply

__all__ = ["run"]  # the fixture, imported for its tests here


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(dns_cache, "time", c)
    monkeypatch.setattr(dns, "_monotonic", c.monotonic)
    return c


def negative(rcode: int, soa_ttl: int | None, minimum: int = 10) -> Handler:
    """NXDOMAIN or NODATA (rcode 0, no answers), with an SOA in authority when ``soa_ttl``."""

    def handler(rec: DNSRecord, tcp: bool) -> bytes:
        reply = rec.reply()
        reply.header.aa = 1
        reply.header.rcode = rcode
        if soa_ttl is not None:
            soa = SOA("ns.example.", "admin.example.", (1, 3600, 600, 86400, minimum))
            reply.add_auth(RR("example.", QTYPE.SOA, rdata=soa, ttl=soa_ttl))
        return bytes(reply.pack())

    return handler


def ttls(rec: DNSRecord) -> list[int]:
    return [rr.ttl for rr in rec.rr]


async def wait_for(cond: Callable[[], bool]) -> None:
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


# -- TTLs ---------------------------------------------------------------------------------------


def test_answer_is_cached_for_its_ttl_and_ttls_count_down(run: Runner, clock: Clock) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("192.0.2.10")) as up:  # TTL 30
            first = await udp_ask(env.udp, DNSRecord.question("cached.example"))
            assert ips(first) == ["192.0.2.10"] and ttls(first) == [30]
            clock.now += 10.5
            again = await udp_ask(env.udp, DNSRecord.question("cached.example"))
            assert ips(again) == ["192.0.2.10"] and ttls(again) == [20]
            assert len(up.seen) == 1
            clock.now += 20  # 30.5 s after the answer came: expired
            third = await udp_ask(env.udp, DNSRecord.question("cached.example"))
            assert ttls(third) == [30]
            assert len(up.seen) == 2
            stats = env.server.stats
            assert stats.forward_misses == 2 and stats.forward_hits == 1

    run(scenario(body))


def test_repeats_within_a_second_use_the_sandbox_copy(run: Runner, clock: Clock) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("192.0.2.11")) as up:
            query = DNSRecord.question("hot.example")
            for _ in range(3):  # the same bytes: the per-sandbox copy answers, own id each
                query.header.id = (query.header.id + 1) & 0xFFFF
                resp = await udp_ask(env.udp, query)
                assert resp.header.id == query.header.id and ips(resp) == ["192.0.2.11"]
            assert env.server.stats.forward_cached == 2
            clock.now += 5
            resp = await udp_ask(env.udp, query)  # the copy is stale: rendered again, aged
            assert ttls(resp) == [25]
            assert len(up.seen) == 1

    run(scenario(body))


@pytest.mark.parametrize("rcode", [RCODE.NXDOMAIN, RCODE.NOERROR])
def test_negative_answers_are_cached_for_the_soa_minimum(
    run: Runner, clock: Clock, rcode: int
) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, negative(rcode, soa_ttl=60, minimum=10)) as up:
            for _ in range(2):
                resp = await udp_ask(env.udp, DNSRecord.question("gone.example"))
                assert resp.header.rcode == rcode and not resp.rr
                assert [a.ttl for a in resp.auth] == [60]
            assert len(up.seen) == 1
            clock.now += 9.5
            resp = await udp_ask(env.udp, DNSRecord.question("gone.example"))
            assert [a.ttl for a in resp.auth] == [51]
            assert len(up.seen) == 1
            clock.now += 1  # 10.5 s: past min(SOA TTL 60, minimum 10)
            await udp_ask(env.udp, DNSRecord.question("gone.example"))
            assert len(up.seen) == 2

    run(scenario(body))


def test_negative_answer_without_soa_is_not_cached(run: Runner, clock: Clock) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, negative(RCODE.NXDOMAIN, soa_ttl=None)) as up:
            for _ in range(2):
                resp = await udp_ask(env.udp, DNSRecord.question("nosoa.example"))
                assert resp.header.rcode == RCODE.NXDOMAIN
            assert len(up.seen) == 2

    run(scenario(body))


def test_negative_ttl_is_capped() -> None:
    rec = DNSRecord.question("capped.example")
    reply = rec.reply()
    reply.header.rcode = RCODE.NXDOMAIN
    soa = SOA("ns.example.", "admin.example.", (1, 3600, 600, 86400, 86400))
    reply.add_auth(RR("example.", QTYPE.SOA, rdata=soa, ttl=86400))
    data = bytes(reply.pack())
    qend = len(bytes(rec.pack()))
    entry = parse_reply(data, qend, 0.0)
    assert entry is not None and entry.expires == NEGATIVE_TTL_CAP


def test_servfail_is_kept_one_second_only(run: Runner, clock: Clock) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("0.0.0.0", rcode=RCODE.SERVFAIL)) as up:
            for _ in range(2):
                resp = await tcp_ask(env.tcp, DNSRecord.question("broken.example"))
                assert resp.header.rcode == RCODE.SERVFAIL
            assert len(up.seen) == 1
            clock.now += FAILURE_TTL + 0.01
            await tcp_ask(env.tcp, DNSRecord.question("broken.example"))
            assert len(up.seen) == 2

    run(scenario(body))


# -- identity of the answer -----------------------------------------------------------------------


def test_each_client_gets_its_own_id_and_question_case(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("192.0.2.12")) as up:
            await udp_ask(env.udp, DNSRecord.question("MiXed.Example"))
            for spelling in ("mixed.example", "MIXED.EXAMPLE", "mIxEd.eXaMpLe"):
                query = DNSRecord.question(spelling)
                packet = bytes(query.pack())
                raw = await udp_raw(env.udp, packet)
                resp = DNSRecord.parse(raw)
                assert resp.header.id == query.header.id
                assert raw[12 : len(packet)] == packet[12:]  # the question, byte for byte
                assert ips(resp) == ["192.0.2.12"]
            assert len(up.seen) == 1  # one upstream exchange for every spelling
            # EDNS: our OPT back to a client that sent one, none to one that did not
            edns = DNSRecord.question("mixed.example")
            edns.add_ar(EDNS0(udp_len=4096))
            resp = await udp_ask(env.udp, edns)
            assert [r.rtype for r in resp.ar] == [QTYPE.OPT]
            plain = await udp_ask(env.udp, DNSRecord.question("mixed.example"))
            assert not plain.ar

    run(scenario(body))


# -- coalescing and sockets -----------------------------------------------------------------------


class ManualUpstream:
    """A UDP upstream that answers only when told: records each query and its source."""

    def __init__(self) -> None:
        self.queries: list[tuple[DNSRecord, Addr]] = []
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self) -> ManualUpstream:
        loop = asyncio.get_running_loop()
        outer = self

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Addr) -> None:
                outer.queries.append((DNSRecord.parse(data), addr))

        transport, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
        self.transport = transport
        return self

    @property
    def address(self) -> str:
        assert self.transport is not None
        return f"127.0.0.1:{self.transport.get_extra_info('sockname')[1]}"

    def send(self, reply: DNSRecord, addr: Addr) -> None:
        assert self.transport is not None
        self.transport.sendto(bytes(reply.pack()), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def a_reply(rec: DNSRecord, ip: str) -> DNSRecord:
    reply = rec.reply()
    reply.header.aa = 0
    reply.add_answer(RR(rec.q.qname, QTYPE.A, rdata=A(ip), ttl=30))
    return reply


def test_identical_queries_in_flight_share_one_upstream_exchange(run: Runner) -> None:
    async def body(env: Env) -> None:
        up = await ManualUpstream().start()
        try:
            env.resolver.servers = [up.address]
            queries = [DNSRecord.question(n) for n in ("same.example", "SAME.example") * 3]
            asks = [asyncio.ensure_future(udp_ask(env.udp, q)) for q in queries]
            await wait_for(lambda: env.server.stats.forward_coalesced == 5)
            assert len(up.queries) == 1
            rec, addr = up.queries[0]
            up.send(a_reply(rec, "192.0.2.13"), addr)
            answers = await asyncio.gather(*asks)
            for q, resp in zip(queries, answers, strict=True):
                assert resp.header.id == q.header.id and str(resp.q.qname) == str(q.q.qname)
                assert ips(resp) == ["192.0.2.13"]
            assert env.server.stats.forward_misses == 1
        finally:
            up.close()

    run(scenario(body))


def test_one_socket_per_upstream_and_strict_reply_matching(run: Runner) -> None:
    async def body(env: Env) -> None:
        up = await ManualUpstream().start()
        try:
            env.resolver.servers = [up.address]
            names = ["one.example", "two.example", "three.example"]
            asks = [asyncio.ensure_future(udp_ask(env.udp, DNSRecord.question(n))) for n in names]
            await wait_for(lambda: len(up.queries) == 3)
            assert len({addr for _, addr in up.queries}) == 1  # one source port for all
            assert len({rec.header.id for rec, _ in up.queries}) == 3
            by_name = {str(rec.q.qname): (rec, addr) for rec, addr in up.queries}
            rec, addr = by_name["one.example."]
            wrong_id = a_reply(rec, "6.6.6.6")
            wrong_id.header.id = (rec.header.id + 1) & 0xFFFF
            other = by_name["two.example."][0]
            wrong_q = a_reply(DNSRecord.question("two.example"), "6.6.6.7")
            wrong_q.header.id = rec.header.id  # one's id, two's question
            up.send(wrong_id, addr)
            up.send(wrong_q, addr)
            up.send(a_reply(other, "192.0.2.2"), addr)
            up.send(a_reply(rec, "192.0.2.1"), addr)
            up.send(a_reply(by_name["three.example."][0], "192.0.2.3"), addr)
            got = [ips(r) for r in await asyncio.gather(*asks)]
            assert got == [["192.0.2.1"], ["192.0.2.2"], ["192.0.2.3"]]
        finally:
            up.close()

    run(scenario(body))


# -- invalidation, truncation, bounds --------------------------------------------------------------


def test_changed_upstreams_do_not_see_the_old_answers(run: Runner, clock: Clock) -> None:
    async def body(env: Env) -> None:
        old = await FakeUpstream(answer_a("192.0.2.20")).start()
        new = await FakeUpstream(answer_a("192.0.2.21")).start()
        try:
            env.resolver.servers = [old.address]
            assert ips(await udp_ask(env.udp, DNSRecord.question("moved.example"))) == [
                "192.0.2.20"
            ]
            env.resolver.servers = [new.address]  # --dns / resolv.conf changed
            tcp = await tcp_ask(env.tcp, DNSRecord.question("moved.example"))
            assert ips(tcp) == ["192.0.2.21"]
            clock.now += 1  # the sandbox's UDP copy is good for the current second only
            udp = await udp_ask(env.udp, DNSRecord.question("moved.example"))
            assert ips(udp) == ["192.0.2.21"]
            assert len(old.seen) == 1 and len(new.seen) == 1
        finally:
            old.close()
            new.close()

    run(scenario(body))


def test_forget_forwarded_and_a_new_container_name_win_over_cached_answers(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("192.0.2.30")) as up:
            assert ips(await udp_ask(env.udp, DNSRecord.question("db"))) == ["192.0.2.30"]
            env.server.forget_forwarded()
            assert ips(await udp_ask(env.udp, DNSRecord.question("db"))) == ["192.0.2.30"]
            assert len(up.seen) == 2
            env.resolver.names["db"] = ["172.28.0.9"]  # a container named db starts
            env.server.invalidate()
            assert ips(await udp_ask(env.udp, DNSRecord.question("db"))) == ["172.28.0.9"]

    run(scenario(body))


def test_truncated_answer_is_fetched_over_tcp_once_and_served_from_the_cache(
    run: Runner,
) -> None:
    def huge(rec: DNSRecord, tcp: bool) -> bytes:
        reply = rec.reply()
        if tcp:
            for i in range(80):
                reply.add_answer(RR(rec.q.qname, QTYPE.A, rdata=A(f"10.9.0.{i + 1}"), ttl=60))
        else:
            reply.header.tc = 1
        return bytes(reply.pack())

    async def body(env: Env) -> None:
        async with upstream(env, huge) as up:
            for _ in range(2):
                resp = await udp_ask(env.udp, DNSRecord.question("big.example"))
                assert resp.header.tc == 1 and not resp.rr  # too big for 512 bytes
            tcp = await tcp_ask(env.tcp, DNSRecord.question("big.example"))
            assert tcp.header.tc == 0 and len(ips(tcp)) == 80
            edns = DNSRecord.question("big.example")
            edns.add_ar(EDNS0(udp_len=4096))
            resp = await udp_ask(env.udp, edns)
            assert resp.header.tc == 0 and len(ips(resp)) == 80  # another key (EDNS): fits
            assert [kind for kind, _ in up.seen] == ["udp", "tcp", "udp", "tcp"]

    run(scenario(body))


def test_cache_is_a_bounded_lru(run: Runner) -> None:
    async def body(env: Env) -> None:
        async with upstream(env, answer_a("192.0.2.40")) as up:
            env.server._forwards._limit = 2
            for name in ("a.example", "b.example", "a.example", "c.example"):
                await tcp_ask(env.tcp, DNSRecord.question(name))
            assert len(env.server._forwards) == 2
            assert len(up.seen) == 3  # a was a hit
            await tcp_ask(env.tcp, DNSRecord.question("a.example"))  # kept: recently used
            await tcp_ask(env.tcp, DNSRecord.question("b.example"))  # dropped: least recent
            assert len(up.seen) == 4

    run(scenario(body, FakeResolver()))


def test_removing_a_sandbox_leaves_the_shared_exchange_to_the_others(run: Runner) -> None:
    async def body(env: Env) -> None:
        up = await ManualUpstream().start()
        try:
            env.resolver.servers = [up.address]
            udp, tcp, uaddr, _ = bound_pair()
            await env.server.serve_sockets("sb2", udp, tcp)
            packet = bytes(DNSRecord.question("x.example").pack())
            first = asyncio.ensure_future(udp_raw(env.udp, packet, timeout=1.0))
            second = asyncio.ensure_future(udp_ask(uaddr, DNSRecord.question("x.example")))
            await wait_for(lambda: env.server.stats.forward_coalesced == 1)
            await env.server.remove_sandbox("sb1")
            rec, addr = up.queries[0]
            up.send(a_reply(rec, "192.0.2.50"), addr)
            assert ips(await second) == ["192.0.2.50"]
            with pytest.raises(TimeoutError):
                await first  # its listener is gone: no answer
        finally:
            up.close()

    run(scenario(body))


def test_upstream_socket_is_replaced_after_its_uses(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.engine import dns_forward

    monkeypatch.setattr(dns_forward, "CHANNEL_USES", 2)

    async def body(env: Env) -> None:
        up = await ManualUpstream().start()
        try:
            env.resolver.servers = [up.address]
            for i in range(5):
                ask = asyncio.ensure_future(udp_ask(env.udp, DNSRecord.question(f"r{i}.example")))
                await wait_for(lambda i=i: len(up.queries) == i + 1)
                rec, addr = up.queries[-1]
                up.send(a_reply(rec, "192.0.2.60"), addr)
                assert ips(await ask) == ["192.0.2.60"]
            ports = [addr[1] for _, addr in up.queries]
            assert ports[0] == ports[1] != ports[2] == ports[3] != ports[4]
            forwarder = env.server._forwards._forwarder
            assert len(forwarder._retired) <= 1  # the replaced ones are closed once idle
            assert all(c.closed for c in forwarder._retired)
        finally:
            up.close()

    run(scenario(body))
