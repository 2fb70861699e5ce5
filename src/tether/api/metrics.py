"""Prometheus metrics (issue 19), served on the opt-in ``--web-addr`` as ``GET /metrics``.

Two kinds of series, in one registry per daemon (not the library's global one):

* API requests, counted and timed by a middleware (``Metrics.middleware``, added
  to the API app only when ``--web-addr`` is given): ``tether_api_requests_total{method,
  route,status}`` and ``tether_api_request_duration_seconds{method,route}`` (a streaming
  request such as ``logs -f`` or ``events`` is timed to its end). ``route`` is the route's
  pattern without the version prefix (``/containers/{id}/json``), so the label set is bounded.
* The engine's state, read at scrape time (``EngineCollector``: nothing is counted on the hot
  paths but plain integers): containers by state, endpoints per network, IPAM addresses
  used/free per pool, published ports, restarts, nft drift repairs, the embedded DNS's
  queries/answers/forwarded/NXDOMAIN/SERVFAIL with the forwarded queries' latency
  (``tether.engine.dnsstats``), and with ``--cluster-store`` the hosts seen, the etcd round
  trips by operation, the watch lag and the lease renewals (``tether.engine.clusterstats``).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from tether.api import httpd as web
from tether.api.http import Handler
from tether.engine.clusterstats import BUCKETS as CLUSTER_BUCKETS
from tether.engine.dnsstats import BUCKETS

_VERSION_PREFIX = re.compile(r"^/v\{version[^}]*\}")


def route_label(request: web.Request) -> str:
    """The matched route's pattern without ``/v{version}`` (``unmatched`` for a 404)."""
    route = request.match_info.route
    if route is None:
        return "unmatched"
    return _VERSION_PREFIX.sub("", route.pattern) or "/"


