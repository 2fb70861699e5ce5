"""Sandbox resolv.conf texts, the host file choice, and the records a container can see."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tether.engine import sandbox as sbx
from tether.engine.resolver import EngineResolver

HOST = "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.example\noptions attempts:2\n"


def test_embedded_resolv_keeps_search_and_options_adds_ndots() -> None:
    text = sbx.resolv_text(True, [], HOST, False)
    assert text == "nameserver 127.0.0.11\nsearch corp.example\noptions attempts:2 ndots:0\n"


def test_embedded_resolv_user_ndots_wins() -> None:
    text = sbx.resolv_text(True, [], HOST, False, dns_options=["ndots:3"])
    assert text == "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:3\n"


def test_default_bridge_drops_loopback_and_falls_back() -> None:
    assert sbx.resolv_text(False, [], HOST, False) == (
        "nameserver 192.0.2.1\nsearch corp.example\noptions attempts:2\n"
    )
    only_loop = "nameserver 127.0.0.53\nnameserver ::1\n"
    assert sbx.resolv_text(False, [], only_loop, False) == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    )


def test_dns_flags_replace_host_values() -> None:
    text = sbx.resolv_text(False, ["198.51.100.1"], HOST, False, ["a.test", "b.test"], ["rotate"])
    assert text == "nameserver 198.51.100.1\nsearch a.test b.test\noptions rotate\n"
    assert "search" not in sbx.resolv_text(False, [], HOST, False, dns_search=["."])


def test_host_file_override_and_mtime_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "resolv.conf"
    f.write_text("nameserver 192.0.2.7\n")
    monkeypatch.setenv(sbx.RESOLV_ENV, str(f))
    assert sbx.host_nameservers(sbx.host_resolv()) == ["192.0.2.7"]
    f.write_text("nameserver 192.0.2.8\n")
    os.utime(f, (1, 1))  # a different mtime: re-read
    assert sbx.host_nameservers(sbx.host_resolv()) == ["192.0.2.8"]


def test_systemd_stub_uses_the_real_upstream_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc.conf"
    etc.write_text("nameserver 127.0.0.53\noptions edns0\n")
    real = tmp_path / "systemd.conf"
    real.write_text("nameserver 192.0.2.9\n")
    monkeypatch.delenv(sbx.RESOLV_ENV, raising=False)
    monkeypatch.setattr(sbx, "HOST_RESOLV", str(etc))
    monkeypatch.setattr(sbx, "SYSTEMD_RESOLV", str(real))
    assert sbx.host_nameservers(sbx.host_resolv()) == ["192.0.2.9"]
    real.unlink()
    assert sbx.host_nameservers(sbx.host_resolv()) == ["127.0.0.53"]


# ---- resolver ------------------------------------------------------------------------------
@dataclass
class Ep:
    ip: str
    aliases: list[str] = field(default_factory=list)


@dataclass
class C:
    id: str
    name: str
    endpoints: dict[str, dict[str, Any]]
    links: list[list[str]] = field(default_factory=list)
    running: bool = True
    host_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Net:
    id: str
    name: str
    predefined: bool = False
    internal: bool = False


class Containers:
    def __init__(self, *cs: C) -> None:
        self.containers = {c.id: c for c in cs}

    def endpoints_on(self, nid: str) -> list[tuple[C, Ep]]:
        return [
            (c, Ep(c.endpoints[nid]["ip"], c.endpoints[nid].get("aliases", [])))
            for c in self.containers.values()
            if nid in c.endpoints
        ]


class Networks:
    def __init__(self, *ns: Net) -> None:
        self.networks = {n.id: n for n in ns}


def ident(ch: str) -> str:
    return ch * 64


def make() -> tuple[EngineResolver, Containers]:
    web = C(ident("a"), "web", {"n1": {"ip": "10.0.0.2", "aliases": ["www"]}})
    cli = C(ident("b"), "cli", {"n1": {"ip": "10.0.0.3"}}, links=[["later", "lt"]])
    lnk = C(ident("c"), "lnk", {"n1": {"ip": "10.0.0.4"}}, links=[[ident("a"), "backend"]])
    far = C(ident("d"), "far", {"n2": {"ip": "10.1.0.2"}})
    br = C(ident("e"), "br", {"bridge": {"ip": "172.17.0.2"}})
    cs = Containers(web, cli, lnk, far, br)
    nets = Networks(Net("n1", "n1"), Net("n2", "n2"), Net("bridge", "bridge", predefined=True))
    return EngineResolver(cs, nets, []), cs


def test_names_aliases_short_id_scoped_to_networks() -> None:
    r, _ = make()
    sb = ident("b")
    assert r.lookup(sb, "web") == ["10.0.0.2"]
    assert r.lookup(sb, "WWW.") == ["10.0.0.2"]
    assert r.lookup(sb, "a" * 12) == ["10.0.0.2"]
    assert r.lookup(sb, "far") is None
    assert r.lookup(ident("e"), "web") is None  # default bridge: no names at all
    assert r.reverse(sb, "10.0.0.2") == "web.n1"
    assert r.reverse(sb, "10.1.0.2") is None


def test_link_alias_only_for_the_linker_and_by_name() -> None:
    r, cs = make()
    assert r.lookup(ident("c"), "backend") == ["10.0.0.2"]
    assert r.lookup(ident("b"), "backend") is None
    assert r.lookup(ident("b"), "lt") is None
    later = C(ident("f"), "later", {"n1": {"ip": "10.0.0.9"}})
    cs.containers[later.id] = later
    assert r.lookup(ident("b"), "lt") == ["10.0.0.9"]
    later.running = False
    assert r.lookup(ident("b"), "lt") is None


def test_upstreams_prefer_dns_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "r.conf"
    f.write_text(HOST)
    monkeypatch.setenv(sbx.RESOLV_ENV, str(f))
    r, cs = make()
    assert r.upstreams(ident("b")) == ["127.0.0.53", "192.0.2.1"]  # loopback kept: host side
    cs.containers[ident("b")].host_config["Dns"] = ["198.51.100.5"]
    assert r.upstreams(ident("b")) == ["198.51.100.5"]
    # only internal networks: no route out, nothing to forward to (Docker's forward fails)
    r.networks.networks["n1"].internal = True
    assert r.upstreams(ident("b")) == []
    assert r.upstreams(ident("d")) != []  # on n2, not internal


def test_name_dot_network_and_one_network_per_answer() -> None:
    """`web.n1` is web on n1 only; a name on two shared networks answers with the first
    network's addresses (the asker's order), never both (Docker)."""
    r, cs = make()
    sb = ident("b")
    assert r.lookup(sb, "web.n1") == ["10.0.0.2"]
    assert r.lookup(sb, "WWW.N1.") == ["10.0.0.2"]
    assert r.lookup(sb, "web.n2") is None  # the asker is not on n2
    assert r.lookup(sb, "web.nosuch") is None
    both = C(ident("7"), "both", {"n1": {"ip": "10.0.0.7"}, "n2": {"ip": "10.1.0.7"}})
    asker = C(ident("8"), "asker", {"n1": {"ip": "10.0.0.8"}, "n2": {"ip": "10.1.0.8"}})
    cs.containers.update({both.id: both, asker.id: asker})
    assert r.lookup(asker.id, "both") == ["10.0.0.7"]
    assert r.lookup(asker.id, "both.n2") == ["10.1.0.7"]


def test_link_made_by_connect_is_an_alias_on_that_network_only() -> None:
    """`network connect --link web:w2 n1 x`: the link is on x's n1 endpoint; x resolves w2 to
    web's n1 address, other containers do not, and it means nothing on other networks."""
    r, cs = make()
    web2 = cs.containers[ident("a")]
    web2.endpoints["n2"] = {"ip": "10.1.0.7"}
    x = C(
        ident("9"), "x", {"n1": {"ip": "10.0.0.8", "links": ["web:w2"]}, "n2": {"ip": "10.1.0.8"}}
    )
    cs.containers[x.id] = x
    assert r.lookup(x.id, "w2") == ["10.0.0.2"]
    assert r.lookup(x.id, "W2.") == ["10.0.0.2"]
    assert r.lookup(ident("b"), "w2") is None
    x.endpoints["n1"]["links"] = ["web"]  # no alias: the name itself
    assert r.lookup(x.id, "web") == ["10.0.0.2"]
    web2.running = False
    x.endpoints["n1"]["links"] = ["web:w2"]
    assert r.lookup(x.id, "w2") is None
