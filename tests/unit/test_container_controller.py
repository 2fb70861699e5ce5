"""The container controller with in-memory fakes (no root, no kernel, no runc).

Store: ``MemoryStore``; kernel: ``FakeNetlink`` + ``FakeNetns``; firewall: ``FakeFirewall``
through the real ``Engine``; runtime and images: ``tether.testing.runtime``; DNS: ``FakeDns``
below. Time: the controller's ``asyncio.sleep`` (only the restart backoff uses it) is a
fake that records the delay asked for and returns at once (or waits for the test).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from tether.api.containers import parse_create
from tether.config import DaemonConfig
from tether.contracts.model import Endpoint, Network
from tether.drivers.bridge import BridgeDriver, HostDriver, NullDriver, veth_name
from tether.engine import supervise as containers_mod
from tether.engine.containers import Container, ContainerController
from tether.engine.engine import Engine
from tether.engine.events import Events
from tether.engine.fwsync import FirewallSync
from tether.engine.ipam import PoolPicker
from tether.engine.networks import CreateRequest, NetworkController
from tether.engine.table import ContainerTable
from tether.errors import BadRequest, Conflict, Forbidden, Internal, NotFound, NotModified
from tether.runtime.bundle import OciBundles
from tether.store.base import Op, TxnResult
from tether.testing.firewall import FakeFirewall
from tether.testing.netlink import FakeNetlink, FakeNetns
from tether.testing.runtime import FakeImages, FakeRuntime
from tether.testing.store import MemoryStore

REAL_SLEEP = asyncio.sleep


# ---------------------------------------------------------------------------- fakes


class FakeDns:
    """``tether.engine.dns.DnsServer``'s owner API, recorded."""

    def __init__(self) -> None:
        self.listeners: dict[str, str] = {}  # sandbox -> netns path
        self.added: list[str] = []
        self.removed: list[str] = []
        self.invalidated = 0

    async def add_sandbox(
        self, sandbox: str, netns_path: str, *, search_domains: Sequence[str] = ()
    ) -> None:
        self.listeners[sandbox] = netns_path
        self.added.append(sandbox)

    async def remove_sandbox(self, sandbox: str) -> None:
        self.listeners.pop(sandbox, None)
        self.removed.append(sandbox)

    def invalidate(self) -> None:
        self.invalidated += 1

    def sandboxes(self) -> list[str]:
        return sorted(self.listeners)

    async def close(self) -> None:
        self.listeners.clear()


class Clock:
    """The controller's ``asyncio.sleep``: records each delay; ``hold`` makes it wait."""

    def __init__(self) -> None:
        self.requests: list[float] = []
        self.hold = False
        self._gates: list[asyncio.Future[None]] = []

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self.requests.append(delay)
        if self.hold:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._gates.append(gate)
            await gate
        else:
            await REAL_SLEEP(0)
        return result

    def release(self) -> None:
        gates, self._gates = self._gates, []
        for g in gates:
            if not g.done():
                g.set_result(None)

    @property
    def waiting(self) -> int:
        return sum(1 for g in self._gates if not g.done())


class AsyncioShim:
    """``asyncio`` as the controller module sees it, with the clock's ``sleep``."""

    def __init__(self, clock: Clock) -> None:
        self.sleep = clock.sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


# ---------------------------------------------------------------------------- world


class Controller(ContainerController):
    """The controller as the API drives it: a create body is parsed at the edge first."""

    async def create(self, body: dict[str, Any], name: str | None) -> Container:  # type: ignore[override]
        return await super().create(parse_create(body, name, self.core.images.get))


