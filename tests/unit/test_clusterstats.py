"""The cluster's metrics sink (issue 19): ``MeteredStore`` and ``LeaseKeeper``'s renewals,
over the in-memory etcd of ``clusterfakes``; the topology's remote containers."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.clusterfakes import LeaseBackend
from tests.unit.test_container_controller import aio

from tether.contracts.cluster import Peer
from tether.contracts.model import Network
from tether.engine.clusterstats import ClusterStats, MeteredStore
from tether.engine.topology import Topology
from tether.store.base import Op
from tether.store.lease import LeaseKeeper


@aio
async def test_round_trips_and_the_watch_lag_of_own_writes() -> None:
    backend = LeaseBackend()
    stats = ClusterStats()
    store = MeteredStore(backend.host_store(), stats)
    watch = aiter(store.watch("cluster/", 1))
    rev = await store.put("cluster/a", {"x": 1})
    assert (await anext(watch)).revision == rev
    ok = await store.txn([Op("create", "cluster/b", {"x": 2})])
    assert (await anext(watch)).revision == ok.revision
    assert await store.get("cluster/a") is not None
    assert sum(stats.lag.counts) == 2 and stats.lag.total >= 0
    calls = {op: sum(h.counts) for op, h in stats.round_trips.items()}
    assert calls == {"txn": 1, "put": 1, "get": 1}


@aio
async def test_lease_renewals_are_counted_by_outcome() -> None:
    backend = LeaseBackend()
    stats = ClusterStats()
    keeper = LeaseKeeper(backend.host_store(), 2, on_renewal=stats.lease_renewal)  # type: ignore[arg-type]
    await keeper.start()
    await asyncio.sleep(0.7)  # one refresh every ttl/4 ±20 % (at least 0.5 s)
    await keeper.close()
    assert stats.renewals == {"ok": 1}


class Cluster:
    host = "10.0.0.1"
    hosts: dict[str, dict[str, Any]] = {"10.0.0.1": {"vtep": "10.0.0.1"}, "10.0.0.2": {}}

    def peers(self, net_id: str) -> list[Peer]:
        return []

    def remote_endpoints(self, net_id: str) -> list[dict[str, Any]]:
        return [{"container": "c" * 64, "name": "b1", "aliases": ["bee"], "ip": "10.9.0.3",
                 "prefixlen": 24, "mac": "02:42:0a:09:00:03", "host": "10.0.0.2",
                 "vtep": "10.0.0.2", "ip6": "fd00::3", "prefixlen6": 64}]  # fmt: skip


class Networks:
    drivers: dict[str, Any] = {}
    networks: dict[str, Network] = {}

    def list(self) -> list[Network]:
        return [Network(id="n" * 64, name="ov", driver="overlay", scope="global")]


@aio
async def test_remote_containers_come_from_the_cluster_view() -> None:
    topo = Topology(Networks(), None, None, Cluster())  # type: ignore[arg-type]
    model = await topo.build(kernel=False)
    [b1] = model["containers"]
    assert b1["remote"] is True and b1["host"] == "10.0.0.2" and b1["networks"] == ["ov"]
    assert b1["dns_names"] == {"ov": ["b1", "bee"]}
    [ep] = model["endpoints"]
    assert ep["ipv4"] == "10.9.0.3/24" and ep["ipv6"] == "fd00::3/64" and ep["vtep"] == "10.0.0.2"
    assert {h["address"] for h in model["hosts"]} == {"10.0.0.1", "10.0.0.2"}
