"""Port updates (``update_ports``) against the whole-table reference, over FakeNft.

The invariant: after any sequence of updates, tether's table holds exactly what
``apply(nets, current ports)`` — i.e. ``render`` — installs on an empty host.
"""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from tether.engine.engine import Engine
from tether.engine.firewall import (
    NetRule,
    NftFirewall,
    PortRule,
    Snapshot,
    render,
)
from tether.engine.fwsync import FirewallSync
from tether.errors import Internal
from tether.linux.nft import NftError
from tether.testing.firewall import FakeFirewall
from tether.testing.nft import FakeNft

A = NetRule("a" * 64, "tth-aaaa", "172.20.0.0/16", "172.20.0.1")
B = NetRule("b" * 64, "tth-bbbb", "172.21.0.0/24", "172.21.0.1")
INTERNAL = NetRule("c" * 64, "tth-cccc", "172.22.0.0/16", "172.22.0.1", internal=True)
BOUND = NetRule("e" * 64, "tth-eeee", "172.24.0.0/16", "172.24.0.1", host_binding_ipv4="127.0.0.1")
NETS = [A, B, INTERNAL, BOUND]
HOST_IPS = ["", "0.0.0.0", "127.0.0.1", "10.9.8.7"]


def _reference(nets: list[NetRule], ports: list[PortRule]) -> Snapshot:
    fw = NftFirewall(FakeNft())
    fw.apply(nets, ports)
    snap = fw.snapshot()
    assert snap is not None
    return snap


def _only_elements(batch: dict[str, Any]) -> bool:
    return all(next(iter(cmd.values())).keys() == {"element"} for cmd in batch["nftables"])


def _random_containers(rng: random.Random, n: int) -> dict[str, list[PortRule]]:
    """``n`` containers, each with 1-3 ports on one network; host ports never collide."""
    out: dict[str, list[PortRule]] = {}
    port = 10000
    for i in range(n):
        net = rng.choice(NETS)
        ip = f"{net.subnet.split('/')[0].rsplit('.', 1)[0][:-1]}{1 + i // 200}.{2 + i % 200}"
        rules = []
        for _ in range(rng.randint(1, 3)):
            port += rng.randint(1, 3)
            proto = rng.choice(["tcp", "udp", "sctp"])
            rules.append(
                PortRule(proto, rng.choice(HOST_IPS), port, ip, rng.randint(1, 9000), net.bridge)
            )
        out[f"c{i}"] = rules
    return out


@pytest.mark.parametrize("seed", range(6))
def test_any_sequence_of_updates_equals_the_whole_render(seed: int) -> None:
    rng = random.Random(seed)
    containers = _random_containers(rng, 40)
    running = {cid for cid in containers if rng.random() < 0.5}

    def current() -> list[PortRule]:
        return [r for cid in sorted(running) for r in containers[cid]]

    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply(NETS, current())
    assert fw.ensure(NETS, current()) is False  # the drift snapshot is taken before the updates
    for step in range(60):
        cid = rng.choice(sorted(containers))
        if cid in running:
            running.discard(cid)
            fw.update_ports(containers[cid], [])
        else:
            running.add(cid)
            fw.update_ports([], containers[cid])
        if step % 7 == 3:  # a restart with a new address: same keys, other data
            old = containers[cid]
            containers[cid] = [
                PortRule(r.proto, r.host_ip, r.host_port, r.container_ip[:-1] + "9", 1, r.bridge)
                for r in old
            ]
            if cid in running:
                fw.update_ports(old, containers[cid])
        sent = len(nft.batches)
        assert fw.snapshot() == _reference(NETS, current()), f"step {step}"
        # the patched drift snapshot still matches: no re-apply, only listings sent
        assert fw.ensure(NETS, current()) is False
        assert all("list" in b["nftables"][0] for b in nft.batches[sent:])
    # and the table really is the render of the end state, element for element
    want = _reference(NETS, current())
    assert fw.snapshot() == want
    assert (
        want.elems[("ip", "tether", "dnat_any_addr")]
        or want.elems[("ip", "tether", "dnat_ip_addr")]
    )


