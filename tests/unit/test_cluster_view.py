"""The cluster view without etcd or root: two fake hosts sharing one lease-capable store.

Each test runs its own event loop; the fake store yields on every call so the two
hosts' coroutines interleave as two daemons would (see ``clusterfakes``).
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from clusterfakes import FakeClock, FakeHost, LeaseBackend, run, wait_for

from tether.contracts.model import Endpoint, Network
from tether.engine.cluster import POOLS_KEY, ROOT
from tether.engine.networks import CreateRequest
from tether.errors import BadRequest, Conflict, Forbidden, Unavailable

V1, V2 = "198.18.0.1", "198.18.0.2"


async def two_hosts(**options: object) -> tuple[LeaseBackend, FakeHost, FakeHost]:
    backend = LeaseBackend()
    h1 = FakeHost(backend, "h1", V1, **options)
    h2 = FakeHost(backend, "h2", V2, **options)
    await h1.start()
    await h2.start()
    return backend, h1, h2


async def one_endpoint_seen() -> tuple[LeaseBackend, FakeHost, FakeHost, Network, Endpoint, int]:
    """Two hosts, network "ov" with container "a" on h1 seen by h2; and h1's lease id."""
    backend, h1, h2 = await two_hosts()
    net = await h1.create("ov", "10.77.0.0/24")
    ep = await h1.join(net, "a")
    await wait_for(lambda: len(h2.view.peers(net.id)) == 1, "a on h2")
    assert h1.view.lease is not None
    return backend, h1, h2, net, ep, h1.view.lease.lease_id


async def stop(*hosts: FakeHost) -> None:
    for h in hosts:
        await h.stop()


# ---- networks ---------------------------------------------------------------------------


def test_network_created_on_one_host_is_seen_by_the_other() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        net = await h1.create("ov1", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov1") is not None, "ov1 on h2")
        seen = h2.networks.get("ov1")
        assert seen.id == net.id and seen.scope == "global" and seen.vni == net.vni >= 4096
        assert seen.options["com.docker.network.driver.overlay.vxlanid_list"] == str(net.vni)
        assert str(seen.pools[0].subnet) == "10.77.0.0/24"
        # and removal is seen too
        await h1.networks.remove("ov1", lambda _n: False)
        await wait_for(lambda: h2.networks.find("ov1") is None, "ov1 gone on h2")
        index = await h1.store.get(POOLS_KEY)
        assert index is not None and index.value["pools"] == []
        await stop(h1, h2)

    run(main())


def test_duplicate_name_is_refused_across_hosts_even_when_racing() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        results = await asyncio.gather(
            h1.create("same", "10.1.0.0/24"),
            h2.create("same", "10.2.0.0/24"),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], Conflict)
        assert errors[0].message == "network with name same already exists"
        # the loser's pool is not left in the index
        index = await h1.store.get(POOLS_KEY)
        assert index is not None and len(index.value["pools"]) == 1
        # a later create on the other host, once it knows the network, is refused too
        with pytest.raises(Conflict):
            await h2.create("same", "10.3.0.0/24")
        await stop(h1, h2)

    run(main())


