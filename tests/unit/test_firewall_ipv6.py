"""The ``ip6 tether`` table of dual-stack networks (issue 18): golden files, semantics, drift.

Regenerate the golden files with ``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tether.engine.firewall import NetRule, NftFirewall, PortRule, render
from tether.errors import Internal
from tether.testing.nft import FakeNft

GOLDEN = Path(__file__).parent / "golden" / "firewall"

V4 = NetRule("a" * 64, "tth-aaaa", "172.20.0.0/16", "172.20.0.1")
DS = NetRule("f" * 64, "tth-ffff", "172.25.0.0/16", "172.25.0.1", subnet6="fd00:1::/64",
             gateway6="fd00:1::1")  # fmt: skip
DS_INTERNAL = NetRule("9" * 64, "tth-9999", "172.26.0.0/16", "172.26.0.1", internal=True,
                      subnet6="fd00:2::/64", gateway6="fd00:2::1")  # fmt: skip
DS_NOICC = NetRule("8" * 64, "tth-8888", "172.27.0.0/16", "172.27.0.1", icc=False,
                   subnet6="fd00:3::/64", gateway6="fd00:3::1")  # fmt: skip

PORTS6 = [
    PortRule("tcp", "0.0.0.0", 8080, "172.25.0.2", 80, DS.bridge, container_ip6="fd00:1::2"),
    PortRule("tcp", "::", 8080, "172.25.0.2", 80, DS.bridge, container_ip6="fd00:1::2"),
    PortRule("udp", "fd99::11", 5353, "172.25.0.3", 53, DS.bridge, container_ip6="fd00:1::3"),
    PortRule("tcp", "fd99::11", 9090, "172.25.0.3", 90, DS.bridge, container_ip6="fd00:1::3"),
    # an IPv6 host address for a container without an IPv6 address: not published
    PortRule("tcp", "::", 7070, "172.20.0.9", 70, V4.bridge),
]

SCENARIOS: dict[str, tuple[list[NetRule], list[PortRule]]] = {
    "v6_dual_stack": ([V4, DS], []),
    "v6_internal_icc_false": ([DS_INTERNAL, DS_NOICC], []),
    "v6_ports": ([V4, DS], PORTS6),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_v6(name: str) -> None:
    got = render(*SCENARIOS[name])
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text()), f"{name}: rendering differs from {path}"


def _rules(batch: dict[str, Any], family: str, chain: str) -> list[str]:
    return [
        json.dumps(c["add"]["rule"]["expr"])
        for c in batch["nftables"]
        if "rule" in c.get("add", {})
        and c["add"]["rule"]["family"] == family
        and c["add"]["rule"]["chain"] == chain
    ]


def test_ipv4_only_networks_render_no_ip6_table() -> None:
    assert "ip6" not in json.dumps(render([V4], []))


def test_nat66_isolation_and_internal() -> None:
    batch = render([V4, DS, DS_INTERNAL], [])
    post = _rules(batch, "ip6", "postrouting")
    # outbound NAT66 for the dual-stack network only, never for the internal one
    assert any("fd00:1::" in r and "masquerade" in r and "!=" in r for r in post)
    assert not any("fd00:2::" in r for r in post)
    # the forward chain is the IPv4 one: isolation holds for IPv6 as strictly
    assert _rules(batch, "ip6", "forward") == _rules(batch, "ip", "forward")
    inp = _rules(batch, "ip6", "input")
    assert any("nd-neighbor-solicit" in r for r in inp)
    assert any('"tth-9999"' in r and "fd00:2::1" in r and "drop" in r for r in inp)


def test_invalid_v6_is_internal() -> None:
    bad = NetRule("1" * 64, "tth-1111", "172.28.0.0/16", "172.28.0.1", subnet6="nope",
                  gateway6="fd00::1")  # fmt: skip
    with pytest.raises(Internal, match="invalid IPv6 subnet"):
        render([bad], [])


def test_ip6_table_follows_dual_stack_networks_and_is_repaired() -> None:
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([V4], [])  # the first apply clears a table an earlier run may have left
    assert ("ip6", "tether") not in nft.tables
    fw.apply([V4, DS], [])
    assert ("ip6", "tether") in nft.tables
    # deleted before the first check after the apply: still drift (the apply installed it)
    nft.run({"nftables": [{"delete": {"table": {"family": "ip6", "name": "tether"}}}]})
    assert fw.ensure([V4, DS], []) is True
    assert fw.ensure([V4, DS], []) is False  # records what is installed
    # drift: someone deletes the ip6 table; the check puts it back
    nft.run({"nftables": [{"delete": {"table": {"family": "ip6", "name": "tether"}}}]})
    assert fw.ensure([V4, DS], []) is True
    assert ("ip6", "tether") in nft.tables
    # the last dual-stack network gone: the table goes with it
    fw.apply([V4], [])
    assert ("ip6", "tether") not in nft.tables
    fw.apply([V4], [])  # and later applies do not touch ip6 at all
    assert "ip6" not in json.dumps(nft.batches[-1])
    fw.apply([DS], [])
    fw.remove()
    assert set(nft.tables) == {("ip", "tether-user")}


def _elems(batch: dict[str, Any], family: str, name: str) -> list[Any]:
    for c in batch["nftables"]:
        m = c.get("add", {}).get("map")
        if m and m["family"] == family and m["name"] == name:
            return list(m.get("elem", []))
    raise AssertionError(f"no map {family} {name}")


def test_v6_ports_are_ip6_map_elements_and_update_in_place() -> None:
    batch = render([V4, DS], PORTS6)
    assert _elems(batch, "ip6", "dnat6_any_addr") == [[{"concat": ["tcp", 8080]}, "fd00:1::2"]]
    assert _elems(batch, "ip6", "dnat6_ip_addr") == [
        [{"concat": ["fd99::11", "tcp", 9090]}, "fd00:1::3"],
        [{"concat": ["fd99::11", "udp", 5353]}, "fd00:1::3"],
    ]
    assert _elems(batch, "ip", "dnat_any_addr") == [[{"concat": ["tcp", 8080]}, "172.25.0.2"]]
    nft = FakeNft()
    fw = NftFirewall(nft)
    fw.apply([V4, DS], PORTS6[:1])
    assert fw.ensure([V4, DS], PORTS6[:1]) is False
    fw.update_ports([], PORTS6[1:2])  # a small batch into the ip6 maps
    assert ("dnat6_any", ("tcp", 8080), "fd00:1::2", 80) in fw.published()
    assert fw.ensure([V4, DS], PORTS6[:2]) is False  # the patched snapshot matches the kernel
    fw.update_ports(PORTS6[1:2], [])
    assert fw.ensure([V4, DS], PORTS6[:1]) is False