def test_update_is_one_small_element_batch_whatever_is_published() -> None:
    sizes = []
    for already in (1, 1000):
        nft = FakeNft()
        fw = NftFirewall(nft)
        ports = [PortRule("tcp", "", 20000 + i, "172.20.0.2", 80, A.bridge) for i in range(already)]
        fw.apply([A], ports)
        new = PortRule("tcp", "", 8080, "172.20.0.3", 80, A.bridge)
        fw.update_ports([], [new])
        batch = nft.batches[-1]
        assert _only_elements(batch)
        elems = [e for cmd in batch["nftables"] for e in cmd["add"]["element"]["elem"]]
        assert elems == [[{"concat": ["tcp", 8080]}, "172.20.0.3"], [{"concat": ["tcp", 8080]}, 80]]
        sizes.append(len(batch["nftables"]))
        fw.update_ports([new], [])
        assert _only_elements(nft.batches[-1])
        assert fw.snapshot() == _reference([A], ports)
    assert sizes == [2, 2]


def test_specific_ip_and_binding_address_go_to_the_ip_maps() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A, BOUND], [])
    p1 = PortRule("udp", "127.0.0.1", 53, "172.20.0.2", 5353, A.bridge)
    p2 = PortRule("tcp", "", 9090, "172.24.0.2", 90, BOUND.bridge)  # host_binding_ipv4
    fw.update_ports([], [p1, p2])
    assert fw.published() == [
        ("dnat_ip", ("127.0.0.1", "tcp", 9090), "172.24.0.2", 90),
        ("dnat_ip", ("127.0.0.1", "udp", 53), "172.20.0.2", 5353),
    ]
    assert fw.snapshot() == _reference([A, BOUND], [p1, p2])


def test_internal_and_unknown_bridges_publish_nothing() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A, INTERNAL], [])
    sent = len(nft.batches)
    fw.update_ports([], [PortRule("tcp", "", 80, "172.22.0.2", 80, INTERNAL.bridge)])
    fw.update_ports([], [PortRule("tcp", "", 81, "172.29.0.2", 80, "tth-gone")])
    assert len(nft.batches) == sent  # nothing to send
    assert fw.published() == []


P = PortRule("tcp", "", 8080, "172.20.0.2", 80, A.bridge)
Q = PortRule("tcp", "", 8081, "172.20.0.3", 80, A.bridge)


@pytest.mark.parametrize(
    ("remove", "add", "message"),
    [
        ([Q], [], "0.0.0.0:8081/tcp is not published as the update expects"),
        ([PortRule("tcp", "", 8080, "172.20.0.9", 80, A.bridge)], [], "not published as"),
        ([], [PortRule("tcp", "0.0.0.0", 8080, "172.20.0.9", 80, A.bridge)], "published twice"),
        ([], [Q, Q], "0.0.0.0:8081/tcp published twice"),
        ([], [PortRule("icmp", "", 1, "172.20.0.2", 1, A.bridge)], "invalid protocol"),
        ([], [PortRule("tcp", "", 0, "172.20.0.2", 1, A.bridge)], "invalid port 0"),
    ],
)
def test_an_update_that_does_not_fit_is_refused_and_sends_nothing(
    remove: list[PortRule], add: list[PortRule], message: str
) -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A], [P])
    sent = len(nft.batches)
    with pytest.raises(Internal) as exc:
        fw.update_ports(remove, add)
    assert message in exc.value.message
    assert len(nft.batches) == sent
    assert fw.published() == [("dnat_any", ("tcp", 8080), "172.20.0.2", 80)]


def test_update_before_apply_and_after_remove_is_refused() -> None:
    fw = NftFirewall(FakeNft())
    with pytest.raises(Internal):
        fw.update_ports([], [P])
    fw.apply([A], [P])
    fw.remove()
    with pytest.raises(Internal):
        fw.update_ports([P], [])


