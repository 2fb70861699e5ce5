"""nftables rendering of the firewall's desired state (see ``tether.engine.firewall``).

``render`` turns the networks (``NetRule``) and published ports (``PortRule``) into the
libnftables JSON batch that replaces tether's tables; ``render_port_update`` is the small
batch that edits only the port map elements.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.errors import Internal
from tether.linux.nft import JSON

FAMILY = "ip"
FAMILY6 = "ip6"
TABLE = "tether"
BRIDGE_FAMILY = "bridge"
USER_TABLE = "tether-user"
USER_CHAIN = "tether-user"
USER_PRIORITY = -1
PROTOS = ("tcp", "udp", "sctp")
MAP_KINDS = ("dnat_ip", "dnat_any", "dnat6_ip", "dnat6_any")


@dataclass(frozen=True)
class NetRule:
    """One bridge network."""

    id: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    host_binding_ipv4: str = "0.0.0.0"
    # dual-stack networks (issue 18): the IPv6 subnet and gateway ("" when IPv4-only)
    subnet6: str = ""
    gateway6: str = ""


@dataclass(frozen=True)
class PortRule:
    """One published port."""

    proto: str  # "tcp" | "udp" | "sctp"
    host_ip: str  # "" or "0.0.0.0" = every host address
    host_port: int
    container_ip: str
    container_port: int
    bridge: str
    container_ip6: str = ""  # on a dual-stack network: where IPv6 host addresses publish to


# --------------------------------------------------------------------------- expressions

_IIF: JSON = {"meta": {"key": "iifname"}}
_OIF: JSON = {"meta": {"key": "oifname"}}
_SADDR: JSON = {"payload": {"protocol": "ip", "field": "saddr"}}
_DADDR: JSON = {"payload": {"protocol": "ip", "field": "daddr"}}
_L4PROTO: JSON = {"meta": {"key": "l4proto"}}
_DPORT: JSON = {"payload": {"protocol": "th", "field": "dport"}}
_ACCEPT: JSON = {"accept": None}
_DROP: JSON = {"drop": None}
_MASQ: JSON = {"masquerade": None}
_LOOPBACK: JSON = {"prefix": {"addr": "127.0.0.0", "len": 8}}
_SADDR6: JSON = {"payload": {"protocol": "ip6", "field": "saddr"}}
_DADDR6: JSON = {"payload": {"protocol": "ip6", "field": "daddr"}}
_ND_TYPES: JSON = {"set": ["nd-neighbor-solicit", "nd-neighbor-advert"]}


def _m(left: JSON, right: Any, op: str = "==") -> JSON:
    return {"match": {"op": op, "left": left, "right": right}}


def _ct_state_est() -> JSON:
    return _m({"ct": {"key": "state"}}, ["established", "related"], "in")


def _ct_dnat() -> JSON:
    return _m({"ct": {"key": "status"}}, "dnat", "in")


def _fib_local() -> JSON:
    return _m({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


def _prefix(cidr: str) -> JSON:
    try:
        net = ipaddress.IPv4Network(cidr, strict=False)
    except ValueError as exc:
        raise Internal(f"firewall: invalid IPv4 subnet {cidr!r}") from exc
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _prefix6(cidr: str) -> JSON:
    try:
        net = ipaddress.IPv6Network(cidr, strict=False)
    except ValueError as exc:
        raise Internal(f"firewall: invalid IPv6 subnet {cidr!r}") from exc
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _ip6(addr: str) -> str:
    try:
        return str(ipaddress.IPv6Address(addr))
    except ValueError as exc:
        raise Internal(f"firewall: invalid IPv6 address {addr!r}") from exc


def _ip(addr: str) -> str:
    try:
        return str(ipaddress.IPv4Address(addr))
    except ValueError as exc:
        raise Internal(f"firewall: invalid IPv4 address {addr!r}") from exc


# --------------------------------------------------------------------------- render


@dataclass
class _Batch:
    family: str
    table: str
    cmds: list[JSON] = field(default_factory=list)

    def table_cmd(self) -> None:
        self.cmds.append({"add": {"table": {"family": self.family, "name": self.table}}})

    def chain(self, name: str, kind: str = "", hook: str = "", prio: int = 0) -> None:
        obj: JSON = {"family": self.family, "table": self.table, "name": name}
        if hook:
            obj.update({"type": kind, "hook": hook, "prio": prio, "policy": "accept"})
        self.cmds.append({"add": {"chain": obj}})

    def set(self, name: str, typ: str | list[str], elems: list[Any], *, map_to: str = "") -> None:
        obj: JSON = {"family": self.family, "table": self.table, "name": name, "type": typ}
        if map_to:
            obj["map"] = map_to
        if elems:
            obj["elem"] = elems
        self.cmds.append({"add": {"map" if map_to else "set": obj}})

    def rule(self, chain: str, *expr: JSON, comment: str = "") -> None:
        obj: JSON = {"family": self.family, "table": self.table, "chain": chain}
        obj["expr"] = list(expr)
        if comment:
            obj["comment"] = comment
        self.cmds.append({"add": {"rule": obj}})


def _replace_prefix(family: str, table: str) -> list[JSON]:
    t = {"family": family, "name": table}
    return [{"add": {"table": dict(t)}}, {"delete": {"table": dict(t)}}]


def check(nets: Sequence[NetRule], ports: Sequence[PortRule]) -> dict[str, NetRule]:
    by_bridge: dict[str, NetRule] = {}
    for n in nets:
        if not n.bridge or len(n.bridge) > 15:
            raise Internal(f"firewall: invalid bridge name {n.bridge!r}")
        if n.bridge in by_bridge:
            raise Internal(f"firewall: bridge {n.bridge} belongs to two networks")
        _prefix(n.subnet)
        _ip(n.gateway)
        if n.subnet6:
            _prefix6(n.subnet6)
            _ip6(n.gateway6)
        by_bridge[n.bridge] = n
    for p in ports:
        check_port(p)
    return by_bridge


def check_port(p: PortRule) -> None:
    if p.proto not in PROTOS:
        raise Internal(f"firewall: invalid protocol {p.proto!r}")
    for port in (p.host_port, p.container_port):
        if not 1 <= port <= 65535:
            raise Internal(f"firewall: invalid port {port}")
    _ip(p.container_ip)
    if p.container_ip6:
        _ip6(p.container_ip6)
    if ":" in p.host_ip:
        if p.host_ip != "::":
            _ip6(p.host_ip)
    elif p.host_ip not in ("", "0.0.0.0"):
        _ip(p.host_ip)


@dataclass(frozen=True)
class Elem:
    """One published port as its two map elements: ``maps`` ``_addr``/``_port`` share a key."""

    maps: str  # "dnat_ip" | "dnat_any"; "dnat6_ip" | "dnat6_any" in the ip6 table
    key: tuple[Any, ...]  # (host ip, proto, port) or (proto, port)
    addr: str
    port: int

    @property
    def concat(self) -> JSON:
        return {"concat": list(self.key)}

    @property
    def family(self) -> str:
        return FAMILY6 if self.maps.startswith("dnat6") else FAMILY

    def taken(self) -> str:
        if self.maps == "dnat_any":
            return f"0.0.0.0:{self.key[1]}/{self.key[0]}"
        if self.maps == "dnat6_any":
            return f"[::]:{self.key[1]}/{self.key[0]}"
        if self.maps == "dnat6_ip":
            return f"[{self.key[0]}]:{self.key[2]}/{self.key[1]}"
        return f"{self.key[0]}:{self.key[2]}/{self.key[1]}"


def port_elem(p: PortRule, by_bridge: dict[str, NetRule]) -> Elem | None:
    """The map elements of one port, None when it is not published (unknown/internal bridge)."""
    net = by_bridge.get(p.bridge)
    if net is None or net.internal:
        return None
    if ":" in p.host_ip:  # an IPv6 host address: to the container's IPv6 address
        if not p.container_ip6 or not net.subnet6:
            return None
        addr6 = _ip6(p.container_ip6)
        if p.host_ip == "::":
            return Elem("dnat6_any", (p.proto, p.host_port), addr6, p.container_port)
        return Elem("dnat6_ip", (_ip6(p.host_ip), p.proto, p.host_port), addr6, p.container_port)
    host_ip = p.host_ip if p.host_ip not in ("", "0.0.0.0") else net.host_binding_ipv4
    addr = _ip(p.container_ip)
    if host_ip in ("", "0.0.0.0"):
        return Elem("dnat_any", (p.proto, p.host_port), addr, p.container_port)
    return Elem("dnat_ip", (_ip(host_ip), p.proto, p.host_port), addr, p.container_port)


Published = dict[tuple[str, tuple[Any, ...]], Elem]


def render(nets: Sequence[NetRule], ports: Sequence[PortRule]) -> JSON:
    """The batch that replaces tether's tables with exactly this state.

    Pure and deterministic (sorted), so golden files can pin it. Ports whose
    bridge is unknown or internal are not published. A port with no host ip
    takes its network's ``host_binding_ipv4`` when that is not 0.0.0.0.
    """
    return render_state(nets, ports)[0]


def render_state(
    nets: Sequence[NetRule], ports: Sequence[PortRule]
) -> tuple[JSON, dict[str, NetRule], Published]:
    """``render``'s batch, the networks by bridge and the published elements it holds."""
    by_bridge = check(nets, ports)
    nets = sorted(by_bridge.values(), key=lambda n: n.bridge)
    b = _Batch(FAMILY, TABLE, _replace_prefix(FAMILY, TABLE))
    b.table_cmd()
    _sets(b, nets)
    elems = _port_elems(ports, by_bridge)
    _port_maps(b, elems)
    _nat_chains(b, nets)
    _filter_chains(b, nets)
    br = _bridge_batch(nets)
    v6 = _ip6_batch(nets, elems) if any(n.subnet6 for n in nets) else []
    published = {(e.maps, e.key): e for kind in elems.values() for e in kind.values()}
    return {"nftables": b.cmds + br.cmds + v6}, by_bridge, published


