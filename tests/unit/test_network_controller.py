"""The network controller and engine with in-memory fakes: store, netlink, firewall (no root)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tether.config import DaemonConfig
from tether.contracts.model import Network
from tether.drivers.bridge import BridgeDriver, HostDriver, NullDriver
from tether.engine.engine import Engine
from tether.engine.fwsync import FirewallSync
from tether.engine.ipam import PoolPicker
from tether.engine.networks import CreateRequest, NetworkController
from tether.errors import BadRequest, Conflict, Forbidden, Internal, NotFound
from tether.testing.firewall import FakeFirewall
from tether.testing.netlink import FakeNetlink
from tether.testing.store import MemoryStore


class World:
    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()
        self.nl = FakeNetlink()
        self.fw = FakeFirewall()
        drivers: dict[str, Any] = {
            "bridge": BridgeDriver(self.nl),
            "host": HostDriver(),
            "null": NullDriver(),
        }
        self.nets = NetworkController(
            self.store, drivers, PoolPicker(), host_routes=self.nl.host_routes
        )
        cfg = DaemonConfig()
        cfg.iptables = True
        self.engine = Engine(cfg, self.nets, FirewallSync(cfg, self.nets, self.fw))
        self.engine.firewall_check_s = 0  # no background check in unit tests

    async def start(self) -> None:
        await self.engine.start()

    async def close(self) -> None:
        await self.engine.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def test_predefined_networks_and_default_bridge(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    names = [n.name for n in w.nets.list()]
    assert names == ["bridge", "host", "none"]
    bridge = w.nets.get("bridge")
    assert bridge.configs[0]["Subnet"] == "172.17.0.0/16"
    assert w.nl.links["tether0"].address == "172.17.0.1/16"
    assert [r.bridge for r in w.fw.nets] == ["tether0"]
    loop.run_until_complete(w.close())


def test_default_bridge_skips_a_host_route(loop: asyncio.AbstractEventLoop) -> None:
    import ipaddress

    w = World()
    w.nl.routes = [ipaddress.IPv4Network("172.17.0.0/16")]
    loop.run_until_complete(w.start())
    assert w.nets.get("bridge").configs[0]["Subnet"] == "172.18.0.0/16"
    loop.run_until_complete(w.close())


def test_create_inspectable_and_kernel_objects(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    net = loop.run_until_complete(
        w.engine.create_network(
            CreateRequest(
                name="jasonyin2020",
                configs=[{"Subnet": "172.28.0.0/16", "Gateway": "172.28.0.254"}],
                labels={"a": "b"},
            )
        )
    )
    assert len(net.id) == 64
    assert w.nl.links[net.ifname].address == "172.28.0.254/16"
    assert {r.bridge for r in w.fw.nets} == {"tether0", net.ifname}
    assert w.nets.get(net.id[:6]) is net
    with pytest.raises(Conflict, match=r"^network with name jasonyin2020 already exists$"):
        loop.run_until_complete(w.engine.create_network(CreateRequest(name="jasonyin2020")))
    with pytest.raises(Forbidden, match=r"^Pool overlaps with other one on this address space$"):
        loop.run_until_complete(
            w.engine.create_network(
                CreateRequest(name="other", configs=[{"Subnet": "172.28.0.0/24"}])
            )
        )
    # the refused creates left nothing behind
    assert [n.name for n in w.nets.list()] == ["bridge", "host", "jasonyin2020", "none"]
    # a new name is checked against names only, even when it is an ambiguous id prefix
    for n, cid in zip(w.nets.list()[:2], ("ab" + "0" * 62, "ab" + "1" * 62), strict=True):
        del w.nets.networks[n.id]
        n.id = cid
        w.nets.networks[cid] = n
    made = loop.run_until_complete(w.engine.create_network(CreateRequest(name="ab")))
    assert w.nets.get("ab") is made
    loop.run_until_complete(w.close())


def test_predefined_rules(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    with pytest.raises(Forbidden, match=r"^bridge is a pre-defined network and cannot be removed$"):
        loop.run_until_complete(w.engine.remove_network("bridge"))
    with pytest.raises(Forbidden, match=r'^only one instance of "host" network is allowed$'):
        loop.run_until_complete(w.engine.create_network(CreateRequest(name="h2", driver="host")))
    with pytest.raises(NotFound, match=r"^network nosuch not found$"):
        w.nets.get("nosuch")
    # Docker 20.10's rule: only a name that is empty after trimming is refused
    for bad in ("", "  ", "\t\n"):
        with pytest.raises(BadRequest, match=r"^invalid name: "):
            loop.run_until_complete(w.engine.create_network(CreateRequest(name=bad)))
    # tether's own limits beyond Docker's: no control characters, at most 4096 characters
    for bad in ("tab\tname", "a\x00b", "\x1b[31mred", "x" * 4097):
        with pytest.raises(BadRequest):
            loop.run_until_complete(w.engine.create_network(CreateRequest(name=bad)))
    for good in ("test 01", "bad name!", "x" * 200, "a/b", "..", "x" * 4096):
        net = loop.run_until_complete(w.engine.create_network(CreateRequest(name=good)))
        assert w.nets.get(good).id == net.id
        loop.run_until_complete(w.engine.remove_network(good))
    loop.run_until_complete(w.close())


def test_bridge_options_are_checked_at_create(loop: asyncio.AbstractEventLoop) -> None:
    """A bad boolean or binding address is refused with libnetwork's text, before anything is
    made (a bad host_binding_ipv4 once reached the firewall and broke every later apply)."""
    w = World()
    loop.run_until_complete(w.start())
    icc, masq = (
        "com.docker.network.bridge.enable_icc",
        "com.docker.network.bridge.enable_ip_masquerade",
    )
    hb = "com.docker.network.bridge.host_binding_ipv4"
    cases = {
        icc: ("maybe", f'failed to parse {icc} value: maybe (strconv.ParseBool: parsing "maybe": '
              "invalid syntax)"),
        masq: ("yes", f'failed to parse {masq} value: yes (strconv.ParseBool: parsing "yes": '
               "invalid syntax)"),
        hb: ("notanip", f"failed to parse {hb} value: notanip (nil ip)"),
    }  # fmt: skip
    for key, (value, text) in cases.items():
        with pytest.raises(BadRequest) as err:
            loop.run_until_complete(
                w.engine.create_network(CreateRequest(name="bad", options={key: value}))
            )
        assert err.value.message == text
    with pytest.raises(BadRequest, match="must be an IPv4 address"):
        loop.run_until_complete(
            w.engine.create_network(CreateRequest(name="bad", options={hb: "::1"}))
        )
    assert w.nets.find("bad") is None and len(w.nl.links) == 1  # only the default bridge
    net = loop.run_until_complete(
        w.engine.create_network(
            CreateRequest(name="good", options={icc: "F", masq: "1", hb: "127.0.0.1"})
        )
    )
    rule = next(r for r in w.fw.nets if r.id == net.id)
    assert (rule.icc, rule.masquerade, rule.host_binding_ipv4) == (False, True, "127.0.0.1")
    loop.run_until_complete(w.close())


def test_a_name_two_networks_share_is_ambiguous(loop: asyncio.AbstractEventLoop) -> None:
    """A global network named like a local one (made on a host that could not know):
    looking it up by name is Docker's ambiguity error; by id both still work."""
    w = World()
    loop.run_until_complete(w.start())
    local = loop.run_until_complete(w.engine.create_network(CreateRequest(name="lb1")))
    twin = Network(id="f" * 64, name="lb1", driver="overlay", scope="global")
    w.nets.networks[twin.id] = twin
    with pytest.raises(
        BadRequest, match=r"^network lb1 is ambiguous \(2 matches found based on name\)$"
    ):
        w.nets.get("lb1")
    assert w.nets.get(local.id) is local and w.nets.get(twin.id) is twin
    loop.run_until_complete(w.close())