class Metrics:
    """The registry, the API middleware and the engine collector of one daemon."""

    def __init__(self, engine: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tether_api_requests", "API requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tether_api_request_duration_seconds", "API request latency by route",
            ["method", "route"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(EngineCollector(engine))

    @property
    def middleware(self) -> Any:
        requests, latency = self.requests, self.latency

        @web.middleware
        async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                resp = await handler(request)
                status = resp.status
                return resp
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                route = route_label(request)
                requests.labels(request.method, route, str(status)).inc()
                latency.labels(request.method, route).observe(time.perf_counter() - started)

        return metrics_middleware

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handler(self, _request: web.Request) -> web.Response:
        """``GET /metrics`` (served by ``tether.api.web``)."""
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _pool_sizes(space: Any) -> tuple[str, int, int]:
    """``(pool label, used, free)`` of one address space (its range, less the gateway, the
    aux addresses, and the subnet's network and broadcast addresses)."""
    cfg = space.cfg
    rng = cfg.ip_range or cfg.subnet
    lo = max(int(rng.network_address), int(cfg.subnet.network_address) + 1)
    hi = min(int(rng.broadcast_address), int(cfg.subnet.broadcast_address) - 1)
    reserved = {int(cfg.gateway), *(int(a) for a in cfg.aux.values())}
    size = max(0, hi - lo + 1) - sum(1 for r in reserved if lo <= r <= hi)
    used = int(space.used)
    return str(ipaddress.ip_network(rng)), used, max(0, size - used)


def _buckets(counts: list[int], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one: above every bound) -> cumulative Prometheus buckets."""
    cumulative, out = 0, []
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        cumulative += count
        out.append((bound, float(cumulative)))
    return out


class EngineCollector:
    """The engine's state as metric families, read when Prometheus scrapes."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its families are known only at collect time

    def collect(self) -> Iterator[Metric]:
        yield from self._containers()
        yield from self._networks()
        yield from self._dns()
        repairs = CounterMetricFamily(
            "tether_firewall_repairs", "Times tether re-applied its nftables tables (drift)"
        )
        repairs.add_metric([], float(getattr(self.engine, "firewall_repairs", 0)))
        yield repairs
        yield from self._cluster()

    def _cluster(self) -> Iterator[Metric]:
        """With ``--cluster-store``: hosts seen, and the ``ClusterStats`` the cluster view's
        store and lease keeper feed (``tether.engine.clusterstats``)."""
        cluster = getattr(self.engine.networks, "cluster", None)
        if cluster is None or not hasattr(cluster, "hosts"):
            return
        hosts = GaugeMetricFamily("tether_cluster_hosts", "Hosts seen in the cluster store")
        hosts.add_metric([], float(len(cluster.hosts) or 1))
        yield hosts
        stats = getattr(cluster, "stats", None)
        if stats is None:
            return
        rtt = HistogramMetricFamily(
            "tether_cluster_store_round_trip_seconds", "etcd round trips by operation",
            labels=["op"],
        )  # fmt: skip
        for op, hist in sorted(stats.round_trips.items()):
            rtt.add_metric([op], _buckets(hist.counts, CLUSTER_BUCKETS), hist.total)
        yield rtt
        lag = HistogramMetricFamily(
            "tether_cluster_watch_lag_seconds",
            "Time from this host's own put to the watch delivering it",
        )
        lag.add_metric([], _buckets(stats.lag.counts, CLUSTER_BUCKETS), stats.lag.total)
        yield lag
        renewals = CounterMetricFamily(
            "tether_cluster_lease_renewals", "Lease keep-alives by outcome", labels=["outcome"]
        )
        for outcome in ("ok", "expired", "failed"):
            renewals.add_metric([outcome], float(stats.renewals.get(outcome, 0)))
        yield renewals
        yield from _overload(stats)

    def _containers(self) -> Iterator[Metric]:
        ctl = self.engine.containers
        records = list(ctl.containers.values()) if ctl is not None else []
        by_state = GaugeMetricFamily("tether_containers", "Containers by state", labels=["state"])
        counts: dict[str, int] = dict.fromkeys(("created", "running", "paused", "exited"), 0)
        for c in records:
            counts[c.status] = counts.get(c.status, 0) + 1
        for state, n in sorted(counts.items()):
            by_state.add_metric([state], float(n))
        yield by_state
        restarts = GaugeMetricFamily(
            "tether_container_restarts", "Restarts (RestartCount) summed over the containers"
        )
        restarts.add_metric([], float(sum(c.restart_count for c in records)))
        yield restarts
        ports = GaugeMetricFamily("tether_published_ports", "Host ports published (running)")
        ports.add_metric([], float(len(ctl.table.port_rules()) if ctl is not None else 0))
        yield ports

    def _networks(self) -> Iterator[Metric]:
        ctl = self.engine.containers
        eps = GaugeMetricFamily(
            "tether_endpoints", "Endpoints per network", labels=["network", "driver"]
        )
        ipam = GaugeMetricFamily(
            "tether_ipam_addresses", "IPAM addresses per pool",
            labels=["network", "pool", "state"],
        )  # fmt: skip
        spaces = self.engine.networks.spaces
        for net in self.engine.networks.list():
            n = len(ctl.table.endpoints_on(net.id)) if ctl is not None else 0
            eps.add_metric([net.name, net.driver], float(n))
            for space in spaces.get(net.id, []):
                pool, used, free = _pool_sizes(space)
                ipam.add_metric([net.name, pool, "used"], float(used))
                ipam.add_metric([net.name, pool, "free"], float(free))
        yield eps
        yield ipam

    def _dns(self) -> Iterator[Metric]:
        stats = self.engine.dns_stats()
        if stats is None:
            return
        for name, doc, value in (
            (
                "queries",
                "DNS queries received",
                stats.queries + stats.cached + stats.forward_cached,
            ),
            ("answers", "DNS queries answered by tether itself", stats.answered + stats.cached),
            (
                "forwarded",
                "DNS queries for names that are not containers' (forwarding cache or upstream)",
                stats.forwarded + stats.forward_cached,
            ),
            (
                "forward_cache_hits",
                "Forwarded DNS queries answered from the forwarding cache",
                stats.forward_hits + stats.forward_cached,
            ),
            (
                "forward_cache_misses",
                "DNS exchanges sent upstream (forwarding cache misses)",
                stats.forward_misses,
            ),
            (
                "forward_coalesced",
                "Forwarded DNS queries that joined an identical exchange in flight",
                stats.forward_coalesced,
            ),
            ("nxdomain", "NXDOMAIN answers", stats.nxdomain),
            ("servfail", "SERVFAIL answers", stats.servfail),
        ):
            fam = CounterMetricFamily(f"tether_dns_{name}", doc)
            fam.add_metric([], float(value))
            yield fam
        buckets = _buckets(stats.forward_counts, BUCKETS)
        hist = HistogramMetricFamily(
            "tether_dns_forward_duration_seconds",
            "Forwarded DNS queries' latency (answers from a sandbox's answer cache aside)",
        )
        hist.add_metric([], buckets, stats.forward_sum)
        yield hist


def _overload(stats: Any) -> Iterator[Metric]:
    """The overload counters of ``ClusterStats`` (docs/cluster-overload.md)."""
    grants = CounterMetricFamily(
        "tether_cluster_lease_grants", "Leases granted again after the first (lease lost)"
    )
    grants.add_metric([], float(stats.renewals.get("granted", 0)))
    yield grants
    events = CounterMetricFamily(
        "tether_cluster_store_events",
        "etcd requests sent, and how calls failed or waited (timeout, unavailable, queued, "
        "shed, watch_resume)",
        labels=["kind"],
    )
    for kind in ("request", "timeout", "unavailable", "queued", "shed", "watch_resume"):
        events.add_metric([kind], float(stats.events.get(kind, 0)))
    yield events
    sleeps = CounterMetricFamily(
        "tether_cluster_backoffs", "Back-off sleeps of the cluster's retry loops", labels=["loop"]
    )
    slept = CounterMetricFamily(
        "tether_cluster_backoff_seconds", "Seconds slept backing off, by loop", labels=["loop"]
    )
    for loop in sorted(stats.backoffs):
        sleeps.add_metric([loop], float(stats.backoffs[loop]))
        slept.add_metric([loop], float(stats.backoff_seconds.get(loop, 0.0)))
    yield sleeps
    yield slept