def _sets(b: _Batch, nets: Sequence[NetRule]) -> None:
    bridges = [n.bridge for n in nets]
    internal = [n.bridge for n in nets if n.internal]
    icc = [{"concat": [n.bridge, n.bridge]} for n in nets if n.icc]
    b.set("bridges", "ifname", bridges)
    b.set("internal", "ifname", internal)
    b.set("icc", ["ifname", "ifname"], icc)


def _port_elems(
    ports: Sequence[PortRule], by_bridge: dict[str, NetRule]
) -> dict[str, dict[tuple[Any, ...], Elem]]:
    """The published ports' elements by map kind (``dnat_ip``/``dnat_any``), sorted."""
    elems: dict[str, dict[tuple[Any, ...], Elem]] = {k: {} for k in MAP_KINDS}
    for p in sorted(ports, key=lambda p: (p.proto, p.host_port, p.host_ip, p.container_ip)):
        e = port_elem(p, by_bridge)
        if e is None:
            continue
        if e.key in elems[e.maps]:
            raise Internal(f"firewall: {e.taken()} published twice")
        elems[e.maps][e.key] = e
    return elems


def _port_maps(b: _Batch, elems: dict[str, dict[tuple[Any, ...], Elem]]) -> None:
    # nft 1.0.6's JSON parser cannot declare a map with concatenated data
    # (ip . port), so each lookup key has two maps: one to the address, one to the port.
    ip_addr = [[e.concat, e.addr] for e in elems["dnat_ip"].values()]
    ip_port = [[e.concat, e.port] for e in elems["dnat_ip"].values()]
    any_addr = [[e.concat, e.addr] for e in elems["dnat_any"].values()]
    any_port = [[e.concat, e.port] for e in elems["dnat_any"].values()]
    ip_key_type = ["ipv4_addr", "inet_proto", "inet_service"]
    any_key_type = ["inet_proto", "inet_service"]
    b.set("dnat_ip_addr", ip_key_type, ip_addr, map_to="ipv4_addr")
    b.set("dnat_ip_port", ip_key_type, ip_port, map_to="inet_service")
    b.set("dnat_any_addr", any_key_type, any_addr, map_to="ipv4_addr")
    b.set("dnat_any_port", any_key_type, any_port, map_to="inet_service")