def test_racing_creates_get_different_vnis() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        a, b = await asyncio.gather(h1.create("a", "10.1.0.0/24"), h2.create("b", "10.2.0.0/24"))
        assert a.vni != b.vni
        vnis = {r.key for r in await h1.store.list(ROOT + "vni/")}
        assert vnis == {f"{ROOT}vni/{a.vni}", f"{ROOT}vni/{b.vni}"}
        await stop(h1, h2)

    run(main())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("10.1.0.0/16", "10.1.2.0/24"),
        ("10.1.2.0/24", "10.1.0.0/16"),
        ("10.5.0.0/24", "10.5.0.0/24"),
    ],
)
def test_racing_overlapping_pools_only_one_wins(first: str, second: str) -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        # different VNIs, so that no VNI collision makes one of them retry and re-read:
        # only the pool index's compare-and-swap may stop the second
        h2.view._taken_vni.add(4096)
        results = await asyncio.gather(
            h1.create("p1", first), h2.create("p2", second), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        assert isinstance(errors[0], Forbidden)
        assert errors[0].message == "Pool overlaps with other one on this address space"
        networks = await h1.store.list(ROOT + "networks/")
        assert len(networks) == 1
        await stop(h1, h2)

    run(main())


def test_racing_automatic_pools_are_picked_apart() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        a, b = await asyncio.gather(h1.create("auto1"), h2.create("auto2"))
        sa, sb = a.pools[0].subnet, b.pools[0].subnet
        assert not sa.overlaps(sb), (sa, sb)
        index = await h1.store.get(POOLS_KEY)
        assert index is not None
        assert sorted(p["subnet"] for p in index.value["pools"]) == sorted([str(sa), str(sb)])
        await stop(h1, h2)

    run(main())


def test_automatic_pools_come_from_the_global_pool_and_a_vni_can_be_asked() -> None:
    """Automatic overlay subnets are /24s of 10.0.0.0/8 (Docker's global default pool), never a
    local pool's 172.x that another host picks for its bridges; a valid vxlanid_list is
    honoured, a taken one refused, a bad one refused with Docker's text."""

    async def main() -> None:
        _, h1, h2 = await two_hosts()
        auto = await h1.create("auto1")
        assert auto.pools[0].subnet == ipaddress.IPv4Network("10.0.0.0/24")
        opt = "com.docker.network.driver.overlay.vxlanid_list"
        req = CreateRequest(
            "v1", "overlay", configs=[{"Subnet": "10.9.0.0/24"}], options={opt: "5000"}
        )
        asked = await h1.networks.create(req)
        assert asked.vni == 5000 and asked.options[opt] == "5000"
        await wait_for(lambda: h2.networks.find("v1") is not None, "v1 on h2")
        again = CreateRequest(
            "v2", "overlay", configs=[{"Subnet": "10.9.1.0/24"}], options={opt: "5000"}
        )
        with pytest.raises(Conflict, match=r"^vxlan id 5000 is already in use$"):
            await h2.networks.create(again)
        bad = CreateRequest("v3", "overlay", options={opt: "bad"})
        with pytest.raises(BadRequest, match=r'^invalid vxlan id value "bad" passed$'):
            await h2.networks.create(bad)
        mtu = CreateRequest("v4", "overlay", options={"com.docker.network.driver.mtu": "abc"})
        with pytest.raises(BadRequest, match=r"^failed to parse com.docker.network.driver.mtu"):
            await h2.networks.create(mtu)
        assert {n.name for n in h2.networks.list() if n.scope == "global"} == {"auto1", "v1"}
        await stop(h1, h2)

    run(main())


def test_removing_a_network_frees_its_pool_for_another_host() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        await h1.create("p1", "10.9.0.0/24")
        await wait_for(lambda: h2.networks.find("p1") is not None, "p1 on h2")
        await h1.networks.remove("p1", lambda _n: False)
        await wait_for(lambda: h2.networks.find("p1") is None, "p1 gone on h2")
        net = await h2.create("p2", "10.9.0.0/16")
        assert net.scope == "global"
        await stop(h1, h2)

    run(main())


# ---- addresses ----------------------------------------------------------------------------


def test_concurrent_address_holds_never_collide() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        net1 = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        net2 = h2.networks.get("ov")

        async def hold(h: FakeHost, net: object, n: int) -> list[str]:
            out = []
            for i in range(n):
                ip, _p, _g = h.networks.allocate(net, None)
                out.append(await h.networks.hold_global(net, ip, "", f"{h.name}-c{i}"))
            return out

        a, b = await asyncio.gather(hold(h1, net1, 30), hold(h2, net2, 30))
        assert len(set(a) | set(b)) == 60
        held = await h1.store.list(f"{ROOT}ipam/{net1.id}/")
        owners = {r.key.rsplit("/", 1)[1]: r.value["host"] for r in held}
        assert {ip for ip, h in owners.items() if h == "h1"} == set(a)
        assert {ip for ip, h in owners.items() if h == "h2"} == set(b)
        await stop(h1, h2)

    run(main())


def test_static_address_held_elsewhere_is_in_use() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        net1 = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        ip, _p, _g = h1.networks.allocate(net1, "10.77.0.50")
        await h1.networks.hold_global(net1, ip, "10.77.0.50", "c1")
        # h2 has not seen the holding yet or has: either way the store refuses it
        net2 = h2.networks.get("ov")
        h2.networks.release(net2.id, "10.77.0.50")
        ip2, _p, _g = h2.networks.allocate(net2, "10.77.0.50")
        with pytest.raises(Conflict, match="Address already in use"):
            await h2.networks.hold_global(net2, ip2, "10.77.0.50", "c2")
        await stop(h1, h2)

    run(main())


# ---- endpoints, leases, resync -------------------------------------------------------------


def test_endpoint_records_appear_and_disappear_in_the_other_view() -> None:
    async def main() -> None:
        _, h1, h2 = await two_hosts()
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        ep = await h1.join(net, "web")
        await wait_for(lambda: len(h2.view.peers(net.id)) == 1, "web's record on h2")
        peer = h2.view.peers(net.id)[0]
        assert (peer.ip, peer.mac, peer.vtep) == (ep.ip, ep.mac, V1)
        assert h1.view.peers(net.id) == []  # own endpoints are not peers
        assert [r["name"] for r in h2.view.remote_endpoints(net.id)] == ["web"]
        await h1.leave(net, ep)
        await wait_for(lambda: h2.view.peers(net.id) == [], "web's record gone on h2")
        assert await h1.store.list(f"{ROOT}ipam/{net.id}/") == []
        await stop(h1, h2)

    run(main())


def test_lease_expiry_removes_a_dead_hosts_endpoints_and_kernel_entries() -> None:
    async def main() -> None:
        backend, h1, h2 = await two_hosts()
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        ep1 = await h1.join(net, "a")
        ep2 = await h2.join(h2.networks.get("ov"), "b")
        vx = "tvx-" + net.id[:11]
        await wait_for(lambda: h2.nl.fdb.get(vx, {}).get(ep1.mac) == V1, "fdb for a on h2")
        assert h2.nl.neigh[vx][ep1.ip] == ep1.mac
        await wait_for(lambda: h1.nl.fdb.get(vx, {}).get(ep2.mac) == V2, "fdb for b on h1")
        assert h1.view.lease is not None
        lease = h1.view.lease.lease_id
        await h1.die()
        await backend.expire(lease)
        await wait_for(lambda: h2.view.peers(net.id) == [], "a's record expired on h2")
        await wait_for(lambda: ep1.mac not in h2.nl.fdb.get(vx, {}), "a's entries removed (batch)")
        assert ep1.ip not in h2.nl.neigh.get(vx, {})
        assert "h1" not in h2.view.hosts
        await stop(h2)

    run(main())


def test_own_record_lost_with_an_old_lease_is_put_back() -> None:
    async def main() -> None:
        backend, h1, h2, net, ep, old = await one_endpoint_seen()
        # the lease runs out while h1 lives (etcd away too long): the keeper regrants
        await backend.expire(old)
        await h1.view.lease._regrant()
        key = f"{ROOT}endpoints/{net.id}/{ep.id}"
        await wait_for(lambda: backend.mem._data.get(key) is not None, "record put back")
        await wait_for(lambda: len(h2.view.peers(net.id)) == 1, "a back on h2")
        assert key in backend.leases[h1.view.lease.lease_id]
        await stop(h1, h2)

    run(main())


def test_a_join_that_finds_the_lease_gone_replaces_it_and_succeeds() -> None:
    """The lease ran out while etcd was away; the first write after (a ``docker run``)
    learns it before the keeper's next keep-alive: one new lease, the join succeeds, and
    the host's earlier records are put back under the new lease."""

    async def main() -> None:
        backend, h1, h2, net, first, old = await one_endpoint_seen()
        await backend.expire(old)  # behind the keeper's back: no keep-alive ran since
        grants = backend.grants
        joined = await asyncio.gather(h1.join(net, "b"), h1.join(net, "c"))
        assert backend.grants == grants + 1  # both writers shared one grant
        new = h1.view.lease.lease_id
        assert new != old
        keys = {f"{ROOT}endpoints/{net.id}/{ep.id}" for ep in (first, *joined)}
        assert keys <= backend.leases[new]
        assert f"{ROOT}hosts/h1" in backend.leases[new]
        await wait_for(lambda: len(h2.view.peers(net.id)) == 3, "a, b and c on h2")
        await stop(h1, h2)

    run(main())


def test_a_write_refused_for_another_reason_does_not_replace_the_lease() -> None:
    async def main() -> None:
        backend, h1, h2 = await two_hosts()
        assert h1.view.lease is not None
        grants = backend.grants

        async def refused(lease_id: int) -> None:
            raise Unavailable("cluster store etcd://fake:2379 is unreachable")

        with pytest.raises(Unavailable):
            await h1.view.lease.under(refused)
        assert backend.grants == grants
        await stop(h1, h2)

    run(main())


def test_compacted_watch_does_a_full_resync() -> None:
    async def main() -> None:
        backend, h1, h2 = await two_hosts()
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        old = await h1.join(net, "old")
        local = await h2.join(h2.networks.get("ov"), "local")
        vx = "tvx-" + net.id[:11]
        await wait_for(lambda: old.mac in h2.nl.fdb.get(vx, {}), "old programmed on h2")
        # h2's watch stops (a long GC pause, a broken stream) ...
        task = h2.view._task
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # ... while h1 changes things, and the history is compacted away
        new = await h1.join(net, "new")  # first, so it does not reuse old's address and MAC
        await h1.leave(net, old)
        gone_net = await h1.create("ov-gone", "10.78.0.0/24")
        await h1.networks.remove(gone_net.id, lambda _n: False)
        other = await h1.create("ov2", "10.79.0.0/24")
        backend.mem.compact(backend.mem.revision)
        assert h2.view.revision < backend.mem.revision
        h2.view._task = asyncio.create_task(h2.view._run())
        await wait_for(lambda: h2.networks.find("ov2") is not None, "ov2 after resync")
        await wait_for(lambda: new.mac in h2.nl.fdb.get(vx, {}), "new programmed after resync")
        assert old.mac not in h2.nl.fdb[vx]
        assert old.ip not in h2.nl.neigh[vx]
        assert h2.nl.neigh[vx][new.ip] == new.mac
        assert h2.networks.find("ov-gone") is None and other.id in h2.view.global_ids
        assert local.mac not in h2.nl.fdb[vx]  # never its own endpoint
        # and the watch goes on from the snapshot
        extra = await h1.join(net, "extra")
        await wait_for(lambda: extra.mac in h2.nl.fdb.get(vx, {}), "extra after resync")
        await stop(h1, h2)

    run(main())


# ---- holdings of a host that is gone --------------------------------------------------------


def test_a_gone_hosts_holdings_are_swept_after_the_grace_period() -> None:
    async def main() -> None:
        clock = FakeClock()
        backend, h1, h2 = await two_hosts(sweep_after=300.0, clock=clock)
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        net2 = h2.networks.get("ov")
        eps = [await h2.join(net2, f"c{i}") for i in range(3)]
        mine = await h1.join(net, "stays")
        await wait_for(lambda: len(h1.view.holdings.get(net.id, {})) == 4, "holdings seen")
        assert h2.view.lease is not None
        lease = h2.view.lease.lease_id
        await h2.die()
        await backend.expire(lease)
        await wait_for(lambda: "h2" in h1.view.gone_since, "h2 gone")
        assert await h1.view.sweep() == 0  # not yet: h2 may come back
        clock.now += 299
        assert await h1.view.sweep() == 0
        clock.now += 2
        assert await h1.view.sweep() == 3
        left = await h1.store.list(f"{ROOT}ipam/{net.id}/")
        assert [r.key.rsplit("/", 1)[1] for r in left] == [mine.ip]
        # the freed addresses can be handed out again
        await wait_for(lambda: len(h1.view.holdings.get(net.id, {})) == 1, "sweep seen")
        space = h1.networks.spaces[net.id][0]
        assert all(space.is_free(ipaddress.IPv4Address(ep.ip)) for ep in eps)
        again = [await h1.join(net, f"n{i}") for i in range(3)]
        assert {e.ip for e in again} == {e.ip for e in eps}
        await stop(h1)

    run(main())


def test_no_sweep_when_the_host_came_back() -> None:
    async def main() -> None:
        clock = FakeClock()
        backend, h1, h2 = await two_hosts(sweep_after=10.0, clock=clock)
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        ep = await h2.join(h2.networks.get("ov"), "c")
        assert h2.view.lease is not None
        await backend.expire(h2.view.lease.lease_id)
        await wait_for(lambda: "h2" in h1.view.gone_since, "h2 gone")
        # h2 regrants and re-registers before h1 sweeps; h1 has not seen it yet
        h1_task = h1.view._task
        assert h1_task is not None
        h1_task.cancel()
        await asyncio.gather(h1_task, return_exceptions=True)
        await h2.view.lease._regrant()
        clock.now += 11
        assert await h1.view.sweep() == 0  # the transaction's host check failed
        assert await h1.store.get(f"{ROOT}ipam/{net.id}/{ep.ip}") is not None
        await stop(h1, h2)

    run(main())


def test_only_the_smallest_live_host_sweeps() -> None:
    async def main() -> None:
        clock = FakeClock()
        backend = LeaseBackend()
        hosts = [
            FakeHost(backend, n, f"198.18.0.{i}", sweep_after=1.0, clock=clock)
            for i, n in enumerate(["h1", "h2", "h3"], 1)
        ]
        for h in hosts:
            await h.start()
        h1, h2, h3 = hosts
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h3.networks.find("ov") is not None, "ov on h3")
        await h3.join(h3.networks.get("ov"), "c")
        assert h3.view.lease is not None
        lease = h3.view.lease.lease_id
        await h3.die()
        await backend.expire(lease)
        await wait_for(lambda: "h3" in h2.view.gone_since and "h3" in h1.view.gone_since, "gone")
        clock.now += 5
        assert await h2.view.sweep() == 0
        assert await h1.view.sweep() == 1
        assert await h1.store.list(f"{ROOT}ipam/{net.id}/") == []
        await stop(h1, h2)

    run(main())


