"""Firewall rendering (golden files) and the firewall backends over FakeNft.

Regenerate the golden files with ``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tether.engine.firewall import (
    NetRule,
    NftFirewall,
    PortRule,
    render,
    render_remove,
)
from tether.errors import Internal
from tether.linux.nft import NftError
from tether.testing.firewall import FakeFirewall
from tether.testing.nft import FakeNft

GOLDEN = Path(__file__).parent / "golden" / "firewall"

A = NetRule("a" * 64, "tth-aaaa", "172.20.0.0/16", "172.20.0.1")
B = NetRule("b" * 64, "tth-bbbb", "172.21.0.0/24", "172.21.0.1")
INTERNAL = NetRule("c" * 64, "tth-cccc", "172.22.0.0/16", "172.22.0.1", internal=True)
NOICC = NetRule("d" * 64, "tth-dddd", "172.23.0.0/16", "172.23.0.1", icc=False)
BOUND = NetRule("e" * 64, "tth-eeee", "172.24.0.0/16", "172.24.0.1", host_binding_ipv4="127.0.0.1")


def _many_ports() -> list[PortRule]:
    return [
        PortRule(
            "tcp" if i % 2 == 0 else "udp",
            "",
            20000 + i,
            f"172.20.{i // 250}.{2 + i % 250}",
            80,
            A.bridge,
        )
        for i in range(300)
    ]


SCENARIOS: dict[str, tuple[list[NetRule], list[PortRule]]] = {
    "empty": ([], []),
    "one_network": ([A], []),
    "two_networks": ([A, B], []),
    "internal": ([A, INTERNAL], []),
    "icc_false": ([NOICC], []),
    "ports_any_ip": (
        [A],
        [
            PortRule("tcp", "", 8080, "172.20.0.2", 80, A.bridge),
            PortRule("udp", "0.0.0.0", 5353, "172.20.0.3", 53, A.bridge),
        ],
    ),
    "ports_specific_ip": (
        [A, BOUND],
        [
            PortRule("tcp", "127.0.0.1", 8080, "172.20.0.2", 80, A.bridge),
            PortRule("tcp", "10.9.8.7", 8080, "172.20.0.3", 80, A.bridge),
            PortRule("tcp", "", 9090, "172.24.0.2", 90, BOUND.bridge),
        ],
    ),
    "many_ports": ([A], _many_ports()),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name: str) -> None:
    nets, ports = SCENARIOS[name]
    got = render(nets, ports)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text()), f"{name}: rendering differs from {path}"


# ---------------------------------------------------------------- rendering semantics


def _objs(batch: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c["add"][kind] for c in batch["nftables"] if "add" in c and kind in c["add"]]


def _named(batch: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in _objs(batch, kind) if o["name"] == name and o["family"] == "ip"]
    return obj


def test_batch_replaces_tables_idempotently_and_never_flushes_ruleset() -> None:
    cmds = render([A], [])["nftables"]
    t = {"family": "ip", "name": "tether"}
    assert cmds[:3] == [{"add": {"table": t}}, {"delete": {"table": t}}, {"add": {"table": t}}]
    assert "flush" not in json.dumps(cmds)
    assert render_remove()["nftables"][1] == {"delete": {"table": t}}


def test_rendering_is_order_independent() -> None:
    ports = SCENARIOS["ports_specific_ip"][1]
    assert render([A, BOUND], ports) == render([BOUND, A], list(reversed(ports)))


def test_ports_are_map_elements_not_rules() -> None:
    few = render([A], _many_ports()[:3])
    many = render([A], _many_ports())
    assert len(_objs(few, "rule")) == len(_objs(many, "rule"))
    assert len(_named(many, "map", "dnat_any_addr")["elem"]) == 300
    assert len(_named(many, "map", "dnat_any_port")["elem"]) == 300


def test_any_and_specific_ip_go_to_their_maps() -> None:
    nets, ports = SCENARIOS["ports_specific_ip"]
    batch = render(nets, ports)
    ip_addr = _named(batch, "map", "dnat_ip_addr")["elem"]
    assert [{"concat": ["10.9.8.7", "tcp", 8080]}, "172.20.0.3"] in ip_addr
    assert [{"concat": ["127.0.0.1", "tcp", 8080]}, "172.20.0.2"] in ip_addr
    # the network's host_binding_ipv4 applies to a port without a host ip
    assert [{"concat": ["127.0.0.1", "tcp", 9090]}, "172.24.0.2"] in ip_addr
    assert "elem" not in _named(batch, "map", "dnat_any_addr")
    port_elems = _named(batch, "map", "dnat_ip_port")["elem"]
    assert [{"concat": ["127.0.0.1", "tcp", 9090]}, 90] in port_elems


def test_internal_network_publishes_nothing_and_is_not_masqueraded() -> None:
    batch = render([INTERNAL], [PortRule("tcp", "", 8080, "172.22.0.2", 80, INTERNAL.bridge)])
    assert "elem" not in _named(batch, "map", "dnat_any_addr")
    assert _named(batch, "set", "internal")["elem"] == [INTERNAL.bridge]
    # containers of one internal network still talk to each other (as in Docker)
    assert _named(batch, "set", "icc")["elem"] == [{"concat": [INTERNAL.bridge, INTERNAL.bridge]}]
    assert not [
        r
        for r in _objs(batch, "rule")
        if r["chain"] == "postrouting" and INTERNAL.bridge in json.dumps(r)
    ]
    inputs = [r for r in _objs(batch, "rule") if r["chain"] == "input"]
    assert any(INTERNAL.bridge in json.dumps(r) and "172.22.0.1" in json.dumps(r) for r in inputs)


def test_masquerade_off_keeps_hairpin_only() -> None:
    net = NetRule("f" * 64, "tth-ffff", "172.25.0.0/16", "172.25.0.1", masquerade=False)
    post = [r for r in _objs(render([net], []), "rule") if r["chain"] == "postrouting"]
    assert [r.get("comment") for r in post] == ["net ffffffffffff hairpin", "loopback"]


def test_icc_false_uses_bridge_table() -> None:
    batch = render([NOICC], [])
    (brule,) = [r for r in _objs(batch, "rule") if r["family"] == "bridge"]
    assert brule["expr"][-1] == {"drop": None}
    assert "elem" not in _named(batch, "set", "icc")
    assert not [r for r in _objs(render([A], []), "rule") if r["family"] == "bridge"]


@pytest.mark.parametrize(
    "nets,ports",
    [
        ([NetRule("x", "", "10.0.0.0/8", "10.0.0.1")], []),
        ([NetRule("x", "b" * 16, "10.0.0.0/8", "10.0.0.1")], []),
        ([NetRule("x", "br", "10.0.0.0/33", "10.0.0.1")], []),
        ([A, NetRule("y", A.bridge, "10.0.0.0/8", "10.0.0.1")], []),
        ([A], [PortRule("icmp", "", 1, "172.20.0.2", 1, A.bridge)]),
        ([A], [PortRule("tcp", "", 0, "172.20.0.2", 1, A.bridge)]),
        ([A], [PortRule("tcp", "", 70000, "172.20.0.2", 1, A.bridge)]),
        ([A], [PortRule("tcp", "nope", 80, "172.20.0.2", 1, A.bridge)]),
        ([A], [PortRule("tcp", "", 80, "172.20.0.2", 1, A.bridge)] * 2),
    ],
)
def test_invalid_state_is_internal_error(nets: list[NetRule], ports: list[PortRule]) -> None:
    with pytest.raises(Internal):
        render(nets, ports)


# ---------------------------------------------------------------- NftFirewall over FakeNft


def test_apply_twice_is_idempotent_and_creates_user_table_once() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    nets, ports = SCENARIOS["ports_any_ip"]
    fw.apply(nets, ports)
    first = fw.current()
    fw.apply(nets, ports)
    assert fw.current() == first
    assert set(nft.tables) == {("ip", "tether"), ("ip", "tether-user")}
    assert first is not None
    rules = [o for o in first["nftables"] if "rule" in o]
    assert len(rules) == len(_objs(render(nets, ports), "rule"))


def test_user_chain_is_never_rewritten() -> None:
    nft = FakeNft()
    user_rule = {
        "family": "ip",
        "table": "tether-user",
        "chain": "tether-user",
        "expr": [{"drop": None}],
    }
    nft.run(
        {
            "nftables": [
                {"add": {"table": {"family": "ip", "name": "tether-user"}}},
                {"add": {"chain": {"family": "ip", "table": "tether-user", "name": "tether-user"}}},
                {"add": {"rule": user_rule}},
            ]
        }
    )
    fw = NftFirewall(nft)
    fw.apply([A], [])
    fw.apply([A, B], [])
    fw.remove()
    assert nft.tables[("ip", "tether-user")]["chains"]["tether-user"]["rules"] == [
        {"expr": [{"drop": None}]}
    ]
    assert ("ip", "tether") not in nft.tables
    assert fw.current() is None
    # no batch after the first apply touches the user's table
    assert all("tether-user" not in json.dumps(b) for b in nft.batches[2:])


def test_remove_deletes_bridge_table_too_and_is_idempotent() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([NOICC], [])
    assert ("bridge", "tether") in nft.tables
    fw.apply([A], [])
    assert ("bridge", "tether") not in nft.tables
    fw.apply([NOICC], [])
    fw.remove()
    fw.remove()
    assert set(nft.tables) == {("ip", "tether-user")}


def test_failed_apply_raises_internal_and_keeps_previous_state() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([A], [])
    before = fw.current()
    nft.fail_next = "Error: Could not process rule: No buffer space available"
    with pytest.raises(Internal, match="No buffer space available"):
        fw.apply([A, B], [])
    assert fw.current() == before


def test_fake_nft_rejects_flush_ruleset_and_missing_delete() -> None:
    nft = FakeNft()
    with pytest.raises(NftError):
        nft.run({"nftables": [{"flush": {"ruleset": None}}]})
    with pytest.raises(NftError, match="No such file"):
        nft.run({"nftables": [{"delete": {"table": {"family": "ip", "name": "tether"}}}]})


def test_fake_firewall_records_and_fails_on_request() -> None:
    fw = FakeFirewall()
    assert fw.current() is None
    fw.apply([A], [])
    assert fw.nets == (A,) and fw.applied == 1 and fw.current() == render([A], [])
    fw.fail_with = "boom"
    with pytest.raises(Internal, match="boom"):
        fw.apply([A, B], [])
    assert fw.nets == (A,)
    with pytest.raises(Internal):
        fw.apply([NetRule("x", "", "10.0.0.0/8", "10.0.0.1")], [])
    fw.remove()
    assert fw.current() is None