def _published_dnat(b: _Batch, prefix: str, daddr: Any, family: str) -> None:
    """The ``published`` chain: one DNAT rule per key kind (address+port, any address),
    looked up in the ``<prefix>_ip``/``<prefix>_any`` maps, whatever the number of ports."""
    b.chain("published")
    for name, lookup_key in (
        (f"{prefix}_ip", [daddr, _L4PROTO, _DPORT]),
        (f"{prefix}_any", [_L4PROTO, _DPORT]),
    ):
        addr = {"map": {"key": {"concat": lookup_key}, "data": f"@{name}_addr"}}
        port = {"map": {"key": {"concat": lookup_key}, "data": f"@{name}_port"}}
        b.rule("published", {"dnat": {"family": family, "addr": addr, "port": port}})


def _nat_chains(b: _Batch, nets: Sequence[NetRule]) -> None:
    # published ports: one rule per key kind, whatever the number of ports
    _published_dnat(b, "dnat", _DADDR, "ip")
    b.chain("prerouting", "nat", "prerouting", -100)
    b.rule("prerouting", _fib_local(), {"jump": {"target": "published"}})
    b.chain("output", "nat", "output", -100)
    b.rule("output", _fib_local(), {"jump": {"target": "published"}})

    b.chain("postrouting", "nat", "postrouting", 100)
    for n in nets:
        if n.internal:
            continue
        subnet = _prefix(n.subnet)
        c = f"net {n.id[:12]}"
        if n.masquerade:
            b.rule("postrouting", _m(_SADDR, subnet), _m(_OIF, n.bridge, "!="), _MASQ, comment=c)
        hairpin = (_ct_dnat(), _m(_SADDR, subnet), _m(_OIF, n.bridge), _MASQ)
        b.rule("postrouting", *hairpin, comment=c + " hairpin")
    b.rule("postrouting", _m(_SADDR, _LOOPBACK), _m(_OIF, "@bridges"), _MASQ, comment="loopback")


