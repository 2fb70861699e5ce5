"""Prometheus metrics (issue 19): /metrics parses with prometheus_client's text parser, and the
API and DNS counters move when the test makes calls and queries.

The API side runs the real app (``make_app`` with ``Metrics``) over the container controller
test's engine of fakes; the DNS side runs the real ``DnsServer`` on 127.0.0.1 high ports with a
fake upstream answering NXDOMAIN (the DNS server test's harness).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from dnslib import DNSRecord
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.apiclient import api_client
from tests.unit.dnsfakes import Env, answer_a, ips, scenario, tcp_ask, udp_ask, upstream
from tests.unit.test_container_controller import aio
from tests.unit.test_topology import world

from tether.api.app import make_app
from tether.api.metrics import Metrics
from tether.api.web import make_web_app
from tether.config import load_config, parse_web_addr
from tether.errors import BadRequest

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(got: Samples, name: str, **labels: str) -> float:
    return got.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(metrics: Metrics) -> Samples:
    async with api_client(make_web_app(None, metrics)) as web:
        r = await web.get("/metrics")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        return samples(await r.text())


@aio
async def test_api_and_engine_series(tmp_path: Path) -> None:
    w = await world(tmp_path)
    metrics = Metrics(w.engine)
    before = await scrape(metrics)
    assert value(before, "tether_containers", state="running") == 4
    assert value(before, "tether_endpoints", network="front", driver="bridge") == 2
    assert value(before, "tether_ipam_addresses", network="front", pool="10.31.0.0/24",
                 state="used") == 2  # fmt: skip
    assert value(before, "tether_ipam_addresses", network="front", pool="10.31.0.0/24",
                 state="free") == 251  # fmt: skip
    assert value(before, "tether_published_ports") == 1
    assert value(before, "tether_firewall_repairs_total") == 0
    async with api_client(make_app(w.engine, metrics=metrics)) as api:
        for _ in range(3):
            assert (await api.get("/v1.41/containers/json")).status == 200
        assert (await api.get("/containers/nope/json")).status == 404
        assert (await api.get("/no/such/route")).status == 404
    after = await scrape(metrics)
    route = {"method": "GET", "route": "/containers/json", "status": "200"}
    assert value(after, "tether_api_requests_total", **route) == 3
    missing = {"method": "GET", "route": "/containers/{id}/json", "status": "404"}
    assert value(after, "tether_api_requests_total", **missing) == 1
    assert value(after, "tether_api_requests_total", method="GET", route="unmatched",
                 status="404") == 1  # fmt: skip
    count = "tether_api_request_duration_seconds_count"
    assert value(after, count, method="GET", route="/containers/json") == 3
    await w.ctl.stop("api", 0)
    later = await scrape(metrics)
    assert value(later, "tether_containers", state="exited") == 1
    await w.close()


def test_dns_counters_move() -> None:
    async def body(env: Env) -> None:
        metrics = Metrics(SimpleNamespace(
            containers=None, networks=SimpleNamespace(list=list, spaces={}, cluster=None),
            firewall_repairs=0, dns_stats=lambda: env.server.stats,
        ))  # fmt: skip
        async with upstream(env, answer_a("1.1.1.1")):
            for _ in range(2):
                await udp_ask(env.udp, DNSRecord.question("web"))  # local, then cached
            for _ in range(2):  # upstream, then the sandbox's copy of the cached answer
                resp = await udp_ask(env.udp, DNSRecord.question("nowhere.example"))
                assert ips(resp) == ["1.1.1.1"]
            resp = await tcp_ask(env.tcp, DNSRecord.question("nowhere.example"))  # cache hit
        got = samples(metrics.render().decode())
        assert value(got, "tether_dns_queries_total") == 5
        assert value(got, "tether_dns_answers_total") == 2
        assert value(got, "tether_dns_forwarded_total") == 3
        assert value(got, "tether_dns_forward_cache_hits_total") == 2
        assert value(got, "tether_dns_forward_cache_misses_total") == 1
        assert value(got, "tether_dns_forward_coalesced_total") == 0
        assert value(got, "tether_dns_forward_duration_seconds_count") == 1
        assert value(got, "tether_dns_forward_duration_seconds_bucket", le="+Inf") == 1

    asyncio.run(scenario(body))


def test_web_addr_is_opt_in_and_checked(tmp_path: Path) -> None:
    cfg = load_config(None, None, None, str(tmp_path / "none.json"), None, None)
    assert cfg.web_addr is None and cfg.web_endpoint is None
    cfg = load_config(None, None, None, None, None, None, web_addr="127.0.0.1:9323")
    assert cfg.web_endpoint == ("127.0.0.1", 9323)
    assert parse_web_addr("[::1]:80") == ("::1", 80)
    for bad in ("9323", "127.0.0.1:", "host:99999", ":80"):
        with pytest.raises(BadRequest):
            parse_web_addr(bad)
    (tmp_path / "d.json").write_text('{"metrics-addr": "0.0.0.0:9000"}')
    cfg = load_config(None, None, None, str(tmp_path / "d.json"), None, None)
    assert cfg.web_endpoint == ("0.0.0.0", 9000)