def test_a_host_back_after_the_sweep_claims_its_running_addresses_again() -> None:
    async def main() -> None:
        clock = FakeClock()
        backend, h1, h2 = await two_hosts(sweep_after=5.0, clock=clock)
        net = await h1.create("ov", "10.77.0.0/24")
        await wait_for(lambda: h2.networks.find("ov") is not None, "ov on h2")
        ep = await h2.join(h2.networks.get("ov"), "c")
        assert h2.view.lease is not None
        # h2 is cut off: it does not see its records go (a live h2 would put them back
        # at once under a new lease, as test_a_join_that_finds_the_lease_gone... shows)
        h2_task = h2.view._task
        assert h2_task is not None
        h2_task.cancel()
        await asyncio.gather(h2_task, return_exceptions=True)
        await backend.expire(h2.view.lease.lease_id)
        await wait_for(lambda: "h2" in h1.view.gone_since, "h2 gone")
        clock.now += 6
        assert await h1.view.sweep() == 1
        # h2 was only cut off: it regrants, re-registers and resyncs
        await h2.view.lease._regrant()
        await h2.view._resync()
        rec = await h1.store.get(f"{ROOT}ipam/{net.id}/{ep.ip}")
        assert rec is not None and rec.value["host"] == "h2"
        await stop(h1, h2)

    run(main())


