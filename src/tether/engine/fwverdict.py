"""The verdict of tether's nftables rules for one new flow, computed from what tether installed.

``tether path`` asks "would this packet pass?" without asking the kernel: the rules are the
ones ``tether.engine.fwrender`` renders from the networks (``NetRule``) and published ports
(``PortRule``) that ``FirewallSync.state`` hands to the firewall, so the same inputs give the
verdict here, chain by chain and in the rules' order. Each verdict names the rule that
decided it as ``nft list ruleset`` shows it. Not modelled: the user's own ``tether-user``
chain (a drop there is final) and conntrack (every flow here is new).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from tether.engine.fwrender import FAMILY, TABLE, NetRule, PortRule

FORWARD = f"{FAMILY} {TABLE} forward"
INPUT = f"{FAMILY} {TABLE} input"
POSTROUTING = f"{FAMILY} {TABLE} postrouting"


@dataclass(frozen=True)
class Verdict:
    action: str  # "accept" | "drop" | "dnat" | "masquerade" | "none"
    rule: str  # the rule that decided, as nft lists it ("" when none matched)
    reason: str = ""

    @property
    def dropped(self) -> bool:
        return self.action == "drop"


def by_bridge(nets: Sequence[NetRule]) -> dict[str, NetRule]:
    return {n.bridge: n for n in nets}


def _label(nets: dict[str, NetRule], bridge: str, names: dict[str, str]) -> str:
    n = nets.get(bridge)
    return names.get(n.id, bridge) if n is not None else bridge


def forward(
    iif: str, oif: str, nets: dict[str, NetRule], dnat: bool, names: dict[str, str] | None = None
) -> Verdict:
    """The ``forward`` chain for a new routed flow from ``iif`` to ``oif`` (names: net id ->
    network name, for the reasons)."""
    names = names or {}
    src, dst = nets.get(iif), nets.get(oif)
    if src is not None and iif == oif and src.icc:
        return Verdict("accept", f"{FORWARD}: iifname . oifname @icc accept")
    if src is not None and src.internal:
        why = f"network {_label(nets, iif, names)} is internal: nothing leaves it"
        return Verdict("drop", f"{FORWARD}: iifname @internal drop", why)
    if dst is not None and dst.internal:
        why = f"network {_label(nets, oif, names)} is internal: nothing enters it"
        return Verdict("drop", f"{FORWARD}: oifname @internal drop", why)
    if dst is not None and dnat:
        return Verdict("accept", f"{FORWARD}: oifname @bridges ct status dnat accept")
    if dst is not None:
        why = (
            f"isolation: {_label(nets, oif, names)} ({oif}) takes only published ports "
            f"(DNAT) from other networks and the outside"
        )
        return Verdict("drop", f"{FORWARD}: oifname @bridges drop", why)
    if src is not None:
        return Verdict("accept", f"{FORWARD}: iifname @bridges accept")
    return Verdict("accept", f"{FORWARD}: policy accept")


def bridged(bridge: str, nets: dict[str, NetRule], names: dict[str, str] | None = None) -> Verdict:
    """Two ports of one bridge: only ``bridge tether`` (icc=false) judges the frame."""
    n = nets.get(bridge)
    if n is None or n.icc:
        return Verdict("accept", "", "bridged on layer 2: no ip hook on the way (icc on)")
    label = (names or {}).get(n.id, bridge)
    rule = f"bridge {TABLE} forward: ip saddr {n.subnet} ip daddr {n.subnet} drop"
    return Verdict("drop", rule, f"network {label} has icc=false: containers may not talk")


def input_(iif: str, daddr: str, nets: dict[str, NetRule]) -> Verdict:
    """A container's packet to the host itself (``input`` chain)."""
    n = nets.get(iif)
    if n is None:
        return Verdict("accept", f"{INPUT}: policy accept")
    if ipaddress.IPv4Address(daddr).is_loopback:
        why = "route_localnet guard: a container may not reach the host's 127.0.0.0/8"
        return Verdict("drop", f"{INPUT}: iifname @bridges ip daddr 127.0.0.0/8 drop", why)
    if n.internal and daddr != n.gateway:
        rule = f'{INPUT}: iifname "{iif}" ip daddr != {n.gateway} drop'
        return Verdict("drop", rule, f"internal network: only its gateway {n.gateway} answers")
    return Verdict("accept", f"{INPUT}: policy accept")


def masquerade(iif: str, oif: str, nets: dict[str, NetRule], dnat: bool = False) -> Verdict:
    """``postrouting`` for a flow from a bridge's subnet leaving through ``oif``."""
    n = nets.get(iif)
    if n is None or n.internal:
        return Verdict("none", "")
    if oif != iif and n.masquerade:
        rule = f"{POSTROUTING}: ip saddr {n.subnet} oifname != {iif} masquerade"
        return Verdict("masquerade", rule)
    if oif == iif and dnat:
        rule = f"{POSTROUTING}: ct status dnat ip saddr {n.subnet} oifname {iif} masquerade"
        return Verdict("masquerade", rule, "hairpin")
    return Verdict("none", "", "masquerade is off: the source address is kept")


@dataclass(frozen=True)
class Dnat:
    verdict: Verdict
    addr: str
    port: int
    bridge: str


def published(
    host_ip: str, proto: str, port: int, ports: Sequence[PortRule], nets: dict[str, NetRule],
    chain: str = "prerouting",
) -> Dnat | None:  # fmt: skip
    """The DNAT a packet to a host address ``host_ip:port/proto`` gets (``published`` chain:
    ``dnat_ip`` maps first, then ``dnat_any``), or None (no published port matches)."""
    any_hits: list[tuple[PortRule, NetRule]] = []
    for p in ports:
        n = nets.get(p.bridge)
        if n is None or n.internal or p.proto != proto or p.host_port != port:
            continue
        bound = p.host_ip if p.host_ip not in ("", "0.0.0.0") else n.host_binding_ipv4
        if bound not in ("", "0.0.0.0"):
            if bound == host_ip:
                return _dnat(chain, "dnat_ip", p)
            continue
        any_hits.append((p, n))
    if any_hits:
        return _dnat(chain, "dnat_any", any_hits[0][0])
    return None


def _dnat(chain: str, maps: str, p: PortRule) -> Dnat:
    rule = (
        f"{FAMILY} {TABLE} {chain}: fib daddr type local jump published; "
        f"published: dnat to {maps}_addr/{maps}_port -> {p.container_ip}:{p.container_port}"
    )
    return Dnat(Verdict("dnat", rule), p.container_ip, p.container_port, p.bridge)