def test_a_rejected_update_changes_nothing_and_the_next_one_works() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A], [P])
    before = fw.snapshot()
    nft.fail_next = "Error: Could not process rule: No buffer space available"
    with pytest.raises(Internal) as exc:
        fw.update_ports([P], [Q])
    assert "No buffer space available" in exc.value.message
    assert fw.snapshot() == before
    assert fw.published() == [("dnat_any", ("tcp", 8080), "172.20.0.2", 80)]
    fw.update_ports([P], [Q])
    assert fw.snapshot() == _reference([A], [Q])


def test_an_element_deleted_by_someone_else_makes_the_update_fail_whole() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A], [P])
    elem = {"family": "ip", "table": "tether", "name": "dnat_any_addr"}
    nft.run({"nftables": [{"delete": {"element": {**elem, "elem": [{"concat": ["tcp", 8080]}]}}}]})
    with pytest.raises(Internal):
        fw.update_ports([P], [Q])  # the kernel refuses to delete what is gone: nothing applied
    assert ("tcp", 8081) not in {e[1] for e in fw.published()}


def test_drift_after_updates_is_repaired_to_the_current_state() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A], [])
    assert fw.ensure([A], []) is False
    fw.update_ports([], [P, Q])
    nft.run({"nftables": [{"flush": {"map": {"family": "ip", "table": "tether",
                                            "name": "dnat_any_port"}}}]})  # fmt: skip
    assert fw.ensure([A], [P, Q]) is True
    assert fw.snapshot() == _reference([A], [P, Q])
    assert fw.ensure([A], [P, Q]) is False  # first check after the re-apply records it
    assert fw.ensure([A], [P, Q]) is False


def test_snapshot_ignores_element_order_only() -> None:
    listing: list[dict[str, Any]] = [
        {"table": {"family": "ip", "name": "tether"}},
        {"map": {"family": "ip", "table": "tether", "name": "m", "type": "x", "map": "y",
                 "elem": [[{"concat": ["tcp", 1]}, "a"], [{"concat": ["tcp", 2]}, "b"]]}},
    ]  # fmt: skip
    swapped = [listing[0], {"map": {**listing[1]["map"], "elem": listing[1]["map"]["elem"][::-1]}}]
    assert Snapshot.of(listing) == Snapshot.of(swapped)
    other = [listing[0], {"map": {**listing[1]["map"], "elem": [[{"concat": ["tcp", 1]}, "b"]]}}]
    assert Snapshot.of(listing) != Snapshot.of(other)


def test_fake_nft_element_semantics_match_the_kernel() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A], [P])
    m = {"family": "ip", "table": "tether", "name": "dnat_any_addr"}
    key = {"concat": ["tcp", 8080]}
    nft.run({"nftables": [{"add": {"element": {**m, "elem": [[key, "172.20.0.2"]]}}}]})  # same
    with pytest.raises(NftError, match="File exists"):
        nft.run({"nftables": [{"add": {"element": {**m, "elem": [[key, "172.20.0.7"]]}}}]})
    nft.run({"nftables": [{"delete": {"element": {**m, "elem": [key]}}}]})  # by key alone
    with pytest.raises(NftError, match="No such file"):
        nft.run({"nftables": [{"delete": {"element": {**m, "elem": [[key, "172.20.0.2"]]}}}]})


def test_fake_firewall_update_ports() -> None:
    fw = FakeFirewall()
    with pytest.raises(Internal):
        fw.update_ports([], [P])
    fw.apply([A], [P])
    fw.update_ports([P], [Q])
    assert fw.ports == (Q,) and fw.updated == 1
    with pytest.raises(Internal):
        fw.update_ports([P], [])
    with pytest.raises(Internal):
        fw.update_ports([], [Q])  # taken
    fw.fail_with = "boom"
    with pytest.raises(Internal):
        fw.update_ports([Q], [])
    assert fw.ports == (Q,)
    assert fw.current() == render([A], [Q])


# ------------------------------------------------------------------------ engine