class World:
    """One daemon's parts. Pass another world's kernel/runtime/store for a daemon restart."""

    def __init__(self, tmp: Path, prev: World | None = None) -> None:
        self.tmp = tmp
        self.store = prev.store if prev else MemoryStore()
        self.nl = prev.nl if prev else FakeNetlink()
        self.netns = prev.netns if prev else FakeNetns()
        self.rt = prev.rt if prev else FakeRuntime()
        self.images = prev.images if prev else FakeImages(tmp / "rootfs")
        if prev is None:
            self.images.add("alpine")
        self.fw = FakeFirewall()
        self.dns = FakeDns()
        self.drivers: dict[str, Any] = {
            "bridge": BridgeDriver(self.nl),
            "host": HostDriver(),
            "null": NullDriver(),
        }
        self.nets = NetworkController(
            self.store, self.drivers, PoolPicker(), host_routes=self.nl.host_routes
        )
        cfg = DaemonConfig()
        cfg.iptables = True
        table = ContainerTable(self.nets)
        fw = FirewallSync(cfg, self.nets, self.fw, table)
        events = Events()
        self.ctl = Controller(
            store=self.store,
            networks=self.nets,
            table=table,
            drivers=self.drivers,
            netns=self.netns,
            netlink=self.nl,
            runtime=self.rt,
            images=self.images,
            bundles=OciBundles(),
            data_root=tmp / "data",
            dns=self.dns,
            dns_servers=["192.0.2.53"],
            ports_changed=fw,
            events=events,
        )
        self.engine = Engine(cfg, self.nets, fw, self.ctl, runtime=self.rt, events=events)
        self.engine.firewall_check_s = 0
        self.delays: list[float] = []  # backoff delays the controller scheduled
        real_later = self.ctl.supervisor.restart_later

        async def later(cid: str, delay: float, exited_at: float) -> None:
            self.delays.append(delay)
            await real_later(cid, delay, exited_at)

        self.ctl.supervisor.restart_later = later  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.engine.start()
        # let the controller's exit watcher subscribe (the fakes never suspend on their own)
        for _ in range(3):
            await REAL_SLEEP(0)

    async def close(self) -> None:
        await self.engine.close()

    async def net(self, name: str, subnet: str, gateway: str) -> Network:
        return await self.engine.create_network(
            CreateRequest(name=name, configs=[{"Subnet": subnet, "Gateway": gateway}])
        )

    async def create(
        self,
        name: str | None,
        network: str | None = None,
        ip: str | None = None,
        ports: dict[str, str] | None = None,
        restart: str | None = None,
        links: list[str] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> Container:
        hc: dict[str, Any] = {}
        if network:
            hc["NetworkMode"] = network
        if ports:
            hc["PortBindings"] = {k: [{"HostIp": "", "HostPort": v}] for k, v in ports.items()}
        if restart:
            pol, _, count = restart.partition(":")
            hc["RestartPolicy"] = {"Name": pol, "MaximumRetryCount": int(count or 0)}
        if links:
            hc["Links"] = links
        epcfg: dict[str, Any] = dict(extra or {})
        if ip:
            assert network
            epcfg[network] = {"IPAMConfig": {"IPv4Address": ip}}
        body: dict[str, Any] = {"Image": "alpine", "HostConfig": hc}
        if epcfg:
            body["NetworkingConfig"] = {"EndpointsConfig": epcfg}
        return await self.ctl.create(body, name)

    async def run(self, name: str | None, **kw: Any) -> Container:
        c = await self.create(name, **kw)
        await self.ctl.start_container(c.id)
        return c

    async def keys(self) -> set[str]:
        return {r.key for r in await self.store.list("")}

    def held(self, net: Network) -> int:
        return sum(space.used for space in self.nets.spaces[net.id])

    def is_held(self, net: Network, ip: str) -> bool:
        import ipaddress

        return any(
            not space.is_free(ipaddress.IPv4Address(ip))
            for space in self.nets.spaces[net.id]
            if ipaddress.IPv4Address(ip) in space.cfg.subnet
        )

    def port_taken(self, port: int, proto: str = "tcp") -> bool:
        return self.ctl.allocator.in_use(proto, "0.0.0.0", port)

    def ep(self, c: Container, net: Network) -> Endpoint:
        return Endpoint.from_dict(c.endpoints[net.id])


async def until(cond: Callable[[], bool], what: str) -> None:
    """Let the loop run (no real waiting) until ``cond()`` holds."""
    for _ in range(2000):
        if cond():
            return
        await REAL_SLEEP(0)
    raise AssertionError(f"never happened: {what}")


def aio(
    fn: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(containers_mod, "asyncio", AsyncioShim(c))
    return c


@pytest.fixture
def pids(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRuntime]:
    """``os.kill(pid, 0)`` in the controller answers from the fake runtime set here."""
    holder: dict[str, FakeRuntime] = {}
    real_kill = os.kill

    def fake_kill(pid: int, sig: int) -> None:
        rt = holder.get("rt")
        if sig == 0 and rt is not None:
            if not rt.pid_alive(pid):
                raise ProcessLookupError(3, "No such process")
            return
        real_kill(pid, sig)

    monkeypatch.setattr(containers_mod.os, "kill", fake_kill)
    return holder


async def started(tmp: Path) -> World:
    w = World(tmp)
    await w.start()
    return w


async def running_states(w: World, cid: str, n: int) -> None:
    await until(
        lambda: w.ctl.containers[cid].running and w.ctl.containers[cid].restart_count == n,
        f"running after restart {n}",
    )


# ---------------------------------------------------------------------------- create


@aio
async def test_a_failed_create_leaves_no_rootfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root's folders are made before the record's write: a write that fails takes
    them back."""
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")

    async def refused(ops: Sequence[Op]) -> TxnResult:
        raise Internal("store: boom")

    monkeypatch.setattr(w.store, "txn", refused)
    with pytest.raises(Internal, match="boom"):
        await w.create("web", network="n1", ip="10.9.0.5")
    assert w.images.rootfs == set()
    monkeypatch.undo()
    assert "cnames/web" not in await w.keys()
    c = await w.create("web", network="n1", ip="10.9.0.5")  # the name and address are free
    assert w.images.rootfs == {c.id}


@aio
async def test_create_writes_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    txns: list[list[Op]] = []
    real_txn = w.store.txn

    async def spy(ops: Sequence[Op]) -> TxnResult:
        txns.append(list(ops))
        return await real_txn(ops)

    monkeypatch.setattr(w.store, "txn", spy)
    c = await w.create("web", network="n1", ip="10.9.0.5", ports={"80/tcp": "8080"})
    # one transaction makes the container, its rootfs path included: no other write
    assert len(txns) == 1
    ipam = f"ipam/{n1.id}/10.9.0.5"
    assert sorted((op.kind, op.key) for op in txns[0]) == sorted(
        [("create", "cnames/web"), ("create", f"containers/{c.id}"), ("create", ipam)]
    )
    assert {"cnames/web", f"containers/{c.id}", ipam} <= await w.keys()
    rec = await w.store.get(f"containers/{c.id}")
    assert rec is not None and rec.value["rootfs"] == str(w.images.rootfs_path(c.id))
    # the root filesystem is prepared, and mounted only when it starts (in its own namespace)
    assert c.id in w.images.rootfs and c.id not in w.images.mounted
    assert c.state.status == "created" and w.rt.containers == {}
    ep = w.ep(c, n1)
    assert (ep.ip, ep.mac, ep.ifname, ep.gateway) == (
        "10.9.0.5",
        "02:42:0a:09:00:05",
        "eth0",
        "10.9.0.254",
    )
    assert not w.port_taken(8080)  # host ports are taken at start (Docker)
    assert c.config["_argv"] == ["/bin/sh"]
    await w.close()


@aio
async def test_name_conflict_leaves_nothing(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    first = await w.create("web", network="n1")
    keys, held, prepared = await w.keys(), w.held(n1), set(w.images.rootfs)
    with pytest.raises(Conflict) as err:
        await w.create("web", network="n1", ip="10.9.0.9", ports={"80/tcp": "8080"})
    assert err.value.message == (
        f'Conflict. The container name "/web" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert await w.keys() == keys
    assert w.held(n1) == held and not w.is_held(n1, "10.9.0.9")
    assert not w.port_taken(8080)
    assert w.images.rootfs == prepared
    assert len(w.ctl.containers) == 1
    await w.close()


@aio
async def test_a_name_that_looks_like_an_id_prefix_is_only_a_name(tmp_path: Path) -> None:
    # Docker checks a new name against names only: "b6" is free even when two ids start with it
    w = await started(tmp_path)
    a, b = await w.create("x1"), await w.create("x2")
    for c, cid in ((a, "b6" + "0" * 62), (b, "b6" + "1" * 62)):
        del w.ctl.containers[c.id]
        c.id = cid
        w.ctl.containers[cid] = c
    with pytest.raises(BadRequest, match=r"^multiple IDs found with provided prefix: b6$"):
        w.ctl.get("b6")
    made = await w.create("b6")
    assert w.ctl.get("b6") is made
    await w.ctl.rename("x1", "bb")
    assert w.ctl.get("bb") is a
    await w.close()


@aio
async def test_name_taken_in_the_store_only_rolls_back(tmp_path: Path) -> None:
    """The transaction refuses (another writer holds the name): nothing stays held."""
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    await w.store.put("cnames/web", {"id": "f" * 64})
    keys, held = await w.keys(), w.held(n1)
    with pytest.raises(Conflict, match=r'^Conflict. The container name "/web" is already in use'):
        await w.create("web", network="n1", ip="10.9.0.9", ports={"80/tcp": "8080"})
    assert await w.keys() == keys
    assert w.held(n1) == held and not w.is_held(n1, "10.9.0.9")
    assert not w.port_taken(8080)
    assert w.ctl.containers == {} and w.images.rootfs == set()
    await w.close()


@aio
async def test_duplicate_ip_conflict_leaves_nothing(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    n2 = await w.net("n2", "10.8.0.0/24", "10.8.0.254")
    await w.create("kod", network="n1", ip="10.9.0.201")
    keys, held1, held2 = await w.keys(), w.held(n1), w.held(n2)
    # n2 gets an address first, then n1's --ip clashes: n2's address must be given back
    with pytest.raises(Conflict, match=r"^Address already in use$"):
        await w.create(
            "kod2",
            network="n2",
            ports={"80/tcp": "8080"},
            extra={"n1": {"IPAMConfig": {"IPv4Address": "10.9.0.201"}}},
        )
    assert await w.keys() == keys
    assert (w.held(n1), w.held(n2)) == (held1, held2)
    assert not w.port_taken(8080)
    assert w.ctl.find("kod2") is None
    await w.close()


@aio
async def test_address_held_in_the_store_only_rolls_back(tmp_path: Path) -> None:
    """Another holder's ``ipam/`` key makes the transaction fail: ports and names go too."""
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    await w.store.put(NetworkController.ipam_key(n1.id, "10.9.0.7"), {"container": "x" * 64})
    keys = await w.keys()
    with pytest.raises(Conflict, match=r"^Address already in use$"):
        await w.create("web", network="n1", ip="10.9.0.7", ports={"80/tcp": "8080"})
    assert await w.keys() == keys
    assert not w.is_held(n1, "10.9.0.7") and not w.port_taken(8080)
    assert w.ctl.containers == {}
    await w.close()


@aio
async def test_port_conflict_at_start_and_port_freed_at_stop(tmp_path: Path) -> None:
    """Host ports are held from start to stop, as Docker's: a clash fails the start with
    Docker's text and leaves a created container; a stopped container's port is free."""
    w = await started(tmp_path)
    w1 = await w.run("w1", ports={"80/tcp": "8080"})
    w2 = await w.create("w2", ports={"80/tcp": "8080"})
    with pytest.raises(Conflict) as err:
        await w.ctl.start_container(w2.id)
    assert err.match(
        r"^driver failed programming external connectivity on endpoint w2 \([0-9a-f]{64}\): "
        r"Bind for 0.0.0.0:8080 failed: port is already allocated$"
    )
    assert w2.state.status == "created" and w2.ports == [] and w.port_taken(8080)
    await w.ctl.stop("w1", timeout=5)
    assert w1.ports == [] and not w.port_taken(8080)
    await w.ctl.start_container(w2.id)
    assert w2.running and w.port_taken(8080)
    with pytest.raises(Conflict, match="port is already allocated"):
        await w.ctl.start_container(w1.id)
    assert w1.state.status == "exited" and w1.ports == []
    await w.close()


@aio
async def test_create_refusals(tmp_path: Path) -> None:
    w = await started(tmp_path)
    with pytest.raises(BadRequest, match=r"^network nosuchnet not found$"):
        await w.create("ca", network="nosuchnet")
    with pytest.raises(NotFound, match=r"^No such image: nope$"):
        await w.ctl.create({"Image": "nope"}, "ca")
    with pytest.raises(BadRequest, match="user specified IP address is supported on user"):
        await w.create("ca", network="bridge", ip="172.17.0.9")
    with pytest.raises(BadRequest, match=r"^can't create 'AutoRemove' container"):
        await w.ctl.create(
            {
                "Image": "alpine",
                "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
            },
            "ca",
        )
    db = await w.create("db")
    with pytest.raises(
        Conflict, match=rf"^cannot join network of a non running container: {db.id}$"
    ):
        await w.create("ca", network="container:db")
    await w.ctl.start_container(db.id)
    conflicts = [
        ({"Hostname": "h"}, {}, "hostname and the network mode"),
        ({}, {"Links": ["db:x"]}, "container type network can't be used with links. This"),
        ({}, {"Dns": ["1.1.1.1"]}, "dns and the network mode"),
        ({}, {"ExtraHosts": ["a:1.2.3.4"]}, "custom host-to-IP mapping and the network mode"),
        ({"MacAddress": "02:42:ac:11:00:09"}, {}, "mac-address and the network mode"),
        ({}, {"PortBindings": {"80/tcp": [{"HostPort": "4040"}]}}, "port publishing and the co"),
        ({}, {"PublishAllPorts": True}, "port publishing and the container type network mode"),
        ({"ExposedPorts": {"80/tcp": {}}}, {}, "port exposing and the container type network"),
    ]
    for body, hc, text in conflicts:
        req = {"Image": "alpine", **body, "HostConfig": {"NetworkMode": "container:db", **hc}}
        with pytest.raises(BadRequest, match=rf"^conflicting options: {text}"):
            await w.ctl.create(req, "ca")
    for rp, text in (
        ({"Name": "always", "MaximumRetryCount": 3}, "cannot be used with restart policy 'always'"),
        ({"Name": "on-failure", "MaximumRetryCount": -1}, "cannot be negative"),
    ):
        with pytest.raises(BadRequest, match=f"^maximum retry count {text}$"):
            await w.ctl.create({"Image": "alpine", "HostConfig": {"RestartPolicy": rp}}, "ca")
    host = {"Image": "alpine", "HostConfig": {"NetworkMode": "host", "Links": ["db:x"]}}
    with pytest.raises(BadRequest, match=r"^conflicting options: host type networking can.t be"):
        await w.ctl.create(host, "ca")
    with pytest.raises(BadRequest, match=r"^Invalid network mode: invalid container format"):
        await w.ctl.create({"Image": "alpine", "HostConfig": {"NetworkMode": "container:"}}, "ca")
    assert [c.name for c in w.ctl.list()] == ["db"]
    assert {k for k in await w.keys() if k.startswith("cnames/")} == {"cnames/db"}
    await w.close()


@aio
async def test_network_rm_racing_a_create_or_connect(tmp_path: Path) -> None:
    """`network rm` while a create (or connect) on that network awaits its store write: one of
    them wins, never both (the network was removed under a committed endpoint)."""
    w = await started(tmp_path)
    real_txn = w.store.txn

    async def slow_txn(ops: Any) -> Any:
        await REAL_SLEEP(0.01)
        return await real_txn(ops)

    w.store.txn = slow_txn  # type: ignore[method-assign]
    other = await w.create("other")
    for i in range(6):
        net = await w.net(f"race{i}", f"10.{40 + i}.0.0/24", f"10.{40 + i}.0.254")
        if i % 2:
            op: Any = w.ctl.connect(net.name, other.id, {})
        else:
            op = w.create(f"rc{i}", network=net.name)
        made, removed = await asyncio.gather(
            op, w.engine.remove_network(net.name), return_exceptions=True
        )
        assert isinstance(made, BaseException) != isinstance(removed, BaseException), (
            made,
            removed,
        )
        if isinstance(removed, BaseException):
            assert isinstance(removed, Forbidden) and "has active endpoints" in removed.message
            assert w.nets.find(net.name) is not None
        else:
            assert isinstance(made, (BadRequest, NotFound)), made
            assert w.nets.find(net.name) is None
            assert not [k for k in await w.keys() if k.startswith(f"ipam/{net.id}")]
    await w.close()


# ---------------------------------------------------------------------------- start


@aio
async def test_start_builds_the_sandbox_on_a_user_network(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", ports={"80/tcp": "8080"})
    ep = w.ep(c, n1)
    ns = w.netns.path(c.id[:12])
    assert c.state.status == "running" and c.state.pid == w.rt.containers[c.id].pid
    assert w.rt.containers[c.id].status == "running"
    assert w.netns.namespaces == {c.id[:12]: ns}
    assert ("loopback_up", ns) in w.nl.calls
    spec = w.nl.sandboxes[ns]["eth0"]
    ip_bytes = ":".join(f"{int(b):02x}" for b in ep.ip.split("."))
    assert spec.mac == "02:42:" + ip_bytes
    assert spec.address == f"{ep.ip}/24" and spec.gateway == "10.9.0.254"
    host = w.nl.links[veth_name(ep)]
    assert host.kind == "veth" and host.master == n1.ifname
    assert ep.host_ifname == veth_name(ep)
    # embedded DNS on a user network, and resolv.conf points at it
    assert w.dns.listeners == {c.id: ns}
    resolv = (w.ctl.files_dir(c) / "resolv.conf").read_text()
    assert "nameserver 127.0.0.11" in resolv
    rules = [r for r in w.fw.ports if r.container_ip == ep.ip]
    assert [(r.proto, r.host_port, r.container_port, r.bridge) for r in rules] == [
        ("tcp", 8080, 80, n1.ifname)
    ]
    with pytest.raises(NotModified):
        await w.ctl.start_container("web")
    await w.close()


@aio
async def test_default_bridge_has_no_dns_listener(tmp_path: Path) -> None:
    w = await started(tmp_path)
    c = await w.run("plain")
    assert w.dns.listeners == {}
    resolv = (w.ctl.files_dir(c) / "resolv.conf").read_text()
    assert "127.0.0.11" not in resolv and "192.0.2.53" in resolv
    assert "eth0" in w.nl.sandboxes[w.netns.path(c.id[:12])]
    await w.close()


@aio
async def test_start_failure_tears_the_sandbox_down(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.create("web", network="n1", ports={"80/tcp": "8080"})
    w.rt.fail["start"] = BadRequest("exec: boom")
    with pytest.raises(BadRequest):
        await w.ctl.start_container(c.id)
    ep = w.ep(c, n1)
    assert w.netns.namespaces == {} and veth_name(ep) not in w.nl.links
    assert w.dns.listeners == {} and w.rt.containers == {}
    assert c.state.status == "created" and c.state.error == "exec: boom"
    assert w.is_held(n1, ep.ip) and not w.port_taken(8080)  # the address stays, the port not
    # and it starts fine afterwards
    await w.ctl.start_container(c.id)
    assert c.running
    await w.close()


# ---------------------------------------------------------------------------- exits


@aio
async def test_exit_tears_down_and_keeps_addresses(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", ports={"80/tcp": "8080"})
    ep = w.ep(c, n1)
    assert w.fw.ports
    w.rt.exit(c.id, 3)
    await until(lambda: c.state.status == "exited", "exited")
    await until(lambda: not w.fw.ports, "ports unpublished")
    assert c.state.exit_code == 3 and c.state.pid == 0
    assert w.netns.namespaces == {} and veth_name(ep) not in w.nl.links
    assert w.dns.listeners == {} and c.id in w.dns.removed
    assert c.id not in w.rt.containers  # runtime state deleted
    assert w.is_held(n1, ep.ip) and not w.port_taken(8080)  # the port goes at exit (Docker)
    assert NetworkController.ipam_key(n1.id, ep.ip) in await w.keys()
    rec = await w.store.get(f"containers/{c.id}")
    assert rec is not None and rec.value["state"]["exit_code"] == 3
    die = [e for e in w.engine.events.history if e["Action"] == "die"]
    assert die[-1]["Actor"]["Attributes"]["exitCode"] == "3"
    # starts again with the same address
    await w.ctl.start_container(c.id)
    assert w.ep(c, n1).ip == ep.ip and c.running
    await w.close()


@aio
async def test_always_restarts_with_doubling_backoff(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", restart="always")
    for n in range(1, 5):
        w.rt.exit(c.id, 1)
        await running_states(w, c.id, n)
    assert w.delays == [0.1, 0.2, 0.4, 0.8]
    assert all(0 <= asked <= d for asked, d in zip(clock.requests, w.delays, strict=True))
    # the sandbox was kept across the restarts: one namespace made, one DNS listener added
    assert [x for x in w.netns.calls if x[0] == "create"] == [("create", c.id[:12])]
    assert w.dns.added == [c.id]
    # exit code 0 restarts too, and a run of 10 s or more resets the delay to 100 ms
    w.rt.exit(c.id, 0)
    await running_states(w, c.id, 5)
    c.state.started_at = "2001-01-01T00:00:00.000000Z"
    w.rt.exit(c.id, 1)
    await running_states(w, c.id, 6)
    assert w.delays[4:] == [1.6, 0.1]
    await w.close()


@aio
async def test_backoff_is_capped_at_a_minute(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    c = await w.run("web", restart="always")
    for n in range(1, 12):
        w.rt.exit(c.id, 1)
        await running_states(w, c.id, n)
    assert w.delays[-3:] == [25.6, 51.2, 60.0]
    await w.close()


@aio
async def test_restarting_state_keeps_the_sandbox(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", restart="always", ports={"80/tcp": "8080"})
    clock.hold = True
    w.rt.exit(c.id, 2)
    await until(lambda: clock.waiting == 1, "restart timer waiting")
    assert c.state.status == "restarting" and c.state.exit_code == 2
    assert w.ctl.has_sandbox(c) and c.id[:12] in w.netns.namespaces
    assert veth_name(w.ep(c, n1)) in w.nl.links and c.id in w.dns.listeners
    assert not w.fw.ports  # not running: nothing published meanwhile
    clock.release()
    await running_states(w, c.id, 1)
    assert w.fw.ports
    await w.close()


@aio
async def test_on_failure_stops_after_n(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    c = await w.run("web", restart="on-failure:2")
    w.rt.exit(c.id, 1)
    await running_states(w, c.id, 1)
    w.rt.exit(c.id, 1)
    await running_states(w, c.id, 2)
    w.rt.exit(c.id, 1)
    await until(lambda: c.state.status == "exited", "exited for good")
    for _ in range(20):
        await REAL_SLEEP(0)
    assert c.state.status == "exited" and c.restart_count == 2 and w.delays == [0.1, 0.2]
    assert w.netns.namespaces == {}
    # a user's start resets the count (Docker): the policy has its two restarts again
    await w.ctl.start_container(c.id)
    assert c.restart_count == 0
    w.rt.exit(c.id, 1)
    await running_states(w, c.id, 1)
    # and updating an --rm container's policy is refused (Docker's text)
    d = await w.ctl.create({"Image": "alpine", "HostConfig": {"AutoRemove": True}}, "tmp")
    with pytest.raises(Conflict, match="Restart policy cannot be updated because AutoRemove"):
        await w.ctl.update_restart(d.id, {"Name": "always"})
    await w.ctl.update_restart(d.id, {"Name": "no"})
    await w.close()


@aio
async def test_on_failure_does_not_restart_a_clean_exit(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    c = await w.run("web", restart="on-failure")
    w.rt.exit(c.id, 0)
    await until(lambda: c.state.status == "exited", "exited")
    for _ in range(20):
        await REAL_SLEEP(0)
    assert c.state.status == "exited" and c.restart_count == 0 and w.delays == []
    await w.close()


@aio
async def test_stop_and_kill_do_not_restart(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    a = await w.run("ca", restart="always")
    b = await w.run("cb", restart="unless-stopped")
    await w.ctl.stop("ca", timeout=5)
    assert a.state.status == "exited" and a.state.exit_code == 128 + signal.SIGTERM
    assert w.rt.calls.count(("kill", a.id, int(signal.SIGTERM))) == 1
    await w.ctl.kill("cb", None)
    assert b.state.status == "exited" and b.state.exit_code == 128 + signal.SIGKILL
    for _ in range(20):
        await REAL_SLEEP(0)
    assert (a.state.status, b.state.status) == ("exited", "exited")
    assert w.delays == [] and a.manually_stopped and b.manually_stopped
    assert w.netns.namespaces == {}
    with pytest.raises(NotModified):
        await w.ctl.stop("ca", timeout=1)
    with pytest.raises(Conflict, match=rf"^Container {a.id} is not running$"):
        await w.ctl.kill("ca", None)
    # started again by hand, the policy is back in force
    await w.ctl.start_container("ca")
    w.rt.exit(a.id, 1)
    await running_states(w, a.id, 1)
    await w.close()


@aio
async def test_stop_with_no_grace_when_the_process_exits_on_sigterm(tmp_path: Path) -> None:
    """``stop -t0``: the SIGTERM exit is handled while the SIGKILL is sent; not an error."""
    w = await started(tmp_path)
    c = await w.run("db")
    await w.ctl.stop("db", timeout=0)
    assert c.state.status == "exited" and c.state.exit_code == 128 + signal.SIGTERM
    # Docker's order: the signal, the exit, the network leaves, then stop
    actions = [(e["Type"], e["Action"]) for e in w.engine.events.history]
    assert actions[-4:] == [
        ("container", "kill"),
        ("container", "die"),
        ("network", "disconnect"),
        ("container", "stop"),
    ]
    await w.close()


@aio
async def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    w = await started(tmp_path)
    c = await w.run("stubborn")
    w.rt.ignored[c.id] = {int(signal.SIGTERM)}
    await w.ctl.stop("stubborn", timeout=0)
    assert w.rt.calls[-3:-1] == [
        ("kill", c.id, int(signal.SIGTERM)),
        ("kill", c.id, int(signal.SIGKILL)),
    ]
    assert c.state.exit_code == 137 and c.state.status == "exited"
    await w.close()


@aio
async def test_stop_while_restarting_cancels_the_restart(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", restart="always")
    clock.hold = True
    w.rt.exit(c.id, 1)
    await until(lambda: clock.waiting == 1, "restart pending")
    await w.ctl.stop("web", timeout=1)
    assert c.state.status == "exited" and c.manually_stopped
    assert w.netns.namespaces == {} and w.dns.listeners == {}
    clock.release()
    for _ in range(20):
        await REAL_SLEEP(0)
    assert c.state.status == "exited" and w.rt.containers == {}
    await w.close()


@aio
async def test_auto_remove(tmp_path: Path) -> None:
    w = await started(tmp_path)
    c = await w.ctl.create({"Image": "alpine", "HostConfig": {"AutoRemove": True}}, "tmp")
    await w.ctl.start_container(c.id)
    w.rt.exit(c.id, 0)
    await until(lambda: w.ctl.find("tmp") is None, "removed")
    assert not [k for k in await w.keys() if c.id in k or k == "cnames/tmp"]
    # rm -f of a running --rm container: removed once (one destroy, one rootfs removal)
    d = await w.ctl.create({"Image": "alpine", "HostConfig": {"AutoRemove": True}}, "tmp2")
    await w.ctl.start_container(d.id)
    await w.ctl.remove("tmp2", force=True)
    for _ in range(20):
        await REAL_SLEEP(0)
    destroyed = [e for e in w.engine.events.history if e["Action"] == "destroy"]
    assert [e["id"] for e in destroyed] == [c.id, d.id]
    assert w.images.calls.count(("remove_rootfs", d.id)) == 1
    await w.close()


@aio
async def test_auto_remove_after_a_failed_start(tmp_path: Path) -> None:
    """`run --rm` whose start fails: removed, as Docker does (the CLI waits for the removal),
    its address and port free again."""
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.create("rr", network="n1", ports={"80/tcp": "5051"})
    c.host_config["AutoRemove"] = True
    ip = w.ep(c, n1).ip
    w.rt.fail["start"] = BadRequest("exec: nosuchcmd")
    with pytest.raises(BadRequest, match="nosuchcmd"):
        await w.ctl.start_container(c.id)
    assert w.ctl.find("rr") is None
    assert not [k for k in await w.keys() if c.id in k or k == "cnames/rr"]
    assert not w.is_held(n1, ip) and not w.port_taken(5051)
    assert w.netns.namespaces == {} and w.rt.containers == {}
    await w.close()


# ---------------------------------------------------------------------------- rm


@aio
async def test_rm_releases_everything(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    before = await w.keys()
    c = await w.run("web", network="n1", ip="10.9.0.5", ports={"80/tcp": "8080"})
    with pytest.raises(Conflict, match=rf"^You cannot remove a running container {c.id}\. "):
        await w.ctl.remove("web", force=False)
    await w.ctl.remove("web", force=True)
    assert await w.keys() == before
    assert not w.is_held(n1, "10.9.0.5") and not w.port_taken(8080)
    assert w.ctl.containers == {} and w.rt.containers == {}
    assert w.netns.namespaces == {} and w.images.rootfs == set()
    assert not w.ctl.files_dir(c).exists()
    assert not w.fw.ports
    with pytest.raises(NotFound, match=r"^No such container: web$"):
        w.ctl.get("web")
    # name, address and port are free again
    again = await w.create("web", network="n1", ip="10.9.0.5", ports={"80/tcp": "8080"})
    assert w.ep(again, n1).ip == "10.9.0.5"
    await w.close()


@aio
async def test_rm_of_a_restarting_container(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    c = await w.run("web", restart="always")
    clock.hold = True
    w.rt.exit(c.id, 1)
    await until(lambda: clock.waiting == 1, "restart pending")
    await w.ctl.remove("web", force=True)
    clock.release()
    for _ in range(20):
        await REAL_SLEEP(0)
    assert w.ctl.containers == {} and w.rt.containers == {} and w.netns.namespaces == {}
    await w.close()


# ---------------------------------------------------------------------------- connect


@aio
async def test_connect_and_disconnect(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    n2 = await w.net("jasonyin2020", "172.28.0.0/16", "172.28.0.254")
    c = await w.run("r1", network="n1")
    ns = w.netns.path(c.id[:12])
    await w.engine.connect("jasonyin2020", "r1", {})
    ep2 = w.ep(c, n2)
    assert ep2.ifname == "eth1" and set(w.nl.sandboxes[ns]) == {"eth0", "eth1"}
    assert w.nl.sandboxes[ns]["eth1"].gateway == "172.28.0.254"
    assert w.nl.links[veth_name(ep2)].master == n2.ifname
    assert NetworkController.ipam_key(n2.id, ep2.ip) in await w.keys()
    with pytest.raises(
        Forbidden, match=r"^endpoint with name r1 already exists in network jasonyin2020$"
    ):
        await w.engine.connect("jasonyin2020", "r1", {})
    with pytest.raises(Forbidden, match=r"^container cannot be disconnected from host network"):
        await w.engine.connect("host", "r1", {})
    await w.engine.disconnect("jasonyin2020", "r1", False)
    assert set(w.nl.sandboxes[ns]) == {"eth0"} and veth_name(ep2) not in w.nl.links
    assert not w.is_held(n2, ep2.ip) and n2.id not in c.endpoints
    assert NetworkController.ipam_key(n2.id, ep2.ip) not in await w.keys()
    with pytest.raises(Forbidden, match=rf"^container {c.id} is not connected to network"):
        await w.engine.disconnect("jasonyin2020", "r1", False)
    # a stopped container is connected in the store only, wired at start
    stopped = await w.create("s1", network="n1")
    await w.engine.connect(n2.id, "s1", {"IPAMConfig": {"IPv4Address": "172.28.0.50"}})
    assert w.ep(stopped, n2).ip == "172.28.0.50"
    assert w.netns.path(stopped.id[:12]) not in w.nl.sandboxes
    await w.ctl.start_container("s1")
    assert set(w.nl.sandboxes[w.netns.path(stopped.id[:12])]) == {"eth0", "eth1"}
    assert w.ep(c, n1).ifname == "eth0"
    # a running container of the default bridge gets the embedded DNS when it joins a user
    # network, and its resolv.conf points there from then on
    plain = await w.run("plain")
    assert plain.id not in w.dns.listeners
    await w.engine.connect("n1", "plain", {})
    assert w.dns.listeners[plain.id] == w.netns.path(plain.id[:12])
    assert "nameserver 127.0.0.11" in (w.ctl.files_dir(plain) / "resolv.conf").read_text()
    # leaving the network that gave the default route moves it to the next one (Docker's
    # updateGateway); leaving another one keeps it where it was (eth0's)
    ns = w.netns.path(plain.id[:12])
    await w.engine.disconnect("n1", "plain", False)
    assert w.nl.default_routes[ns] == ("172.17.0.1", "eth0")
    await w.engine.connect("n1", "plain", {})
    await w.engine.disconnect("bridge", "plain", False)
    assert w.nl.default_routes[ns] == ("10.9.0.254", "eth1")
    await w.close()


@aio
async def test_connect_refusals_for_host_and_none(tmp_path: Path) -> None:
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    h = await w.create("hh", network="host", ports={"80/tcp": "9999"})
    assert h.endpoints == {} and h.ports == [] and not w.port_taken(9999)
    shared = (
        r"^container sharing network namespace with another container or host cannot be "
        r"connected to any other network$"
    )
    none = (
        r"^container cannot be connected to multiple networks with one of the networks in "
        r"private \(none\) mode$"
    )
    host = r"^container cannot be disconnected from host network or connected to host network$"
    with pytest.raises(Forbidden, match=shared):  # Docker: the host network is not private
        await w.engine.connect("n1", "hh", {})
    await w.create("nn", network="none")
    with pytest.raises(Forbidden, match=none):
        await w.engine.connect("n1", "nn", {})
    b = await w.create("cb", network="n1")
    with pytest.raises(Forbidden, match=none):
        await w.engine.connect("none", b.id, {})
    with pytest.raises(Forbidden, match=host):
        await w.engine.connect("host", b.id, {})
    await w.close()


@aio
async def test_connect_failure_in_the_kernel_leaves_nothing(tmp_path: Path) -> None:
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    n2 = await w.net("n2", "10.8.0.0/24", "10.8.0.254")
    c = await w.run("r1", network="n1")
    held = w.held(n2)
    w.nl.fail["add_veth"] = BadRequest("no room")
    with pytest.raises(BadRequest):
        await w.engine.connect("n2", "r1", {})
    assert n2.id not in c.endpoints and w.held(n2) == held
    assert not [k for k in await w.keys() if k.startswith(f"ipam/{n2.id}/")]
    rec = await w.store.get(f"containers/{c.id}")
    assert rec is not None and n2.id not in rec.value["endpoints"]
    await w.close()


# ---------------------------------------------------------------------------- links


@aio
async def test_link_validation_texts(tmp_path: Path) -> None:
    w = await started(tmp_path)
    await w.net("jasonyin2020", "172.28.0.0/16", "172.28.0.254")
    with pytest.raises(
        BadRequest, match=r"^could not get container for nosuch: No such container: nosuch$"
    ):
        await w.create(None, links=["nosuch:x"])
    await w.run("web", network="jasonyin2020")
    with pytest.raises(
        BadRequest, match=r"^Cannot link to /web, as it does not belong to the default network$"
    ):
        await w.create(None, links=["web:w"])
    db = await w.run("db")
    await w.ctl.stop("db", timeout=0)
    with pytest.raises(
        Conflict, match=r"^Cannot link to a non running container: /db AS /me/mysql$"
    ):
        await w.create("me", links=["db:mysql"])
    # on a user network a link is an alias, not checked
    linked = await w.create("linked", network="jasonyin2020", links=["web:w", "nosuch:x"])
    assert [alias for _, alias in linked.links] == ["w", "x"]
    # a running target on the default bridge: hosts line and environment
    await w.ctl.start_container("db")
    me = await w.run("me", links=["db:mysql"])
    hosts = (w.ctl.files_dir(me) / "hosts").read_text()
    db_ip = w.ep(db, w.nets.get("bridge")).ip
    assert f"{db_ip}\tmysql {db.id[:12]} db" in hosts
    assert "MYSQL_NAME=/me/mysql" in w.ctl._link_env(me)
    # the target stopped: starting the linking container again is refused
    await w.ctl.stop("me", timeout=0)
    await w.ctl.stop("db", timeout=0)
    with pytest.raises(
        Conflict, match=r"^Cannot link to a non running container: /db AS /me/mysql$"
    ):
        await w.ctl.start_container("me")
    assert w.netns.namespaces.keys() == {w.ctl.get("web").id[:12]}
    await w.close()


# ---------------------------------------------------------------------------- rename


@aio
async def test_rename(tmp_path: Path) -> None:
    w = await started(tmp_path)
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    a = await w.create("ca", network="n1")
    b = await w.create("cb")
    await w.ctl.rename("ca", "/alpha")
    assert a.name == "alpha" and w.ctl.get("alpha") is a
    keys = await w.keys()
    assert "cnames/alpha" in keys and "cnames/ca" not in keys
    assert w.ep(a, n1).container_name == "alpha"
    rec = await w.store.get(f"containers/{a.id}")
    assert rec is not None and rec.value["name"] == "alpha"
    with pytest.raises(
        Conflict,
        match=rf"^Error when allocating new name: Conflict. The container name \"/cb\" is "
        rf'already in use by container "{b.id}"',
    ):
        await w.ctl.rename("alpha", "cb")
    with pytest.raises(BadRequest, match=r"^Renaming a container with the same name"):
        await w.ctl.rename("alpha", "alpha")
    with pytest.raises(BadRequest):
        await w.ctl.rename("alpha", "bad name!")
    # the old name is free again
    await w.create("ca")
    await w.close()


# ---------------------------------------------------------------------------- reconcile


@aio
async def test_reconcile_after_a_daemon_restart(
    tmp_path: Path, pids: dict[str, FakeRuntime], clock: Clock
) -> None:
    w = await started(tmp_path)
    pids["rt"] = w.rt
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    live = await w.run("live", network="n1", ports={"80/tcp": "8080"})
    gone = await w.run("gone", network="n1", ports={"81/tcp": "8081"})
    back = await w.run("back", network="n1", restart="always")
    kept = await w.run("kept", restart="unless-stopped")
    await w.ctl.stop("kept", timeout=0)
    await w.close()
    # while the daemon is away: two containers exit, a leak appears in the store and kernel
    w.rt.exit(gone.id, 7)
    w.rt.exit(back.id, 1)
    await w.store.put(NetworkController.ipam_key(n1.id, "10.9.0.99"), {"container": "z" * 64})
    await w.netns.create("stray")
    gone_veth = veth_name(w.ep(gone, n1))
    assert gone_veth in w.nl.links

    w2 = World(tmp_path, prev=w)
    await w2.start()
    c = w2.ctl.containers
    # adopted: same pid, sandbox and DNS listener, ports published again
    assert c[live.id].running and c[live.id].state.pid == live.state.pid
    assert w2.rt.containers[live.id].status == "running"
    assert w2.dns.listeners.get(live.id) == w.netns.path(live.id[:12])
    assert [r.host_port for r in w2.fw.ports] == [8080]
    # exited while away: the code is recorded, the sandbox is gone, the addresses are kept
    assert c[gone.id].state.status == "exited" and c[gone.id].state.exit_code == 7
    assert gone.id[:12] not in w2.netns.namespaces and gone_veth not in w2.nl.links
    assert w2.is_held(n1, w.ep(gone, n1).ip) and not w2.port_taken(8081)
    # restarted by its policy, with a fresh sandbox
    await until(lambda: c[back.id].running, "always container restarted")
    assert c[back.id].restart_count == 1 and back.id[:12] in w2.netns.namespaces
    assert w2.delays == [0.1]
    # stopped by hand: unless-stopped stays stopped
    assert c[kept.id].state.status == "exited"
    # the leaked address and the stray namespace are gone, the live one's are not
    keys = await w2.keys()
    assert NetworkController.ipam_key(n1.id, "10.9.0.99") not in keys
    assert not w2.is_held(n1, "10.9.0.99")
    assert "stray" not in w2.netns.namespaces and live.id[:12] in w2.netns.namespaces
    assert w2.is_held(n1, w.ep(live, n1).ip) and w2.port_taken(8080)
    # the adopted container's exit still reaches the new controller
    w2.rt.exit(live.id, 0)
    await until(lambda: c[live.id].state.status == "exited", "adopted exit seen")
    assert live.id[:12] not in w2.netns.namespaces
    await w2.close()


@aio
async def test_reconcile_finishes_an_interrupted_remove(
    tmp_path: Path, pids: dict[str, FakeRuntime]
) -> None:
    w = await started(tmp_path)
    pids["rt"] = w.rt
    n1 = await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.create("web", network="n1", ports={"80/tcp": "8080"})
    ip = w.ep(c, n1).ip
    c.state.status = "removing"
    await w.ctl.save(c)  # the daemon died right after marking it
    await w.close()
    w2 = World(tmp_path, prev=w)
    await w2.start()
    assert w2.ctl.containers == {}
    keys = await w2.keys()
    assert not [k for k in keys if c.id in k or k == "cnames/web"]
    assert not w2.is_held(n1, ip) and not w2.port_taken(8080)
    await w2.close()


@aio
async def test_reconcile_keeps_a_pending_restart(
    tmp_path: Path, pids: dict[str, FakeRuntime], clock: Clock
) -> None:
    """The daemon stopped while a restart was pending: the restart happens, counted once."""
    w = await started(tmp_path)
    pids["rt"] = w.rt
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", restart="on-failure:1")
    clock.hold = True
    w.rt.exit(c.id, 5)
    await until(lambda: clock.waiting == 1, "restart pending")
    assert c.state.status == "restarting" and c.restart_count == 1
    await w.close()
    clock.hold = False
    clock.release()
    w2 = World(tmp_path, prev=w)
    await w2.start()
    again = w2.ctl.containers[c.id]
    await until(lambda: again.running, "restarted after the daemon restart")
    assert again.restart_count == 1
    assert list(w2.netns.namespaces) == [c.id[:12]] and w2.dns.listeners.keys() == {c.id}
    # and on-failure:1 is used up now
    w2.rt.exit(c.id, 5)
    await until(lambda: again.state.status == "exited", "exited for good")
    assert again.state.exit_code == 5 and again.restart_count == 1
    await w2.close()
