"""The topology model and ``tether path`` over in-memory fakes (issue 19).

The world is the container controller test's (``MemoryStore``, ``FakeNetlink``, ``FakeNetns``,
``FakeRuntime``, ``FakeFirewall``): the store's side comes from the real engine, the kernel's
side from the fake's ``link_table``; drift is made by editing the fake kernel.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from tests.unit.apiclient import api_client
from tests.unit.test_container_controller import World, aio

from tether.api.app import make_app
from tether.engine import fwverdict as fv
from tether.engine.fwrender import NetRule, PortRule
from tether.engine.networks import CreateRequest
from tether.engine.pathtrace import split_port
from tether.testing.netlink import FakeLink


async def world(tmp: Path) -> World:
    w = World(tmp)
    await w.start()
    await w.net("front", "10.31.0.0/24", "10.31.0.1")
    await w.net("back", "10.32.0.0/24", "10.32.0.1")
    await w.engine.create_network(
        CreateRequest(name="sealed", internal=True, configs=[{"Subnet": "10.33.0.0/24"}])
    )
    await w.run("web", network="front", ports={"80/tcp": "8080"})
    await w.run("api", network="front")
    await w.run("db", network="back")
    await w.run("vault", network="sealed")
    return w


def by_name(items: list[dict[str, Any]], name: str, key: str = "name") -> dict[str, Any]:
    return next(i for i in items if i[key] == name)


@aio
async def test_topology_lists_networks_endpoints_and_containers(tmp_path: Path) -> None:
    w = await world(tmp_path)
    topo = await w.engine.topology()
    front = by_name(topo["networks"], "front")
    assert front["driver"] == "bridge"
    assert front["subnets"] == [{"Subnet": "10.31.0.0/24", "Gateway": "10.31.0.1"}]
    [dev] = front["devices"]
    assert dev["role"] == "bridge" and dev["name"].startswith("tbr-")
    assert dev["kernel"]["kind"] == "bridge" and "drift" not in dev
    web = by_name(topo["containers"], "web")
    assert web["state"] == "running" and web["networks"] == ["front"]
    assert web["ports"] == [
        {"proto": "tcp", "container_port": 80, "host_ip": "0.0.0.0", "host_port": 8080}
    ]
    assert web["dns_names"]["front"][:1] == ["web"]
    ep = by_name(topo["endpoints"], "web", "container")
    assert ep["ifname"] == "eth0" and ep["host_ifname"].startswith("tv")
    assert ep["ipv4"].startswith("10.31.0.") and ep["mac"].startswith("02:42:")
    assert ep["kernel"]["host_side"]["master"] == dev["name"]
    assert ep["kernel"]["container_side"]["mac"] == ep["mac"]
    assert topo["drift"] == [] and topo["kernel_checked"] is True
    assert topo["hosts"][0]["self"] is True
    await w.close()


@aio
async def test_drift_on_either_side(tmp_path: Path) -> None:
    w = await world(tmp_path)
    web = w.ctl.get("web")
    veth = w.ep(web, w.nets.get("front")).host_ifname
    await w.nl.delete_link(veth)  # gone from the kernel, still in the store
    w.nl.links["tbr-0123456789a"] = FakeLink("tbr-0123456789a", "bridge")  # no record
    topo = await w.engine.topology()
    ep = by_name(topo["endpoints"], "web", "container")
    assert "missing in the kernel" in ep["drift"]
    kinds = {(d["kind"], d["name"]) for d in topo["drift"]}
    assert ("endpoint", "web/front") in kinds
    assert ("link", "host:tbr-0123456789a") in kinds
    quiet = await w.engine.topology(kernel=False)
    assert quiet["drift"] == [] and quiet["kernel_checked"] is False
    await w.close()


@aio
async def test_path_same_bridge_is_ok(tmp_path: Path) -> None:
    w = await world(tmp_path)
    p = await w.engine.path("web", "api")
    assert p["ok"] is True and p["network"] == "front", p
    kinds = [h["kind"] for h in p["hops"]]
    assert kinds[:3] == ["interface", "veth", "bridge"] and kinds[-2:] == ["veth", "interface"]
    assert all(h["state"] in ("up", "forwards") for h in p["hops"])
    await w.close()


@aio
async def test_path_between_networks_is_dropped_by_isolation(tmp_path: Path) -> None:
    w = await world(tmp_path)
    p = await w.engine.path("web", "db")
    assert p["ok"] is False
    hop = p["hops"][p["dropped_at"]]
    assert hop["kind"] == "nft" and hop["name"] == "ip tether forward: oifname @bridges drop"
    assert p["reason"].startswith("isolation: back")
    await w.close()


@aio
async def test_published_port_from_the_host_is_dnat(tmp_path: Path) -> None:
    w = await world(tmp_path)
    web_ip = w.ep(w.ctl.get("web"), w.nets.get("front")).ip
    p = await w.engine.path("host", "127.0.0.1:8080")
    assert p["ok"] is True, p
    dnat = next(h for h in p["hops"] if h.get("verdict") == "dnat")
    assert f"-> {web_ip}:80" in dnat["name"] and "output" in dnat["name"]
    assert p["hops"][-1]["where"] == "container web" and p["hops"][-1]["state"] == "up"
    outside = await w.engine.path("192.0.2.9", "host:8080")
    fwd = [h["name"] for h in outside["hops"] if h["kind"] == "nft"]
    assert "ip tether forward: oifname @bridges ct status dnat accept" in fwd
    none = await w.engine.path("host", "host:9999")
    assert none["ok"] is False and "no published port 9999/tcp" in none["reason"]
    await w.close()


@aio
async def test_internal_to_outside_is_dropped(tmp_path: Path) -> None:
    w = await world(tmp_path)
    p = await w.engine.path("vault", "192.0.2.80")
    assert p["ok"] is False
    assert p["hops"][p["dropped_at"]]["name"] == "ip tether forward: iifname @internal drop"
    out = await w.engine.path("web", "192.0.2.80")
    assert out["ok"] is True
    assert any(h.get("verdict") == "masquerade" for h in out["hops"])
    await w.close()


@aio
async def test_a_missing_interface_ends_the_path(tmp_path: Path) -> None:
    w = await world(tmp_path)
    api = w.ctl.get("api")
    await w.nl.delete_link(w.ep(api, w.nets.get("front")).host_ifname)
    p = await w.engine.path("web", "api")
    assert p["ok"] is False and p["hops"][p["dropped_at"]]["state"] == "missing"
    await w.close()


@aio
async def test_routes(tmp_path: Path) -> None:
    w = await world(tmp_path)
    async with api_client(make_app(w.engine)) as client:
        r = await client.get("/tether/topology")
        assert r.status == 200
        assert {n["name"] for n in (await r.json())["networks"]} >= {"front", "back"}
        r = await client.get("/v1.41/tether/path", params={"from": "web", "to": "db"})
        assert (await r.json())["ok"] is False
        r = await client.get("/tether/path", params={"from": "web"})
        assert r.status == 400
        r = await client.get("/tether/path", params={"from": "nope", "to": "db"})
        assert r.status == 404
    await w.close()


def test_verdicts_follow_the_rules_order() -> None:
    a = NetRule("a" * 12, "br-a", "10.1.0.0/24", "10.1.0.1")
    b = NetRule("b" * 12, "br-b", "10.2.0.0/24", "10.2.0.1", icc=False)
    i = NetRule("c" * 12, "br-i", "10.3.0.0/24", "10.3.0.1", internal=True)
    nets = fv.by_bridge([a, b, i])
    assert fv.forward("br-a", "br-a", nets, False).action == "accept"
    assert fv.forward("br-b", "br-b", nets, False).rule.endswith("oifname @bridges drop")
    assert fv.forward("br-a", "br-i", nets, True).rule.endswith("oifname @internal drop")
    assert fv.forward("br-a", "br-b", nets, True).action == "accept"
    assert fv.forward("eth9", "eth8", nets, False).rule.endswith("policy accept")
    assert fv.bridged("br-b", nets).dropped and not fv.bridged("br-a", nets).dropped
    assert fv.input_("br-i", "10.3.0.1", nets).action == "accept"
    assert fv.input_("br-i", "192.0.2.1", nets).dropped
    assert fv.input_("br-a", "127.0.0.1", nets).dropped
    ports = [PortRule("tcp", "10.0.0.5", 80, "10.1.0.2", 8080, "br-a"),
             PortRule("tcp", "", 80, "10.1.0.3", 80, "br-a")]  # fmt: skip
    hit = fv.published("10.0.0.5", "tcp", 80, ports, nets)
    assert hit is not None and hit.addr == "10.1.0.2"
    hit = fv.published("10.0.0.6", "tcp", 80, ports, nets)
    assert hit is not None and hit.addr == "10.1.0.3"
    assert fv.published("10.0.0.6", "udp", 80, ports, nets) is None
    assert split_port("web:80/udp") == ("web", 80, "udp") and split_port("db") == ("db", 0, "tcp")


@aio
async def test_cli_renders_the_model_and_the_path(tmp_path: Path) -> None:
    from tether.cli.topology import path_text, topology_dot, topology_text

    w = await world(tmp_path)
    topo = await w.engine.topology()
    text = topology_text(topo)
    assert "network front (bridge) 10.31.0.0/24 gw 10.31.0.1" in text
    assert "web (running): eth0 [up]" in text and "ports 0.0.0.0:8080->80/tcp" in text
    assert "no drift" in text
    dot = topology_dot(topo)
    assert dot.startswith("graph tether {") and '"c:web" -- "dev:tbr-' in dot
    p = path_text(await w.engine.path("web", "db"))
    assert p.splitlines()[0].startswith("web -> db over front: DROPPED at hop 4: isolation")
    assert "ip tether forward: oifname @bridges drop  [host] DROP  <- drops here" in p
    await w.close()


def _cli_topology(topo: dict[str, Any], *args: str) -> Any:
    from cli_fakedaemon import FakeDaemon
    from click.testing import CliRunner

    from tether.cli.main import cli

    d = FakeDaemon()
    d.route("GET", "/tether/topology", (200, topo))
    try:
        return CliRunner().invoke(cli, ["-H", d.host, "topology", *args])
    finally:
        d.close()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@aio
async def test_cli_svg_draws_networks_and_containers(tmp_path: Path) -> None:
    w = await world(tmp_path)
    topo = await w.engine.topology()
    await w.close()
    r = _cli_topology(topo, "--format", "svg")
    assert r.exit_code == 0, r.output
    root = ElementTree.fromstring(r.output.strip())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    for name in ("front", "back", "sealed", "web", "api", "db", "vault"):
        assert name in texts, name


def test_cli_svg_without_dot_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.cli.topology as cli_topology

    monkeypatch.setattr(cli_topology.shutil, "which", lambda _name: None)
    r = _cli_topology({"hosts": [], "networks": [], "endpoints": [], "containers": []},
                      "--format", "svg")  # fmt: skip
    assert r.exit_code == 1
    assert "svg needs Graphviz's dot (apt-get install graphviz); try --format dot" in r.output