class _Nets:
    def __init__(self, nets: list[NetRule]) -> None:
        self.nets = nets

    def list(self) -> list[Any]:
        return [
            SimpleNamespace(
                id=n.id,
                driver="bridge",
                ifname=n.bridge,
                pools=[SimpleNamespace(subnet=n.subnet, gateway=n.gateway)],
                internal=n.internal,
                options={},
            )
            for n in self.nets
        ]


class _Containers:
    """The two ContainerController methods the firewall sync reads."""

    def __init__(self) -> None:
        self.containers: dict[str, list[PortRule]] = {}
        self.running: set[str] = set()

    def container_port_rules(self, cid: str) -> list[PortRule]:
        return list(self.containers.get(cid, [])) if cid in self.running else []

    def port_rules(self) -> list[PortRule]:
        return [r for cid in self.containers for r in self.container_port_rules(cid)]


def _engine(nft: FakeNft, ctrs: _Containers) -> Engine:
    cfg: Any = SimpleNamespace(iptables=True)
    nets: Any = _Nets([A, B])
    return Engine(cfg, nets, FirewallSync(cfg, nets, NftFirewall(nft), ctrs))


def test_engine_publishes_a_container_with_an_element_batch() -> None:
    async def main() -> None:
        nft, ctrs = FakeNft(), _Containers()
        ctrs.containers = {
            f"c{i}": [PortRule("tcp", "", 20000 + i, f"172.20.1.{i}", 80, A.bridge)]
            for i in range(1, 200)
        }
        ctrs.running = set(ctrs.containers)
        eng = _engine(nft, ctrs)
        await eng.sync_firewall()
        ctrs.containers["new"] = [
            PortRule("tcp", "", 8080, "172.21.0.5", 80, B.bridge),
            PortRule("udp", "127.0.0.1", 53, "172.21.0.5", 53, B.bridge),
        ]
        ctrs.running.add("new")
        await eng.sync_firewall("new")
        assert _only_elements(nft.batches[-1])
        ctrs.running -= {"c7", "new"}
        await eng.sync_firewall("c7")
        await eng.sync_firewall("new")
        await eng.sync_firewall("never-ran")  # nothing to do
        assert _only_elements(nft.batches[-1])
        assert eng.firewall.snapshot() == _reference([A, B], ctrs.port_rules())

    asyncio.run(main())


def test_engine_falls_back_to_the_whole_table_when_an_update_does_not_fit() -> None:
    async def main() -> None:
        nft, ctrs = FakeNft(), _Containers()
        ctrs.containers = {"x": [PortRule("tcp", "", 8080, "172.20.0.2", 80, A.bridge)]}
        ctrs.running = {"x"}
        eng = _engine(nft, ctrs)
        await eng.sync_firewall("x")  # nothing applied yet: whole table
        assert not _only_elements(nft.batches[-1])
        # another container takes the key without a signal (a missed update) ...
        ctrs.containers["y"] = [PortRule("tcp", "", 8080, "172.20.0.3", 80, A.bridge)]
        ctrs.running = {"y"}
        await eng.sync_firewall("y")  # ... "published twice": the whole state is applied
        assert not _only_elements(nft.batches[-1])
        assert eng.firewall.snapshot() == _reference([A, B], ctrs.port_rules())
        await eng.sync_firewall("x")  # x is stopped and was dropped by the whole apply
        assert eng.firewall.snapshot() == _reference([A, B], ctrs.port_rules())

    asyncio.run(main())


def test_engine_drift_repair_resets_what_it_holds() -> None:
    async def main() -> None:
        nft, ctrs = FakeNft(), _Containers()
        ctrs.containers = {"x": [PortRule("tcp", "", 8080, "172.20.0.2", 80, A.bridge)]}
        ctrs.running = {"x"}
        eng = _engine(nft, ctrs)
        await eng.sync_firewall()
        assert await eng.check_firewall() is False
        nft.tables.clear()
        assert await eng.check_firewall() is True
        ctrs.running = set()
        await eng.sync_firewall("x")
        assert _only_elements(nft.batches[-1])
        assert eng.firewall.snapshot() == _reference([A, B], [])
        assert await eng.check_firewall() is False

    asyncio.run(main())
