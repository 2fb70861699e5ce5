"""IPv6 dual-stack networks (issue 18): pools, addresses, endpoints, inspect (no root)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from tests.unit.test_container_controller import aio, started

from tether.api.networks import network_json, parse_create
from tether.contracts.model import Endpoint
from tether.contracts.pools import PoolConfig6
from tether.drivers.bridge import NullDriver
from tether.engine.ipam import AddressSpace, validate_any, validate_config
from tether.engine.networks import CreateRequest
from tether.errors import BadRequest, Conflict, Forbidden


def test_v6_config_validation_texts() -> None:
    cfg = validate_any("fd00:1::/64", None, None, None)
    assert isinstance(cfg, PoolConfig6)
    assert str(cfg.gateway) == "fd00:1::1"
    assert cfg.to_json() == {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}
    cfg = validate_any("fd00:1::/64", "fd00:1::fe", "fd00:1::80/121", {"x": "fd00:1::9"})
    assert cfg.to_json() == {
        "Subnet": "fd00:1::/64",
        "IPRange": "fd00:1::80/121",
        "Gateway": "fd00:1::fe",
        "AuxiliaryAddresses": {"x": "fd00:1::9"},
    }
    with pytest.raises(BadRequest, match=r"^Invalid subnet fd00::zz/64 : invalid CIDR"):
        validate_any("fd00::zz/64", None, None, None)
    with pytest.raises(BadRequest, match=r"^no matching subnet for gateway 10\.0\.0\.1$"):
        validate_any("fd00:1::/64", "10.0.0.1", None, None)
    with pytest.raises(BadRequest, match=r"^no matching subnet for gateway fd00:2::1$"):
        validate_any("fd00:1::/64", "fd00:2::1", None, None)
    with pytest.raises(BadRequest, match=r"^no matching subnet for range 10\.0\.0\.0/24$"):
        validate_any("fd00:1::/64", None, "10.0.0.0/24", None)
    with pytest.raises(BadRequest, match=r"the subnet is too small for a network$"):
        validate_any("fd00:1::/127", None, None, None)
    with pytest.raises(BadRequest, match=r"^failed to allocate gateway \(fd00:1::\)"):
        validate_any("fd00:1::/64", "fd00:1::", None, None)
    # the IPv4 entry point keeps refusing IPv6
    with pytest.raises(BadRequest, match="IPv6"):
        validate_config("fd00:1::/64", None, None, None)


def test_v6_address_space_sequential_and_last_address_usable() -> None:
    cfg = validate_any("fd00:1::/126", None, None, None)
    space = AddressSpace(cfg, "n6")
    assert space.version == 6
    # ::0 is the subnet's, ::1 the gateway's; no broadcast in IPv6: ::3 is handed out
    assert [str(space.claim_next()) for _ in range(2)] == ["fd00:1::2", "fd00:1::3"]
    with pytest.raises(Forbidden, match="no available IPv6 addresses"):
        space.claim_next()
    space.release(ipaddress.IPv6Address("fd00:1::2"))
    with pytest.raises(Conflict):
        space.claim_static(ipaddress.IPv6Address("fd00:1::1"))
    assert str(space.claim_static(ipaddress.IPv6Address("fd00:1::2"))) == "fd00:1::2"


def test_parse_create_and_inspect_dual_stack() -> None:
    req = parse_create(
        {
            "Name": "ds",
            "EnableIPv6": True,
            "IPAM": {"Config": [{"Subnet": "fd00:1::/64"}, {"Subnet": "10.7.0.0/24"}]},
        }
    )
    assert req.ipv6 is True


@aio
async def test_dual_stack_network_configs_overlap_and_errors(tmp_path: Path) -> None:
    w = await started(tmp_path)
    net = await w.engine.create_network(
        CreateRequest(
            name="ds",
            ipv6=True,
            configs=[{"Subnet": "fd00:1::/64"}, {"Subnet": "10.7.0.0/24"}],
        )
    )
    shown = network_json(net, {})
    assert shown["EnableIPv6"] is True
    # IPv4 first, then IPv6 (Docker's IPAM.Config order)
    assert shown["IPAM"]["Config"] == [
        {"Subnet": "10.7.0.0/24", "Gateway": "10.7.0.1"},
        {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"},
    ]
    assert net.dual_stack and [str(p.subnet) for p in net.pools] == ["10.7.0.0/24"]
    with pytest.raises(Forbidden, match=r"^Pool overlaps with other one on this address space$"):
        await w.engine.create_network(
            CreateRequest(name="b", ipv6=True, configs=[{"Subnet": "fd00:1:0:0:8000::/65"}])
        )
    with pytest.raises(
        Forbidden,
        match=r"^could not find an available, non-overlapping IPv6 address pool among the "
        r"defaults to assign to the network$",
    ):
        await w.engine.create_network(CreateRequest(name="c", ipv6=True))
    w.nets.drivers["ipvlan"] = NullDriver()  # (any driver but bridge, macvlan, overlay)
    with pytest.raises(BadRequest, match="IPv6 on bridge, macvlan and overlay networks only"):
        await w.engine.create_network(
            CreateRequest(name="d", driver="ipvlan", ipv6=True, configs=[{"Subnet": "fd00:9::/64"}])
        )
    # an IPv4 subnet picked from the default pools beside a given IPv6 one
    auto = await w.engine.create_network(
        CreateRequest(name="e", ipv6=True, configs=[{"Subnet": "fd00:2::/64"}])
    )
    assert [c["Subnet"] for c in auto.configs] == ["172.18.0.0/16", "fd00:2::/64"]
    assert [n.name for n in w.nets.list()] == ["bridge", "ds", "e", "host", "none"]
    await w.close()


@aio
async def test_endpoints_get_v6_addresses_static_and_released(tmp_path: Path) -> None:
    w = await started(tmp_path)
    net = await w.engine.create_network(
        CreateRequest(
            name="ds",
            ipv6=True,
            configs=[{"Subnet": "10.7.0.0/24"}, {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}],
        )
    )
    v4only = await w.net("v4", "10.8.0.0/24", "10.8.0.1")
    a = await w.create("aa", network="ds")
    ep = Endpoint.from_dict(a.endpoints[net.id])
    assert (ep.ip, ep.ip6, ep.prefixlen6, ep.gateway6) == ("10.7.0.2", "fd00:1::2", 64, "fd00:1::1")
    assert f"ipam/{net.id}/fd00:1::2" in await w.keys()
    b = await w.create(
        "bb", network="ds", extra={"ds": {"IPAMConfig": {"IPv6Address": "fd00:1::99"}}}
    )
    assert Endpoint.from_dict(b.endpoints[net.id]).ip6 == "fd00:1::99"
    keys = await w.keys()
    with pytest.raises(Conflict, match=r"^Address already in use$"):
        await w.create(
            "cc", network="ds", extra={"ds": {"IPAMConfig": {"IPv6Address": "fd00:1::99"}}}
        )
    with pytest.raises(BadRequest, match="does not belong to any of this network's subnets"):
        await w.create(
            "cc", network="ds", extra={"ds": {"IPAMConfig": {"IPv6Address": "fd00:5::9"}}}
        )
    with pytest.raises(BadRequest, match="user configured subnets"):
        await w.create(
            "cc", network="v4", extra={"v4": {"IPAMConfig": {"IPv6Address": "fd00:5::9"}}}
        )
    # the refusals held nothing: the v4 addresses went back too
    assert await w.keys() == keys
    assert [s.used for s in w.nets.spaces[net.id]] == [2, 2]
    # an IPv4-only endpoint's record has no IPv6 keys at all
    c = await w.create("cc", network="v4")
    assert "ip6" not in c.endpoints[v4only.id]
    await w.ctl.remove(b.id, force=True)
    assert f"ipam/{net.id}/fd00:1::99" not in await w.keys()
    assert [s.used for s in w.nets.spaces[net.id]] == [1, 1]
    await w.close()


@aio
async def test_inspect_shows_v6_fields_while_running(tmp_path: Path) -> None:
    from tether.api.containers import networks_json

    w = await started(tmp_path)
    net = await w.engine.create_network(
        CreateRequest(
            name="ds", ipv6=True, configs=[{"Subnet": "10.7.0.0/24"}, {"Subnet": "fd00:1::/64"}]
        )
    )
    a = await w.run("aa", network="ds")
    shown = networks_json(w.engine, a)["ds"]
    assert (shown["GlobalIPv6Address"], shown["GlobalIPv6PrefixLen"], shown["IPv6Gateway"]) == (
        "fd00:1::2",
        64,
        "fd00:1::1",
    )
    containers = w.ctl.table.network_containers_json(net)
    assert containers[a.id]["IPv6Address"] == "fd00:1::2/64"
    await w.close()


@aio
async def test_docker_py_ipv6_network_flows(tmp_path: Path) -> None:
    """docker-py's three IPv6 tests, as the engine sees them: an IPv6-only IPAM config (host
    bits in the subnet), with and without EnableIPv6; --ip6 at create and at connect."""
    from tether.api.containers import networks_json

    w = await started(tmp_path)
    pool = {"Subnet": "2001:389::1/64", "IPRange": "2001:389::0/96", "Gateway": "2001:389::ffff"}
    on = await w.engine.create_network(CreateRequest(name="on", ipv6=True, configs=[dict(pool)]))
    assert network_json(on, {})["EnableIPv6"] is True
    assert on.configs[1] == {
        "Subnet": "2001:389::/64",
        "IPRange": "2001:389::0/96",
        "Gateway": "2001:389::ffff",
    }
    await w.engine.remove_network("on")
    # without EnableIPv6 (docker-py's connect/create tests): the config is kept, no address
    off = await w.engine.create_network(CreateRequest(name="off", configs=[dict(pool)]))
    c = await w.run(
        "cc", network="off", extra={"off": {"IPAMConfig": {"IPv6Address": "2001:389::f00d"}}}
    )
    assert networks_json(w.engine, c)["off"]["IPAMConfig"] == {"IPv6Address": "2001:389::f00d"}
    assert networks_json(w.engine, c)["off"]["GlobalIPv6Address"] == ""
    await w.ctl.disconnect("off", c.id, False)
    await w.ctl.connect("off", c.id, {"IPAMConfig": {"IPv6Address": "2001:389::f00d"}})
    c = w.ctl.find(c.id)
    assert c is not None
    assert networks_json(w.engine, c)["off"]["IPAMConfig"] == {"IPv6Address": "2001:389::f00d"}
    assert off.dual_stack is False
    await w.close()


@aio
async def test_connect_and_disconnect_dual_stack_release_both(tmp_path: Path) -> None:
    w = await started(tmp_path)
    net = await w.engine.create_network(
        CreateRequest(
            name="ds", ipv6=True, configs=[{"Subnet": "10.7.0.0/24"}, {"Subnet": "fd00:1::/64"}]
        )
    )
    c = await w.run("cc", network="bridge")
    await w.ctl.connect("ds", c.id, {"IPAMConfig": {"IPv6Address": "fd00:1::42"}})
    spec = w.nl.sandboxes[next(iter(w.nl.sandboxes))]["eth1"]
    assert (spec.address6, spec.gateway6) == ("fd00:1::42/64", "fd00:1::1")
    assert w.nl.links[net.ifname].info["address6"] == "fd00:1::1/64"
    assert f"ipam/{net.id}/fd00:1::42" in await w.keys()
    await w.ctl.disconnect("ds", c.id, False)
    assert not any(k.startswith(f"ipam/{net.id}/") for k in await w.keys())
    assert [s.used for s in w.nets.spaces[net.id]] == [0, 0]
    await w.close()


@aio
async def test_disconnect_moves_the_ipv6_default_route(tmp_path: Path) -> None:
    w = await started(tmp_path)
    for name, v4, v6 in (
        ("d1", "10.7.0.0/24", "fd00:1::/64"),
        ("d2", "10.8.0.0/24", "fd00:2::/64"),
    ):
        await w.engine.create_network(
            CreateRequest(name=name, ipv6=True, configs=[{"Subnet": v4}, {"Subnet": v6}])
        )
    c = await w.run("cc", network="d1")
    await w.ctl.connect("d2", c.id, {})
    await w.ctl.disconnect("d1", c.id, False)
    ((ns, route6),) = w.nl.default_routes6.items()
    assert route6 == ("fd00:2::1", "eth1")
    assert w.nl.default_routes[ns] == ("10.8.0.1", "eth1")
    await w.close()


@aio
async def test_default_bridge_with_fixed_cidr_v6(tmp_path: Path) -> None:
    from tests.unit.test_container_controller import World

    w = World(tmp_path)
    w.engine.cfg.ipv6 = True
    w.engine.cfg.fixed_cidr_v6 = "fd00:d0cc::/64"
    await w.start()
    bridge = w.nets.get("bridge")
    assert bridge.ipv6 and bridge.configs[1] == {
        "Subnet": "fd00:d0cc::/64",
        "Gateway": "fd00:d0cc::1",
    }
    assert w.nl.links["tether0"].info["address6"] == "fd00:d0cc::1/64"
    c = await w.run("cc")
    ep = Endpoint.from_dict(c.endpoints[bridge.id])
    # Docker's MAC-derived address on the default bridge (a /80 or wider fixed-cidr-v6)
    assert (ep.mac, ep.ip6, ep.gateway6) == (
        "02:42:ac:11:00:02",
        "fd00:d0cc::242:ac11:2",
        "fd00:d0cc::1",
    )
    with pytest.raises(BadRequest, match="supported on user defined networks only"):
        await w.create("dd", extra={"bridge": {"IPAMConfig": {"IPv6Address": "fd00:d0cc::9"}}})
    await w.close()
    # a restart with another fixed-cidr-v6 while a container holds an address: kept
    w2 = World(tmp_path, prev=w)
    w2.engine.cfg.ipv6 = True
    w2.engine.cfg.fixed_cidr_v6 = "fd00:beef::/64"
    await w2.start()
    assert w2.nets.get("bridge").configs[1]["Subnet"] == "fd00:d0cc::/64"
    await w2.ctl.remove(c.id, force=True)
    await w2.close()
    # ... and applied once none does; ipv6 off makes the default bridge IPv4-only again
    w3 = World(tmp_path, prev=w2)
    w3.engine.cfg.ipv6 = True
    w3.engine.cfg.fixed_cidr_v6 = "fd00:beef::/120"
    await w3.start()
    assert w3.nets.get("bridge").configs[1]["Subnet"] == "fd00:beef::/120"
    c3 = await w3.run("ee")
    assert Endpoint.from_dict(c3.endpoints[bridge.id]).ip6 == "fd00:beef::2"  # /120: IPAM's
    await w3.ctl.remove(c3.id, force=True)
    await w3.close()
    w4 = World(tmp_path, prev=w3)
    await w4.start()
    assert not w4.nets.get("bridge").ipv6 and len(w4.nets.get("bridge").configs) == 1
    await w4.close()


def test_fixed_cidr_v6_must_be_ipv6() -> None:
    from tether.engine.networks import _fixed_v6

    with pytest.raises(BadRequest, match=r"^fixed-cidr-v6 10\.0\.0\.0/24 is not an IPv6 subnet$"):
        _fixed_v6("10.0.0.0/24")
    assert _fixed_v6(None) is None


@aio
async def test_macvlan_endpoint_gets_its_ipv6_address(tmp_path: Path) -> None:
    from tether.contracts.model import Network
    from tether.drivers.macvlan import MacvlanDriver
    from tether.testing.netlink import FakeLink, FakeNetlink

    nl = FakeNetlink()
    nl.links["eth0"] = FakeLink("eth0", "veth")
    net = Network("n" * 64, "mv", "macvlan", ipv6=True, options={"parent": "eth0"})
    ep = Endpoint("e" * 64, net.id, "mv", "c" * 64, "cc", ip="10.9.0.2", prefixlen=24)
    ep.ip6, ep.prefixlen6, ep.gateway6, ep.ifname = "fd00:77::12", 64, "fd00:77::1", "eth0"
    await MacvlanDriver(nl).join(net, ep, "/run/ns1")
    spec = nl.sandboxes["/run/ns1"]["eth0"]
    assert (spec.address6, spec.gateway6) == ("fd00:77::12/64", "fd00:77::1")


@aio
async def test_overlay_programs_ipv6_neighbours_and_records(tmp_path: Path) -> None:
    from tests.unit.test_overlay_driver import endpoint, network

    from tether.contracts.cluster import Peer
    from tether.contracts.model import mac_for
    from tether.drivers.overlay import OverlayDriver, vxlan_name
    from tether.engine.cluster_endpoints import peer_of
    from tether.testing.netlink import FakeNetlink

    p = Peer("ep-9", "10.77.0.9", mac_for("10.77.0.9"), "198.18.0.2", "fd00:88::9")
    nl = FakeNetlink()
    drv = OverlayDriver(nl, "198.18.0.1", peers=lambda _nid: [p])
    net = network()
    net.ipv6 = True
    net.configs.append({"Subnet": "fd00:88::/64", "Gateway": "fd00:88::1"})
    ep = endpoint(net, "10.77.0.2")
    ep.ip6, ep.prefixlen6 = "fd00:88::2", 64
    await drv.join(net, ep, "/run/fake/c")
    assert nl.neigh[vxlan_name(net)] == {"10.77.0.9": p.mac, "fd00:88::9": p.mac}
    assert nl.sandboxes["/run/fake/c"]["eth0"].address6 == "fd00:88::2/64"
    await drv.peer_changed(net, p, False)
    assert nl.neigh[vxlan_name(net)] == {}
    # the cluster record carries the IPv6 address to the other hosts
    rec = {"ip": "10.77.0.9", "mac": p.mac, "vtep": "198.18.0.2", "ip6": "fd00:88::9"}
    assert peer_of("ep-9", rec) == p


def test_overlay_ipv6_subnets_are_checked_across_the_cluster() -> None:
    from clusterfakes import run
    from tests.unit.test_cluster_view import stop, two_hosts

    async def main() -> None:
        _, h1, h2 = await two_hosts()
        v6 = {"Subnet": "fd00:88::/64"}
        net = await h1.networks.create(CreateRequest("o1", "overlay", ipv6=True, configs=[v6]))
        assert [c["Subnet"] for c in net.configs] == ["10.0.0.0/24", "fd00:88::/64"]
        with pytest.raises(
            Forbidden, match=r"^Pool overlaps with other one on this address space$"
        ):
            other = [{"Subnet": "fd00:88::/96"}]
            await h2.networks.create(CreateRequest("o2", "overlay", ipv6=True, configs=other))
        # the IPv6 address is held in the cluster store too
        ip6, _p, _g = h1.networks.allocate(net, None, 6)
        assert await h1.networks.hold_global(net, ip6, "", "c1", 6) == ip6
        assert await h1.store.get(f"cluster/ipam/{net.id}/{ip6}") is not None
        await stop(h1, h2)

    run(main())