def _filter_chains(b: _Batch, nets: Sequence[NetRule]) -> None:
    _forward_rules(b)

    b.chain("input", "filter", "input", 0)
    b.rule("input", _m(_IIF, "@bridges"), _ct_state_est(), _ACCEPT)
    b.rule("input", _m(_IIF, "@bridges"), _m(_DADDR, _LOOPBACK), _DROP)
    for n in nets:
        if n.internal:
            not_gw = _m(_DADDR, _ip(n.gateway), "!=")
            b.rule("input", _m(_IIF, n.bridge), not_gw, _DROP, comment=f"net {n.id[:12]} internal")


def _bridge_batch(nets: Sequence[NetRule]) -> _Batch:
    """The ``bridge tether`` table: icc=false, enforced at the bridge layer (see the
    ``tether.engine.firewall`` docstring)."""
    br = _Batch(BRIDGE_FAMILY, TABLE, _replace_prefix(BRIDGE_FAMILY, TABLE))
    noicc = [n for n in nets if not n.icc]
    if noicc:
        br.table_cmd()
        br.chain("forward", "filter", "forward", -200)
        for n in noicc:
            subnet = _prefix(n.subnet)
            within = (_m(_SADDR, subnet), _m(_DADDR, subnet), _DROP)
            br.rule("forward", *within, comment=f"net {n.id[:12]} icc=false")
            if n.subnet6:
                subnet6 = _prefix6(n.subnet6)
                within6 = (_m(_SADDR6, subnet6), _m(_DADDR6, subnet6), _DROP)
                br.rule("forward", *within6, comment=f"net {n.id[:12]} icc=false ipv6")
    return br


def _forward_rules(b: _Batch) -> None:
    """The forward chain: the same in both families (it judges interfaces only)."""
    b.chain("forward", "filter", "forward", 0)
    b.rule("forward", _ct_state_est(), _ACCEPT)
    b.rule("forward", _m({"concat": [_IIF, _OIF]}, "@icc"), _ACCEPT)
    b.rule("forward", _m(_IIF, "@internal"), _DROP)
    b.rule("forward", _m(_OIF, "@internal"), _DROP)
    b.rule("forward", _m(_OIF, "@bridges"), _ct_dnat(), _ACCEPT)
    b.rule("forward", _m(_OIF, "@bridges"), _DROP)
    b.rule("forward", _m(_IIF, "@bridges"), _ACCEPT)


