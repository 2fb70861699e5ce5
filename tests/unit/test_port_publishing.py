"""Firewall drift repair, the engine's periodic check, host-address checks and create warnings."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from tether.api.containers import create_warnings
from tether.engine.engine import Engine
from tether.engine.firewall import NetRule, NftFirewall, PortRule
from tether.engine.fwsync import FirewallSync
from tether.engine.ports import PortBinding, check_host_ips, host_has_address
from tether.errors import BadRequest
from tether.testing.nft import FakeNft

NET = NetRule("a" * 64, "tbr-1", "172.18.0.0/16", "172.18.0.1")
PORT = PortRule("tcp", "", 8080, "172.18.0.2", 80, "tbr-1")


def test_ensure_does_nothing_while_the_table_is_intact() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([NET], [PORT])
    batches = len(nft.batches)
    assert fw.ensure([NET], [PORT]) is False
    # only listings were sent, no change
    assert all("list" in b["nftables"][0] for b in nft.batches[batches:])


def test_ensure_restores_a_deleted_table_exactly_and_the_user_table() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([NET], [PORT])
    want = fw.current()
    nft.tables.clear()  # nft flush ruleset
    nft.tables[("ip", "other")] = {"chains": {}, "sets": {}}
    assert fw.ensure([NET], [PORT]) is True
    assert fw.current() == want
    assert ("ip", "tether-user") in nft.tables
    assert ("ip", "other") in nft.tables  # never touched


def test_ensure_repairs_an_edited_chain() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([NET], [PORT])
    want = fw.current()
    assert fw.ensure([NET], [PORT]) is False  # the first check records what apply installed
    nft.run({"nftables": [{"flush": {"chain": {"family": "ip", "table": "tether",
                                              "name": "forward"}}}]})  # fmt: skip
    assert fw.current() != want
    assert fw.ensure([NET], [PORT]) is True
    assert fw.current() == want


class _Nets:
    def list(self) -> list[Any]:
        return []


def test_engine_periodic_check_reapplies_and_stops_on_close() -> None:
    async def main() -> None:
        nft = FakeNft()
        fw = NftFirewall(nft)
        cfg: Any = SimpleNamespace(iptables=True)
        nets: Any = _Nets()
        eng = Engine(cfg, nets, FirewallSync(cfg, nets, fw))
        eng.firewall_check_s = 0.01
        await eng.sync_firewall()
        task = eng.spawn(eng._watch_firewall())
        nft.tables.clear()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if ("ip", "tether") in nft.tables:
                break
        assert ("ip", "tether") in nft.tables
        assert await eng.check_firewall() is False
        await eng.close()
        assert task.cancelled()

    asyncio.run(main())


def test_engine_check_is_off_without_iptables() -> None:
    async def main() -> None:
        nft = FakeNft()
        cfg: Any = SimpleNamespace(iptables=False)
        nets: Any = _Nets()
        eng = Engine(cfg, nets, FirewallSync(cfg, nets, NftFirewall(nft)))
        assert await eng.check_firewall() is False
        assert nft.tables == {}

    asyncio.run(main())


def test_host_ip_must_be_local() -> None:
    assert host_has_address("127.0.0.1")
    check_host_ips([PortBinding("tcp", 80, "0.0.0.0", 8080)], lambda ip: False)
    check_host_ips([PortBinding("tcp", 80, "10.0.0.101", 8500)], lambda ip: True)
    with pytest.raises(BadRequest) as exc:
        check_host_ips([PortBinding("tcp", 8500, "10.0.0.101", 8500)], lambda ip: False)
    assert exc.value.message == (
        "listen tcp4 10.0.0.101:8500: bind: cannot assign requested address"
    )


def test_host_mode_warning() -> None:
    body = {"HostConfig": {"NetworkMode": "host", "PortBindings": {"80/tcp": [{}]}}}
    assert create_warnings(body) == ["Published ports are discarded when using host network mode"]
    assert create_warnings({"HostConfig": {"NetworkMode": "host"}}) == []
    assert create_warnings({"HostConfig": {"PortBindings": {"80/tcp": [{}]}}}) == []
