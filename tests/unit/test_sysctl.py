"""sysctl helpers over the fake and over a temporary /proc/sys-like tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import Internal, NotFound
from tether.linux.sysctl import (
    ProcSysctl,
    bridge_nf_call_iptables,
    disable_ipv6,
    enable_ip_forward,
    set_route_localnet,
)
from tether.testing.sysctl import FakeSysctl


def test_enable_ip_forward_writes_once() -> None:
    s = FakeSysctl({"net/ipv4/ip_forward": "0"})
    assert enable_ip_forward(s) is True
    assert enable_ip_forward(s) is False
    assert s.writes == [("net/ipv4/ip_forward", "1")]


def test_route_localnet_per_bridge() -> None:
    s = FakeSysctl()
    with pytest.raises(NotFound):
        set_route_localnet(s, "tth-1234")
    s.add_interface("tth-1234")
    assert set_route_localnet(s, "tth-1234") is True
    assert s.get("net/ipv4/conf/tth-1234/route_localnet") == "1"
    for bad in ("", "a/b", "..", "x" * 16):
        with pytest.raises(Internal):
            set_route_localnet(s, bad)


def test_disable_ipv6_is_best_effort_but_checks_the_name() -> None:
    s = FakeSysctl()
    assert disable_ipv6(s, "tv123") is False  # no IPv6 in this kernel: nothing written
    s.values["net/ipv6/conf/tv123/disable_ipv6"] = "0"
    assert disable_ipv6(s, "tv123") is True
    assert s.writes == [("net/ipv6/conf/tv123/disable_ipv6", "1")]
    with pytest.raises(Internal):
        disable_ipv6(s, "a/b")


def test_bridge_nf_call_iptables() -> None:
    assert bridge_nf_call_iptables(FakeSysctl()) is None
    assert bridge_nf_call_iptables(FakeSysctl({"net/bridge/bridge-nf-call-iptables": "1"}))


def test_proc_sysctl_on_a_tree(tmp_path: Path) -> None:
    conf = tmp_path / "net/ipv4/conf/eth0.100"
    conf.mkdir(parents=True)
    (conf / "route_localnet").write_text("0\n")
    (tmp_path / "net/ipv4/ip_forward").write_text("0\n")
    s = ProcSysctl(str(tmp_path))
    assert set_route_localnet(s, "eth0.100") is True  # dots are part of the name
    assert (conf / "route_localnet").read_text() == "1"
    assert enable_ip_forward(s) is True
    assert s.get("net/ipv4/ip_forward") == "1"
    with pytest.raises(NotFound):
        s.get("net/ipv4/nope")
    with pytest.raises(Internal):
        s.get("../etc/passwd")
