"""Published ports on IPv6 (issue 18): parsing, the allocator's families, the engine (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.test_container_controller import aio, started

from tether.engine.networks import CreateRequest
from tether.engine.ports import PortAllocator, PortBinding, PortRequest, check_host_ips, ports_json
from tether.errors import BadRequest, Conflict


def test_allocator_keeps_families_apart() -> None:
    a = PortAllocator()
    got = a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8080, 8080)], twin6=True)
    assert [(b.host_ip, b.host_port) for b in got] == [("0.0.0.0", 8080), ("::", 8080)]
    assert a.in_use("tcp", "fd00::9", 8080) and a.in_use("tcp", "127.0.0.1", 8080)
    a.release(got)
    a.allocate([PortRequest("tcp", 80, "fd00::9", 8080, 8080)])
    # an IPv6 address does not hold the IPv4 wildcard, only IPv6 ones
    assert not a.in_use("tcp", "0.0.0.0", 8080)
    with pytest.raises(Conflict, match=r"^Bind for :::8080 failed"):
        a.allocate([PortRequest("tcp", 80, "::", 8080, 8080)])
    with pytest.raises(Conflict):  # the twin on :: is taken by fd00::9
        a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8080, 8080)], twin6=True)
    assert not a.in_use("tcp", "0.0.0.0", 8080)  # nothing half-taken
    # a random port is free in both families
    (b4, b6) = a.allocate([PortRequest("tcp", 81)], twin6=True)
    assert b4.host_port == b6.host_port and b6.host_ip == "::"


def test_ipv6_loopback_parses_and_gets_no_firewall_rule() -> None:
    from tether.engine.ports import parse_bindings, port_rules

    got = parse_bindings({"80/tcp": [{"HostIp": "::1", "HostPort": "1"}]})
    assert got[0].host_ip == "::1"  # served by the userland proxy (loproxy), not DNAT
    assert parse_bindings({"80/tcp": [{"HostIp": "[fd00::9]", "HostPort": "1"}]})[0].host_ip == (
        "fd00::9"
    )
    bindings = [PortBinding("tcp", 80, "::1", 8080), PortBinding("tcp", 80, "::", 8080)]
    assert [r.host_ip for r in port_rules(bindings, "10.0.0.2", "br0", "fd00::2")] == ["::"]


def test_ports_json_and_host_address_check() -> None:
    bindings = [PortBinding("tcp", 80, "0.0.0.0", 8080), PortBinding("tcp", 80, "::", 8080)]
    assert ports_json(["80/tcp"], bindings) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}]
    }
    with pytest.raises(BadRequest, match=r"^listen tcp6 \[fd00::9\]:1: bind: cannot assign"):
        check_host_ips([PortBinding("tcp", 80, "fd00::9", 1)], lambda ip: False)
    check_host_ips([PortBinding("tcp", 80, "::", 1)], lambda ip: False)


@aio
async def test_engine_publishes_dual_stack_containers_on_ipv6(tmp_path: Path) -> None:
    w = await started(tmp_path)
    await w.engine.create_network(
        CreateRequest(
            name="ds", ipv6=True, configs=[{"Subnet": "10.7.0.0/24"}, {"Subnet": "fd00:1::/64"}]
        )
    )
    c = await w.run("web", network="ds", ports={"80/tcp": "8080"})
    assert [(p["host_ip"], p["host_port"]) for p in c.ports] == [("0.0.0.0", 8080), ("::", 8080)]
    rules = {(r.host_ip, r.container_ip6) for r in w.fw.ports}
    assert rules == {("0.0.0.0", "fd00:1::2"), ("::", "fd00:1::2")}
    # an IPv6 host address on an IPv4-only container: refused at create, nothing made
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "fd00::9", "HostPort": "9090"}]}}
    with pytest.raises(BadRequest, match="no dual-stack network"):
        await w.ctl.create({"Image": "alpine", "HostConfig": hc}, "v4web")
    assert w.ctl.find("v4web") is None
    # IPv4-only containers keep their IPv4-only bindings
    v4 = await w.run("web4", ports={"80/tcp": "8081"})
    assert [(p["host_ip"], p["host_port"]) for p in v4.ports] == [("0.0.0.0", 8081)]
    await w.close()