def _ip6_batch(
    nets: Sequence[NetRule], elems: dict[str, dict[tuple[Any, ...], Elem]]
) -> list[JSON]:
    """The ``ip6 tether`` table, only while some network is dual-stack (issue 18): the IPv4
    table's isolation for IPv6 (sets of every tether bridge, the same forward chain), the
    internal networks' input rule (neighbour discovery allowed: without it a container
    could not resolve its gateway's MAC), and NAT66 masquerade for outbound traffic, as
    Docker's ``ip6tables`` mode does."""
    b = _Batch(FAMILY6, TABLE, _replace_prefix(FAMILY6, TABLE))
    b.table_cmd()
    _sets(b, nets)
    _port_maps6(b, elems)
    _published6(b)
    _forward_rules(b)
    b.chain("input", "filter", "input", 0)
    b.rule("input", _m(_IIF, "@bridges"), _ct_state_est(), _ACCEPT)
    nd = _m({"payload": {"protocol": "icmpv6", "field": "type"}}, _ND_TYPES)
    b.rule("input", _m(_IIF, "@bridges"), nd, _ACCEPT)
    b.rule("input", _m(_IIF, "@bridges"), _m(_DADDR6, "::1"), _DROP)
    for n in nets:
        if n.internal and n.subnet6:
            not_gw = _m(_DADDR6, _ip6(n.gateway6), "!=")
            b.rule("input", _m(_IIF, n.bridge), not_gw, _DROP, comment=f"net {n.id[:12]} internal")
    b.chain("postrouting", "nat", "postrouting", 100)
    for n in nets:
        if n.internal or not n.subnet6:
            continue
        subnet = _prefix6(n.subnet6)
        c = f"net {n.id[:12]}"
        if n.masquerade:
            b.rule("postrouting", _m(_SADDR6, subnet), _m(_OIF, n.bridge, "!="), _MASQ, comment=c)
        hairpin = (_ct_dnat(), _m(_SADDR6, subnet), _m(_OIF, n.bridge), _MASQ)
        b.rule("postrouting", *hairpin, comment=c + " hairpin")
    return b.cmds


def _port_maps6(b: _Batch, elems: dict[str, dict[tuple[Any, ...], Elem]]) -> None:
    """The IPv6 published ports' maps (as ``_port_maps``, IPv6 keys and data)."""
    for kind, key_type in (
        ("dnat6_ip", ["ipv6_addr", "inet_proto", "inet_service"]),
        ("dnat6_any", ["inet_proto", "inet_service"]),
    ):
        mine = elems.get(kind, {}).values()
        b.set(kind + "_addr", key_type, [[e.concat, e.addr] for e in mine], map_to="ipv6_addr")
        b.set(kind + "_port", key_type, [[e.concat, e.port] for e in mine], map_to="inet_service")


def _published6(b: _Batch) -> None:
    """DNAT to the IPv6 maps from ``prerouting`` and ``output`` (host-local clients)."""
    _published_dnat(b, "dnat6", _DADDR6, "ip6")
    b.chain("prerouting", "nat", "prerouting", -100)
    b.rule("prerouting", _fib_local(), {"jump": {"target": "published"}})
    # Not to ::1: IPv6 has no route_localnet, the kernel drops a reply to ::1 arriving on a
    # bridge (loopback destinations are looked up strictly by interface). Left alone, a
    # client of [::1]:PORT is refused at once instead of waiting for an answer that is lost.
    b.chain("output", "nat", "output", -100)
    not_lo = _m(_DADDR6, "::1", "!=")
    b.rule("output", not_lo, _fib_local(), {"jump": {"target": "published"}})


def render_port_update(gone: Sequence[Elem], new: Sequence[Elem]) -> JSON:
    """The small batch that deletes ``gone`` and adds ``new`` port elements (deletes first)."""
    cmds: list[JSON] = []
    for verb, elems in (("delete", gone), ("add", new)):
        for maps in MAP_KINDS:
            mine = [e for e in elems if e.maps == maps]
            if not mine:
                continue
            for suffix in ("_addr", "_port"):
                if verb == "delete":
                    items: list[Any] = [e.concat for e in mine]
                else:
                    items = [[e.concat, e.addr if suffix == "_addr" else e.port] for e in mine]
                family = mine[0].family
                obj = {"family": family, "table": TABLE, "name": maps + suffix, "elem": items}
                cmds.append({verb: {"element": obj}})
    return {"nftables": cmds}


def render_remove() -> JSON:
    """The batch deleting tether's own tables (present or not)."""
    return {
        "nftables": _replace_prefix(FAMILY, TABLE)
        + _replace_prefix(BRIDGE_FAMILY, TABLE)
        + _replace_prefix(FAMILY6, TABLE)
    }


def render_remove6() -> list[JSON]:
    """The commands deleting the ``ip6 tether`` table (present or not)."""
    return _replace_prefix(FAMILY6, TABLE)


def render_user_table() -> JSON:
    """The batch creating the user's ``tether-user`` table and chain."""
    return {
        "nftables": [
            {"add": {"table": {"family": FAMILY, "name": USER_TABLE}}},
            {
                "add": {
                    "chain": {
                        "family": FAMILY,
                        "table": USER_TABLE,
                        "name": USER_CHAIN,
                        "type": "filter",
                        "hook": "forward",
                        "prio": USER_PRIORITY,
                        "policy": "accept",
                    }
                }
            },
        ]
    }