def test_kernel_failure_leaves_no_record(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    w.nl.fail["ensure_bridge"] = Internal("cannot set up bridge: boom")
    with pytest.raises(Internal):
        loop.run_until_complete(w.engine.create_network(CreateRequest(name="n1")))
    assert w.nets.find("n1") is None
    assert loop.run_until_complete(w.store.list("netnames/n1")) == []
    # and the name and pool are free again
    net = loop.run_until_complete(w.engine.create_network(CreateRequest(name="n1")))
    assert net.configs[0]["Subnet"] == "172.18.0.0/16"
    loop.run_until_complete(w.close())


def test_kernel_failure_leaves_no_firewall_rule(loop: asyncio.AbstractEventLoop) -> None:
    """A bridge that fails leaves no rule for it."""
    w = World()
    loop.run_until_complete(w.start())
    w.nl.fail["ensure_bridge"] = Internal("cannot set up bridge: boom")
    with pytest.raises(Internal):
        loop.run_until_complete(w.engine.create_network(CreateRequest(name="n1")))
    assert [r.bridge for r in w.fw.nets] == ["tether0"]
    loop.run_until_complete(w.close())


def test_firewall_failure_leaves_no_bridge_or_record(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    before = set(w.nl.links)
    w.fw.fail_with = "boom"
    with pytest.raises(Internal, match="boom"):
        loop.run_until_complete(w.engine.create_network(CreateRequest(name="n1")))
    assert w.nets.find("n1") is None
    assert loop.run_until_complete(w.store.list("netnames/n1")) == []
    assert {n for n in w.nl.links if not n.startswith("tbx-")} == before
    assert [r.bridge for r in w.fw.nets] == ["tether0"]
    net = loop.run_until_complete(w.engine.create_network(CreateRequest(name="n1")))
    assert {r.bridge for r in w.fw.nets} == {"tether0", net.ifname}
    loop.run_until_complete(w.close())


def test_bridge_create_writes_its_record_once(loop: asyncio.AbstractEventLoop) -> None:
    """The bridge's name is known before the kernel: one store write, holding it."""
    w = World()
    loop.run_until_complete(w.start())
    rev = loop.run_until_complete(w.store.current_revision())
    net = loop.run_until_complete(w.engine.create_network(CreateRequest(name="n1")))
    assert loop.run_until_complete(w.store.current_revision()) == rev + 1
    (rec,) = loop.run_until_complete(w.store.list(f"networks/{net.id}"))
    assert net.ifname == "tbr-" + net.id[:11] and net.ifname in w.nl.links
    assert rec.value == net.to_dict()
    loop.run_until_complete(w.close())


def test_state_survives_a_restart_and_kernel_is_restored(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    net = loop.run_until_complete(w.engine.create_network(CreateRequest(name="keep")))
    loop.run_until_complete(w.close())
    w2 = World(store=w.store)  # same store, a fresh kernel (as after a reboot)
    loop.run_until_complete(w2.start())
    again = w2.nets.get("keep")
    assert again.id == net.id and again.configs == net.configs
    assert net.ifname in w2.nl.links  # re-made by reconcile
    bridge_id = w.nets.get("bridge").id
    assert w2.nets.get("bridge").id == bridge_id
    # the pool is still held
    other = loop.run_until_complete(w2.engine.create_network(CreateRequest(name="next")))
    assert other.configs[0]["Subnet"] != net.configs[0]["Subnet"]
    loop.run_until_complete(w2.close())


def test_remove_and_prune(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    a = loop.run_until_complete(w.engine.create_network(CreateRequest(name="a")))
    loop.run_until_complete(w.engine.create_network(CreateRequest(name="b", labels={"keep": "1"})))
    loop.run_until_complete(w.engine.remove_network(a.id[:10]))
    assert a.ifname not in w.nl.links
    gone = loop.run_until_complete(w.engine.prune_networks({"label!": ["keep"]}))
    assert gone == []
    gone = loop.run_until_complete(w.engine.prune_networks({}))
    assert gone == ["b"]
    assert [n.name for n in w.nets.list()] == ["bridge", "host", "none"]
    loop.run_until_complete(w.close())


def test_allocate_and_release(loop: asyncio.AbstractEventLoop) -> None:
    w = World()
    loop.run_until_complete(w.start())
    net = loop.run_until_complete(
        w.engine.create_network(
            CreateRequest(
                name="r",
                configs=[
                    {"Subnet": "10.5.0.0/24", "Gateway": "10.5.0.254", "IPRange": "10.5.0.100/28"}
                ],
            )
        )
    )
    ip, plen, gw = w.nets.allocate(net, None)
    assert (ip, plen, gw) == ("10.5.0.96", 24, "10.5.0.254")
    assert w.nets.allocate(net, "10.5.0.7")[0] == "10.5.0.7"
    with pytest.raises(Conflict, match=r"Address already in use"):
        w.nets.allocate(net, "10.5.0.7")
    w.nets.release(net.id, "10.5.0.7")
    assert w.nets.allocate(net, "10.5.0.7")[0] == "10.5.0.7"
    bridge = w.nets.get("bridge")
    with pytest.raises(BadRequest, match=r"user configured subnets"):
        w.nets.allocate(bridge, "172.17.0.9")
    loop.run_until_complete(w.close())
