"""The macvlan host shim option (``-o tether.host_shim=IP``) against the fake netlink."""

from __future__ import annotations

import asyncio

import pytest

from tether.contracts.model import Network
from tether.drivers.macvlan import MacvlanDriver, shim_name, shim_plan
from tether.errors import BadRequest, Internal
from tether.testing.netlink import FakeLink, FakeNetlink


def net(options: dict[str, str], aux: dict[str, str] | None = None, ip_range: str = "") -> Network:
    cfg: dict[str, object] = {"Subnet": "192.168.50.0/24", "Gateway": "192.168.50.1"}
    if aux:
        cfg["AuxiliaryAddresses"] = aux
    if ip_range:
        cfg["IPRange"] = ip_range
    return Network("a" * 64, "mv", "macvlan", options=options, configs=[cfg])


def test_plan_routes_the_range_or_the_subnet() -> None:
    aux = {"host": "192.168.50.250"}
    opts = {"parent": "eth0", "tether.host_shim": "192.168.50.250"}
    assert shim_plan(net(opts, aux)) == ("192.168.50.250", "192.168.50.0/24")
    assert shim_plan(net(opts, aux, "192.168.50.192/27")) == ("192.168.50.250", "192.168.50.192/27")
    assert shim_plan(net({"parent": "eth0"})) is None


@pytest.mark.parametrize(
    ("options", "aux", "text"),
    [
        ({"tether.host_shim": "192.168.50.250"}, {"h": "192.168.50.250"}, "needs a parent"),
        ({"parent": "eth0", "tether.host_shim": "nope"}, None, "invalid tether.host_shim"),
        ({"parent": "eth0", "tether.host_shim": "192.168.50.250"}, None, "--aux-address"),
        ({"parent": "eth0", "tether.host_shim": "10.0.0.1"}, None, "not in a subnet"),
    ],
)
def test_bad_shim_options_are_refused(
    options: dict[str, str], aux: dict[str, str] | None, text: str
) -> None:
    d = MacvlanDriver(FakeNetlink())
    with pytest.raises(BadRequest, match=text):
        d.validate(net(options, aux))


def test_shim_made_and_removed_with_the_network() -> None:
    nl = FakeNetlink()
    nl.links["eth0"] = FakeLink("eth0", "veth")
    d = MacvlanDriver(nl)
    n = net({"parent": "eth0", "tether.host_shim": "192.168.50.250"}, {"h": "192.168.50.250"})
    asyncio.run(d.create(n))
    shim = nl.links[shim_name(n)]
    assert shim.address == "192.168.50.250/32" and shim.info["route"] == "192.168.50.0/24"
    assert d.owned_links(n) == {shim_name(n)}
    asyncio.run(d.delete(n))
    assert shim_name(n) not in nl.links and "eth0" in nl.links


def test_a_failed_shim_leaves_no_vlan_link_behind() -> None:
    nl = FakeNetlink()
    nl.links["eth0"] = FakeLink("eth0", "veth")
    nl.fail["ensure_shim"] = Internal("cannot set up the host shim")
    d = MacvlanDriver(nl)
    opts = {"parent": "eth0.20", "tether.host_shim": "192.168.50.250"}
    n = net(opts, {"h": "192.168.50.250"})
    with pytest.raises(Internal):
        asyncio.run(d.create(n))
    assert set(nl.links) == {"eth0"}
