"""AAAA answers, ip6.arpa PTR and /etc/hosts on dual-stack networks (issue 18; no root)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from dnslib import QTYPE, RCODE, DNSRecord
from tests.unit.dnsfakes import Env, FakeResolver, Runner, run, scenario, udp_ask
from tests.unit.test_container_controller import aio, started

from tether.contracts.model import Endpoint
from tether.engine import dns_wire as wire
from tether.engine.networks import CreateRequest
from tether.engine.resolver import EngineResolver
from tether.engine.sandbox import hosts_text

__all__ = ["run"]  # the fixture, imported for its tests here

DUAL = FakeResolver(
    {"web": ["172.28.0.2", "fd00:1::2"], "old": ["172.28.0.3"]},
    ptrs={"fd00:1::2": "web.ds"},
)


def test_aaaa_a_and_any_each_get_their_family(run: Runner) -> None:
    async def body(env: Env) -> None:
        resp = await udp_ask(env.udp, DNSRecord.question("web", "AAAA"))
        assert resp.header.rcode == RCODE.NOERROR
        assert [(rr.rtype, str(rr.rdata)) for rr in resp.rr] == [(QTYPE.AAAA, "fd00:1::2")]
        resp = await udp_ask(env.udp, DNSRecord.question("web", "A"))
        assert [str(rr.rdata) for rr in resp.rr] == ["172.28.0.2"]
        resp = await udp_ask(env.udp, DNSRecord.question("web", "ANY"))
        assert sorted(str(rr.rdata) for rr in resp.rr) == ["172.28.0.2", "fd00:1::2"]
        # an IPv4-only name: AAAA is empty NOERROR, as before
        resp = await udp_ask(env.udp, DNSRecord.question("old", "AAAA"))
        assert resp.header.rcode == RCODE.NOERROR and resp.rr == []

    run(scenario(body, DUAL))


def test_ptr_under_ip6_arpa(run: Runner) -> None:
    async def body(env: Env) -> None:
        name = ipaddress.IPv6Address("fd00:1::2").reverse_pointer
        resp = await udp_ask(env.udp, DNSRecord.question(name, "PTR"))
        assert [str(rr.rdata) for rr in resp.rr] == ["web.ds."]

    run(scenario(body, DUAL))


def test_reverse_ipv6_parsing() -> None:
    name = ipaddress.IPv6Address("fd00:1::2").reverse_pointer
    assert wire.reverse_ipv6(wire.text_to_name(name)) == "fd00:1::2"
    assert wire.reverse_ipv6(wire.text_to_name("2.0.0.0.ip6.arpa")) is None
    assert wire.reverse_ipv6(wire.text_to_name(name.replace("2", "g", 1))) is None
    assert wire.reverse_ipv4(wire.text_to_name(name)) is None


def test_hosts_file_lists_the_ipv6_address_too() -> None:
    text = hosts_text([], "172.28.0.2", "abc", (), "fd00:1::2")
    assert text.endswith("172.28.0.2\tabc\nfd00:1::2\tabc\n")
    assert hosts_text([], "172.28.0.2", "abc").endswith("172.28.0.2\tabc\n")


@aio
async def test_engine_resolver_names_aliases_links_and_reverse(tmp_path: Path) -> None:
    w = await started(tmp_path)
    net = await w.engine.create_network(
        CreateRequest(
            name="ds", ipv6=True, configs=[{"Subnet": "10.7.0.0/24"}, {"Subnet": "fd00:1::/64"}]
        )
    )
    a = await w.run("aa", network="ds", extra={"ds": {"Aliases": ["alias-a"]}})
    b = await w.run("bb", network="ds", links=["aa:lnk"])
    r = EngineResolver(w.ctl.table, w.nets, [])
    assert r.lookup(b.id, "aa") == ["10.7.0.2", "fd00:1::2"]
    assert r.lookup(b.id, "alias-a") == ["10.7.0.2", "fd00:1::2"]
    assert r.lookup(b.id, "lnk") == ["10.7.0.2", "fd00:1::2"]
    assert r.reverse(b.id, "fd00:1::2") == "aa.ds"
    assert Endpoint.from_dict(a.endpoints[net.id]).ip6 == "fd00:1::2"
    await w.close()
