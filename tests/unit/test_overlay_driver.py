"""OverlayDriver against FakeNetlink: devices, FDB and neighbour entries, no root."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.contracts.model import Endpoint, Network, mac_for, new_id
from tether.contracts.pools import PoolConfig
from tether.drivers.overlay import OverlayDriver, Peer, bridge_name, veth_name, vxlan_name
from tether.errors import BadRequest, Internal
from tether.testing.netlink import FakeNetlink

LOCAL, REMOTE, REMOTE2 = "198.18.0.1", "198.18.0.2", "198.18.0.3"


def network(vni: int = 4096) -> Network:
    import ipaddress

    subnet = ipaddress.IPv4Network("10.77.0.0/24")
    cfg = PoolConfig(subnet, subnet.network_address + 1)
    return Network(new_id(), "ov", "overlay", scope="global", configs=[cfg.to_json()], vni=vni)


def endpoint(net: Network, ip: str, name: str = "c") -> Endpoint:
    return Endpoint(
        new_id(), net.id, net.name, name, name, ip=ip, prefixlen=24, mac=mac_for(ip), ifname="eth0"
    )


def peer(ip: str, vtep: str = REMOTE) -> Peer:
    return Peer("ep-" + ip, ip, mac_for(ip), vtep)


class Published:
    def __init__(self) -> None:
        self.records: dict[str, bool] = {}

    async def __call__(self, net: Network, ep: Endpoint, present: bool) -> None:
        self.records[ep.id] = present


def setup(peers: list[Peer] | None = None) -> tuple[FakeNetlink, OverlayDriver, Published]:
    nl = FakeNetlink()
    known = peers if peers is not None else []
    pub = Published()
    drv = OverlayDriver(nl, LOCAL, peers=lambda _nid: list(known), publish=pub)
    return nl, drv, pub


def test_first_join_wires_bridge_and_vxlan_and_programs_known_peers() -> None:
    async def main() -> None:
        p = peer("10.77.0.9")
        nl, drv, pub = setup([p])
        net = network()
        await drv.create(net)
        assert nl.links == {}  # nothing before the first local container
        ep = endpoint(net, "10.77.0.2")
        await drv.join(net, ep, "/run/fake/c")
        br, vx = bridge_name(net), vxlan_name(net)
        assert nl.links[br].kind == "bridge" and nl.links[br].mtu == 1450
        assert nl.links[vx].kind == "vxlan" and nl.links[vx].master == br
        assert nl.links[vx].info == {"vni": 4096, "local": LOCAL, "port": 4789}
        assert nl.links[veth_name(ep)].master == br
        spec = nl.sandboxes["/run/fake/c"]["eth0"]
        assert spec.mtu == 1450 and spec.address == "10.77.0.2/24" and spec.gateway is None
        assert nl.fdb[vx] == {p.mac: REMOTE}
        assert nl.neigh[vx] == {p.ip: p.mac}
        assert pub.records == {ep.id: True}
        # the vxlan device exists before any entry is programmed on it
        order = [c[0] for c in nl.calls]
        assert order.index("ensure_vxlan") < order.index("set_entries")

    asyncio.run(main())


def test_remote_endpoint_events_program_and_remove_entries() -> None:
    async def main() -> None:
        nl, drv, _ = setup()
        net = network()
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        vx = vxlan_name(net)
        a, b = peer("10.77.0.10"), peer("10.77.0.11", REMOTE2)
        await drv.peer_changed(net, a, True)
        await drv.peer_changed(net, b, True)
        assert nl.fdb[vx] == {a.mac: REMOTE, b.mac: REMOTE2}
        assert nl.neigh[vx] == {a.ip: a.mac, b.ip: b.mac}
        await drv.peer_changed(net, a, False)
        assert nl.fdb[vx] == {b.mac: REMOTE2}
        assert nl.neigh[vx] == {b.ip: b.mac}
        # the same event twice is programmed once
        before = len(nl.calls)
        await drv.peer_changed(net, b, True)
        assert len(nl.calls) == before

    asyncio.run(main())


def test_an_endpoint_that_moved_is_reprogrammed() -> None:
    async def main() -> None:
        nl, drv, _ = setup()
        net = network()
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        vx = vxlan_name(net)
        a = peer("10.77.0.10")
        await drv.peer_changed(net, a, True)
        moved = Peer(a.endpoint_id, "10.77.0.12", mac_for("10.77.0.12"), REMOTE2)
        await drv.peer_changed(net, moved, True)
        assert nl.fdb[vx] == {moved.mac: REMOTE2}
        assert nl.neigh[vx] == {moved.ip: moved.mac}

    asyncio.run(main())


def test_own_vtep_and_unwired_networks_are_ignored() -> None:
    async def main() -> None:
        nl, drv, _ = setup()
        net = network()
        await drv.peer_changed(net, peer("10.77.0.10"), True)  # not wired here
        assert nl.calls == []
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        await drv.peer_changed(net, peer("10.77.0.11", LOCAL), True)
        assert nl.fdb.get(vxlan_name(net), {}) == {}

    asyncio.run(main())


def test_resync_removes_stale_and_adds_missing_entries() -> None:
    async def main() -> None:
        known: list[Peer] = []
        nl, drv, _ = setup(known)
        net = network()
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        vx = vxlan_name(net)
        stale, kept, new = peer("10.77.0.10"), peer("10.77.0.11"), peer("10.77.0.12", REMOTE2)
        for p in (stale, kept):
            await drv.peer_changed(net, p, True)
        known[:] = [kept, new]
        await drv.resync(net)
        assert nl.fdb[vx] == {kept.mac: REMOTE, new.mac: REMOTE2}
        assert nl.neigh[vx] == {kept.ip: kept.mac, new.ip: new.mac}

    asyncio.run(main())


def test_last_leave_unwires_and_a_rejoin_reprograms() -> None:
    async def main() -> None:
        known = [peer("10.77.0.10")]
        nl, drv, pub = setup(known)
        net = network()
        e1, e2 = endpoint(net, "10.77.0.2", "a"), endpoint(net, "10.77.0.3", "b")
        await drv.join(net, e1, "/run/fake/a")
        await drv.join(net, e2, "/run/fake/b")
        await drv.leave(net, e1, "/run/fake/a")
        assert vxlan_name(net) in nl.links and drv.wired(net.id)
        await drv.leave(net, e2, "/run/fake/b")
        assert nl.links == {} and not drv.wired(net.id)
        assert pub.records == {e1.id: False, e2.id: False}
        await drv.join(net, endpoint(net, "10.77.0.4", "c"), "/run/fake/c")
        assert nl.fdb[vxlan_name(net)] == {known[0].mac: REMOTE}

    asyncio.run(main())


def test_failed_join_leaves_nothing_behind() -> None:
    async def main() -> None:
        nl, drv, pub = setup()
        net = network()
        nl.fail["add_veth"] = Internal("cannot create endpoint eth0: boom")
        with pytest.raises(Internal):
            await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        assert nl.links == {} and not drv.wired(net.id) and pub.records == {}

    asyncio.run(main())


def test_a_network_without_vni_is_refused() -> None:
    async def main() -> None:
        _, drv, _ = setup()
        net = network(vni=0)
        with pytest.raises(BadRequest):
            await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")

    asyncio.run(main())


def test_delete_removes_both_devices() -> None:
    async def main() -> None:
        nl, drv, _ = setup([peer("10.77.0.10")])
        net = network()
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        await drv.delete(net)
        assert bridge_name(net) not in nl.links and vxlan_name(net) not in nl.links
        assert nl.fdb == {} and nl.neigh == {}
        assert drv.owned_links(net) == {bridge_name(net), vxlan_name(net)}

    asyncio.run(main())


def test_adopt_after_a_restart_removes_entries_of_peers_gone_meanwhile() -> None:
    """The kernel kept the entries across the daemon restart; a peer that left while the
    daemon was down is no longer in the store, so its entries must go at adopt."""

    async def main() -> None:
        gone, kept = peer("10.77.0.10"), peer("10.77.0.11", REMOTE2)
        known = [gone, kept]
        nl, drv, _ = setup(known)
        net = network()
        a, b = endpoint(net, "10.77.0.2", "a"), endpoint(net, "10.77.0.3", "b")
        await drv.join(net, a, "/run/fake/a")
        await drv.join(net, b, "/run/fake/b")
        vx = vxlan_name(net)
        assert nl.fdb[vx] == {gone.mac: REMOTE, kept.mac: REMOTE2}
        # the daemon restarts (a fresh driver over the same kernel); `gone` left meanwhile
        known[:] = [kept]
        drv2 = OverlayDriver(nl, LOCAL, peers=lambda _nid: list(known))
        await drv2.adopt(net, a)
        await drv2.adopt(net, b)
        assert nl.fdb[vx] == {kept.mac: REMOTE2}
        assert nl.neigh[vx] == {kept.ip: kept.mac}
        # both adopted containers count: the first leave keeps the devices
        await drv2.leave(net, a, "/run/fake/a")
        assert vx in nl.links
        await drv2.leave(net, b, "/run/fake/b")
        assert vx not in nl.links

    asyncio.run(main())


class FakeSpaces:
    """Namespaces by name, as NetnsSpaces keeps them (no kernel)."""

    def __init__(self) -> None:
        self.made: set[str] = set()
        self.fail: BaseException | None = None

    async def ensure(self, net_id: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.made.add(net_id[:12])
        return f"/run/fake/overlay/{net_id[:12]}"

    def delete(self, net_id: str) -> None:
        self.made.discard(net_id[:12])

    def list(self) -> list[str]:
        return sorted(self.made)


def setup_spaces(
    peers: list[Peer] | None = None,
) -> tuple[FakeNetlink, OverlayDriver, FakeSpaces]:
    nl = FakeNetlink()
    known = peers if peers is not None else []
    spaces = FakeSpaces()
    drv = OverlayDriver(
        nl, LOCAL, peers=lambda _nid: list(known), publish=Published(), spaces=spaces
    )
    return nl, drv, spaces


def test_devices_live_in_the_networks_namespace_and_go_with_the_last_container() -> None:
    async def main() -> None:
        p = peer("10.77.0.9")
        nl, drv, spaces = setup_spaces([p])
        net = network()
        a, b = endpoint(net, "10.77.0.2", "a"), endpoint(net, "10.77.0.3", "b")
        await drv.join(net, a, "/run/fake/a")
        await drv.join(net, b, "/run/fake/b")
        ns = f"/run/fake/overlay/{net.id[:12]}"
        assert spaces.list() == [net.id[:12]]
        for name in (bridge_name(net), vxlan_name(net), veth_name(a), veth_name(b)):
            assert nl.links[name].info["ns"] == ns, name
        assert nl.fdb[vxlan_name(net)] == {p.mac: REMOTE}
        await drv.leave(net, a, "/run/fake/a")
        assert veth_name(a) not in nl.links and spaces.list() == [net.id[:12]]
        await drv.leave(net, b, "/run/fake/b")
        assert nl.links == {} and spaces.list() == []

    asyncio.run(main())


def test_a_network_wired_by_an_older_tether_stays_in_the_host_namespace() -> None:
    async def main() -> None:
        nl, drv, spaces = setup_spaces()
        net = network()
        await nl.ensure_bridge(bridge_name(net), None, 1450)  # left by the older daemon
        ep = endpoint(net, "10.77.0.2")
        await drv.adopt(net, ep)
        assert spaces.list() == [] and "ns" not in nl.links[vxlan_name(net)].info
        await drv.leave(net, ep, "/run/fake/c")
        assert nl.links == {}

    asyncio.run(main())


def test_failures_leave_no_namespace_and_sweep_removes_unused_ones() -> None:
    async def main() -> None:
        nl, drv, spaces = setup_spaces()
        net = network()
        nl.fail["ensure_vxlan"] = Internal("cannot set up vxlan: boom")
        with pytest.raises(Internal):
            await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        assert spaces.list() == [] and not drv.wired(net.id)
        spaces.fail = Internal("cannot create network namespace")
        with pytest.raises(Internal):
            await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        assert nl.links == {} and spaces.list() == []
        spaces.fail = None
        # after a restart: one namespace in use (adopted), one left by a network gone meanwhile
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        spaces.made.add("0123456789ab")
        await drv.sweep()
        assert spaces.list() == [net.id[:12]]

    asyncio.run(main())


def test_a_gone_endpoint_does_not_take_the_entries_of_the_one_now_at_its_address() -> None:
    """An address (so its MAC) passed to an endpoint on another host whose record came first
    (the old one's delete was held back: written while the store was away, deleted later).
    Removing the old one's neighbour entry, keyed by the address, took the new one's: the new
    container was unreachable until a full resync. Whichever of the two goes first, the
    entries are those of the one that stays."""

    async def main(first_gone: str) -> None:
        old = peer("10.77.0.9")
        new = Peer("ep-new", old.ip, old.mac, "198.18.0.33")
        nl, drv, _ = setup([old])
        net = network()
        await drv.create(net)
        await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")  # old programmed
        await drv.peers_changed(net, {new.endpoint_id: new})  # the kernel's entries: new's
        gone, stays = (old, new) if first_gone == "old" else (new, old)
        await drv.peers_changed(net, {gone.endpoint_id: None})
        vx = vxlan_name(net)
        assert nl.neigh[vx] == {stays.ip: stays.mac}
        assert nl.fdb[vx] == {stays.mac: stays.vtep}
        assert drv._programmed[net.id] == {stays.endpoint_id: stays}

    asyncio.run(main("old"))
    asyncio.run(main("new"))


def test_a_first_join_whose_catch_up_failed_leaves_nothing_wired() -> None:
    """The first join wires the network and programs every known peer; when that batch failed
    the network stayed wired without them, and the next join (wired already) never caught up."""

    async def main() -> None:
        p = peer("10.77.0.9")
        nl, drv, _ = setup([p])
        net = network()
        await drv.create(net)
        real = nl.set_entries

        async def refused(vxlan: str, entries: Any, ns_path: Any = None) -> None:
            raise Internal(f"cannot program the entries of {vxlan}: no buffer space")

        nl.set_entries = refused  # type: ignore[method-assign]
        with pytest.raises(Internal):
            await drv.join(net, endpoint(net, "10.77.0.2"), "/run/fake/c")
        assert not drv.wired(net.id)
        nl.set_entries = real  # type: ignore[method-assign]
        await drv.join(net, endpoint(net, "10.77.0.3", "d"), "/run/fake/d")
        vx = vxlan_name(net)
        assert nl.fdb[vx] == {p.mac: p.vtep} and nl.neigh[vx] == {p.ip: p.mac}

    asyncio.run(main())