def test_releases_made_while_the_store_is_away_are_deleted_when_it_answers() -> None:
    """A container leaves while etcd does not answer: its endpoint record and its address
    holding are deleted by the periodic pass once the store answers again, without waiting
    for a full resync (they stayed: the name resolved and the address was held for good)."""

    async def main() -> None:
        _, h1, h2 = await two_hosts(sweep_after=4.0)
        net = await h1.create("ovp", "10.88.0.0/24")
        await wait_for(lambda: h2.networks.find("ovp") is not None, "ovp on h2")
        ep = await h2.join(net, "s5")
        ep_key = f"{ROOT}endpoints/{net.id}/{ep.id}"
        ip_key = f"{ROOT}ipam/{net.id}/{ep.ip}"
        real_delete = h2.store.delete

        async def away(key: str) -> bool:
            raise Unavailable("cluster store unreachable")

        h2.store.delete = away  # type: ignore[method-assign]
        await h2.leave(h2.networks.get("ovp"), ep)
        assert {ep_key, ip_key} <= h2.view.pending_release
        assert await h1.store.get(ep_key) is not None
        h2.store.delete = real_delete  # type: ignore[method-assign]
        await wait_for(lambda: not h2.view.pending_release, "pending releases flushed")
        assert await h1.store.get(ep_key) is None and await h1.store.get(ip_key) is None
        await stop(h1, h2)

    run(main())


def test_a_back_off_ends_when_the_store_answers_again_not_while_it_is_only_slow() -> None:
    """The resync/rewatch loops back off up to 30 s; the store's "etcd is back" signal (a
    keep-alive that succeeds after a failed one) ends the sleep at once, a keep-alive that
    succeeds while the store is merely slow (no failure before it) does not."""
    from tether.store.backoff import Backoff

    async def main() -> None:
        _backend, h1, h2 = await two_hosts()
        view = h1.view
        sleeping = asyncio.create_task(view._back_off("resync", Backoff(20.0, 20.0)))
        await asyncio.sleep(0.05)
        h1.store.recovery.answered()  # healthy keep-alive: the back-off goes on
        await asyncio.sleep(0.05)
        assert not sleeping.done()
        h1.store.recovery.failed()
        h1.store.recovery.answered()  # the store is back
        await asyncio.wait_for(sleeping, 1.0)
        await stop(h1, h2)

    run(main())
