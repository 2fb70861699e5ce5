"""``tether path A B``: the hops a new flow from A to B takes, and the first one that drops it.

A and B are containers (name or id; on an overlay network B may run on another host), or
``host`` (the host itself), or an IPv4 address; B may carry ``:PORT[/PROTO]`` (a published
port when B is ``host`` or an address). Each hop names its kernel object (interface, veth,
bridge, VXLAN device, nftables rule) with its state as the kernel shows it now (read through
the topology's ``KernelView``); the nftables verdicts are computed from the rules tether
installed (``tether.engine.fwverdict``), not asked of the kernel. A hop whose object is
missing or down, or whose rule drops, ends the path: ``dropped_at`` is its index and
``reason`` says why.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from tether.contracts.model import Endpoint, Network
from tether.engine import fwverdict as fv
from tether.engine.fwrender import NetRule, PortRule
from tether.engine.record import Container
from tether.engine.topology import GATEWAY_VETH, KernelView, Topology
from tether.errors import BadRequest, NotFound

GATEWAY_NETWORK = "tether_gwbridge"  # engine/gateway.py: overlay endpoints' way out
UPLINK = "(host uplink)"


@dataclass
class Side:
    text: str
    kind: str  # "container" | "remote" | "host" | "address"
    container: Container | None = None
    remote: dict[str, Any] | None = None  # a cluster endpoint record (+ "network")
    ip: str = ""
    port: int = 0
    proto: str = "tcp"

    @property
    def label(self) -> str:
        if self.container is not None:
            return f"container {self.container.name}"
        if self.remote is not None:
            return f"container {self.remote.get('name', '')} on {self.remote.get('host', '')}"
        return "host" if self.kind == "host" else f"address {self.ip}"


@dataclass
class Trace:
    src: Side
    dst: Side
    view: KernelView
    hops: list[dict[str, Any]] = field(default_factory=list)
    network: str = ""
    reason: str = ""
    dropped_at: int | None = None

    def hop(self, kind: str, name: str, where: str, **extra: Any) -> bool:
        """Add a hop; False (and the path ends) when it drops."""
        h: dict[str, Any] = {"kind": kind, "name": name, "where": where, **extra}
        h.setdefault("state", "")
        self.hops.append(h)
        if self.dropped_at is None and (h.get("verdict") == "drop" or h.get("drop")):
            self.dropped_at = len(self.hops) - 1
            self.reason = h.get("reason") or f"{kind} {name}: {h['state']}"
            return False
        return self.dropped_at is None

    def link(self, kind: str, name: str, where: str, ns: str | None, check: bool = True) -> bool:
        """A hop through a kernel link, with its state (a missing or down link drops)."""
        if not check:
            return self.hop(kind, name, where, state="not checked (another host)")
        if not self.view.read(ns):
            why = self.view.errors.get(ns, "namespace not read")
            return self.hop(kind, name, where, state="unknown", detail=why)
        link = self.view.link(name, ns)
        if link is None:
            return self.hop(kind, name, where, state="missing", drop=True,
                            reason=f"{kind} {name} ({where}) is missing in the kernel")  # fmt: skip
        extra: dict[str, Any] = {"mac": link.mac} if link.mac else {}
        if link.master:
            extra["master"] = link.master
        if link.state == "down":
            extra.update(drop=True, reason=f"{kind} {name} ({where}) is down")
        return self.hop(kind, name, where, state=link.state, **extra)

    def nft(self, chain: str, v: fv.Verdict) -> bool:
        return self.hop("nft", v.rule or chain, "host", verdict=v.action, reason=v.reason)

    def json(self) -> dict[str, Any]:
        return {
            "from": self.src.text,
            "to": self.dst.text,
            "from_kind": self.src.label,
            "to_kind": self.dst.label,
            "network": self.network or None,
            "hops": [{"hop": i, **h} for i, h in enumerate(self.hops)],
            "ok": self.dropped_at is None,
            "dropped_at": self.dropped_at,
            "reason": self.reason,
        }


def split_port(text: str) -> tuple[str, int, str]:
    """``NAME|IP|host[:PORT[/PROTO]]`` -> (name, port or 0, proto)."""
    head, _, rest = text.partition(":")
    if not rest:
        return head, 0, "tcp"
    port, _, proto = rest.partition("/")
    if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
        raise BadRequest(f"invalid port in {text!r}: want PORT[/tcp|udp|sctp]")
    return head, int(port), proto or "tcp"


class PathTracer:
    def __init__(self, topo: Topology, fw_state: tuple[list[NetRule], list[PortRule]],
                 firewall_on: bool = True) -> None:  # fmt: skip
        self.topo = topo
        self.nets = fv.by_bridge(fw_state[0])
        self.ports = fw_state[1]
        self.firewall_on = firewall_on
        self.names = {n.id: n.name for n in topo.networks.list()}

    # ---- resolving the two ends ------------------------------------------------------
    def side(self, text: str) -> Side:
        name, port, proto = split_port(text.strip())
        if name in ("host", "localhost", ""):
            return Side(text, "host", ip="127.0.0.1", port=port, proto=proto)
        try:
            ip = str(ipaddress.IPv4Address(name))
        except ValueError:
            ip = ""
        if ip:
            c, remote = self._owner(ip)
            kind = "container" if c is not None else "remote" if remote else "address"
            return Side(text, kind, c, remote, ip, port, proto)
        c = self._container(name)
        if c is not None:
            return Side(text, "container", c, port=port, proto=proto)
        remote = self._remote_named(name)
        if remote is None:
            raise NotFound(f"No such container: {name}")
        return Side(text, "remote", None, remote, str(remote.get("ip", "")), port, proto)

    def _container(self, ref: str) -> Container | None:
        by_id = self.topo.containers.containers if self.topo.containers is not None else {}
        for c in by_id.values():
            if c.name == ref.lstrip("/") or c.id == ref:
                return c
        hits = [c for c in by_id.values() if c.id.startswith(ref)]
        return hits[0] if len(hits) == 1 else None

    def _remotes(self) -> list[dict[str, Any]]:
        cl = self.topo.cluster
        if cl is None:
            return []
        out = []
        for net in self.topo.networks.list():
            if net.scope == "global":
                out += [{**r, "network": net.id} for r in cl.remote_endpoints(net.id)]
        return out

    def _remote_named(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self._remotes() if r.get("name") == name), None)

    def _owner(self, ip: str) -> tuple[Container | None, dict[str, Any] | None]:
        for c in self.topo.all_containers():
            if any(ep.ip == ip for ep in c.eps()):
                return c, None
        return None, next((r for r in self._remotes() if r.get("ip") == ip), None)

    # ---- the trace -------------------------------------------------------------------
    async def trace(self, src_text: str, dst_text: str) -> dict[str, Any]:
        src, dst = self.side(src_text), self.side(dst_text)
        if src.kind == "remote":
            raise BadRequest(f"{src.text} runs on another host: trace from there")
        view = KernelView()
        await self.topo.read_ns(view, None)
        ends = [c for c in (src.container, dst.container) if c is not None]
        if dst.port and dst.kind in ("host", "address"):  # the published port's container
            ends += [c for c in self.topo.all_containers() if c.ports]
        for c in ends:
            ns = self.topo.sandbox(c)
            if ns is not None:
                await self.topo.read_ns(view, ns)
        for net in self.topo.networks.list():
            ns = self.topo.device_ns(net)
            if ns is not None:
                await self.topo.read_ns(view, ns)
            await self.topo.read_fdb(view, net)
        t = Trace(src, dst, view)
        if src.container is not None:
            self._from_container(t, src.container)
        else:
            self._from_host(t)
        return t.json()

    def _eps(self, c: Container) -> list[tuple[Endpoint, Network]]:
        out = []
        for ep in c.eps():
            net = self.topo.networks.networks.get(ep.network_id)
            if net is not None:
                out.append((ep, net))
        return out

    def _dst_eps(self, dst: Side) -> dict[str, tuple[Endpoint | None, dict[str, Any] | None]]:
        """Network id -> the destination's endpoint there (local) or record (remote)."""
        if dst.container is not None:
            return {ep.network_id: (ep, None) for ep in dst.container.eps()}
        if dst.remote is not None:
            return {str(dst.remote["network"]): (None, dst.remote)}
        return {}

    def _from_container(self, t: Trace, c: Container) -> None:
        if not self.topo.live(c):
            t.hop("interface", "eth0", f"container {c.name}", state=c.status, drop=True,
                  reason=f"container {c.name} is not running ({c.status})")  # fmt: skip
            return
        dst_eps = self._dst_eps(t.dst)
        for ep, net in self._eps(c):
            if net.id in dst_eps:
                t.network = net.name
                local, remote = dst_eps[net.id]
                self._src_leg(t, c, ep, net)
                if local is not None and t.dst.container is not None:
                    self._same_segment(t, net, local, t.dst.container)
                elif remote is not None:
                    self._overlay(t, net, remote)
                return
        if t.dst.kind == "address":
            for ep, net in self._eps(c):
                subnet = ipaddress.IPv4Network(f"{ep.ip}/{ep.prefixlen}", strict=False)
                if ep.ip and ipaddress.IPv4Address(t.dst.ip) in subnet:
                    t.network = net.name
                    self._src_leg(t, c, ep, net)
                    why = f"no container has {t.dst.ip} on {net.name}"
                    t.hop("address", t.dst.ip, f"network {net.name}", state="no endpoint",
                          drop=True, reason=why)  # fmt: skip
                    return
        self._routed(t, c)

    def _src_leg(self, t: Trace, c: Container, ep: Endpoint, net: Network) -> bool:
        """eth<n> -> its veth peer -> the network's bridge (or a macvlan parent)."""
        where = f"container {c.name}"
        ns = self.topo.sandbox(c)
        if not t.link("interface", ep.ifname, where, ns):
            return False
        dev_ns = self.topo.device_ns(net)
        dev_where = "host" if dev_ns is None else f"namespace {dev_ns}"
        if ep.host_ifname and not t.link("veth", ep.host_ifname, dev_where, dev_ns):
            return False
        kind = "bridge" if net.driver in ("bridge", "overlay") else f"{net.driver} parent"
        return t.link(kind, self.topo.bridge(net) or net.ifname, dev_where, dev_ns)

    def _dst_leg(self, t: Trace, net: Network, ep: Endpoint, c: Container) -> bool:
        """The same, backwards: veth peer -> eth<n> of the destination."""
        dev_ns = self.topo.device_ns(net)
        dev_where = "host" if dev_ns is None else f"namespace {dev_ns}"
        if ep.host_ifname and not t.link("veth", ep.host_ifname, dev_where, dev_ns):
            return False
        if not self.topo.live(c):
            return t.hop("interface", ep.ifname, f"container {c.name}", state=c.status,
                         drop=True, reason=f"container {c.name} is not running")  # fmt: skip
        return t.link("interface", ep.ifname, f"container {c.name}", self.topo.sandbox(c))

    def _same_segment(self, t: Trace, net: Network, ep: Endpoint, c: Container) -> None:
        if t.dropped_at is not None:
            return
        if net.driver == "bridge" and self.firewall_on:
            v = fv.bridged(net.ifname, self.nets, self.names)
            if v.rule and not t.nft("bridge forward", v):
                return
            if not v.rule:
                t.hops[-1]["detail"] = v.reason
        self._dst_leg(t, net, ep, c)

    def _overlay(self, t: Trace, net: Network, rec: dict[str, Any]) -> None:
        if t.dropped_at is not None:
            return
        dev_ns = self.topo.device_ns(net)
        vx = next((n for n, role, _ in self.topo.devices(net) if role == "vxlan"), "")
        where = "host" if dev_ns is None else f"namespace {dev_ns}"
        if not t.link("vxlan", vx, where, dev_ns):
            return
        mac, vtep = str(rec.get("mac", "")).lower(), str(rec.get("vtep", ""))
        have = t.view.fdb.get(vx, {}).get(mac)
        fdb = f"fdb {mac} dst {vtep}"
        if vx not in t.view.fdb:
            t.hop("fdb", fdb, vx, state="unknown", detail="the device's entries were not read")
        elif have is None:
            t.hop("fdb", fdb, vx, state="missing", drop=True,
                  reason=f"no FDB entry on {vx} sends {mac} to VTEP {vtep}")  # fmt: skip
            return
        else:
            t.hop("fdb", fdb, vx, state="present" if have == vtep else f"points at {have}")
        host = str(rec.get("host", vtep))
        t.hop("underlay", f"udp/4789 -> {vtep}", "host", state="routed", vtep=vtep)
        other = f"host {host}"
        t.link("vxlan", vx, other, None, check=False)
        t.link("bridge", self.topo.bridge(net), other, None, check=False)
        t.link("interface", "eth?", f"container {rec.get('name', '')} on {host}", None, False)

    # ---- routed: through the host's IP stack ------------------------------------------
    def _way_out(self, c: Container) -> tuple[Endpoint, Network, str, str] | None:
        """The endpoint carrying the default route: (ep, net, its bridge, veth) or None."""
        for ep, net in self._eps(c):
            if net.driver == "overlay" and not net.internal:
                gw = self.topo.networks.find(GATEWAY_NETWORK)
                if gw is not None:
                    return ep, gw, gw.ifname, GATEWAY_VETH + ep.id[:13]
            if ep.gateway and net.driver == "bridge":
                return ep, net, net.ifname, ep.host_ifname
        internal = [(ep, n) for ep, n in self._eps(c) if n.driver == "bridge"]
        if internal:
            ep, net = internal[0]
            return ep, net, net.ifname, ep.host_ifname
        return None

    def _routed(self, t: Trace, c: Container) -> None:
        out = self._way_out(c)
        if out is None:
            why = f"container {c.name} has no route to {t.dst.ip or t.dst.text}"
            t.hop("route", "default", f"container {c.name}", state="none", drop=True,
                  reason=why)  # fmt: skip
            return
        ep, net, bridge, veth = out
        t.network = net.name
        where = f"container {c.name}"
        gw_if = ep.ifname if net.id == ep.network_id else "eth" + str(int(ep.ifname[3:] or 0) + 1)
        if not (t.link("interface", gw_if, where, self.topo.sandbox(c))
                and t.link("veth", veth, "host", None)
                and t.link("bridge", bridge, "host", None)):  # fmt: skip
            return
        if t.dst.kind == "host":
            t.hop("route", "local", "host", state="delivered", detail="an address of the host")
            if self.firewall_on:
                gw = self.nets[bridge].gateway if bridge in self.nets else t.dst.ip
                t.nft("input", fv.input_(bridge, gw if t.dst.ip == "127.0.0.1" else t.dst.ip,
                                         self.nets))  # fmt: skip
            return
        t.hop("route", "ip_forward", "host", state="routed", detail="the host's routing table")
        dst_eps = self._dst_eps(t.dst)
        oif, target = UPLINK, None
        for dep, dnet in ((e, self.topo.networks.networks.get(nid)) for nid, (e, _) in
                          dst_eps.items()):  # fmt: skip
            if dep is not None and dnet is not None and dnet.driver == "bridge":
                oif, target = dnet.ifname, (dnet, dep)
                break
        if self.firewall_on:
            if not t.nft("forward", fv.forward(bridge, oif, self.nets, False, self.names)):
                return
            m = fv.masquerade(bridge, oif, self.nets)
            if m.rule:
                t.nft("postrouting", m)
        if target is None:
            t.hop("underlay", UPLINK, "host", state="routed", detail=f"to {t.dst.ip}")
            return
        dnet, dep = target
        if t.link("bridge", dnet.ifname, "host", None) and t.dst.container is not None:
            self._dst_leg(t, dnet, dep, t.dst.container)

    def _from_host(self, t: Trace) -> None:
        where = "host" if t.src.kind == "host" else f"address {t.src.ip}"
        t.hop("origin", t.src.ip if t.src.kind != "host" else "host", where, state="")
        chain = "output" if t.src.kind == "host" else "prerouting"
        dst = t.dst
        target: tuple[Network, Endpoint, Container] | None = None
        if dst.kind in ("host", "address") and dst.port:
            d = fv.published(dst.ip, dst.proto, dst.port, self.ports, self.nets, chain)
            if d is None:
                t.hop("nft", f"ip tether {chain}", "host", verdict="none", drop=True,
                      reason=f"no published port {dst.port}/{dst.proto} on {dst.ip}")  # fmt: skip
                return
            t.nft(chain, d.verdict)
            found = self._owner(d.addr)[0]
            net = next((n for n in self.topo.networks.list() if n.ifname == d.bridge), None)
            if found is None or net is None:
                t.hop("address", d.addr, "host", state="no endpoint", drop=True,
                      reason=f"no running container has {d.addr}")  # fmt: skip
                return
            ep = next(e for e in found.eps() if e.network_id == net.id)
            target = (net, ep, found)
        elif dst.container is not None:
            ep_net = next(((e, n) for e, n in self._eps(dst.container) if n.driver == "bridge"),
                          None)  # fmt: skip
            if ep_net is None:
                t.hop("route", dst.text, "host", state="none", drop=True,
                      reason=f"the host has no route to {dst.container.name}")  # fmt: skip
                return
            target = (ep_net[1], ep_net[0], dst.container)
        else:
            t.hop("route", dst.ip, "host", state="not a container",
                  detail="the address is not a local container's")  # fmt: skip
            return
        net, ep, c = target
        t.network = net.name
        dnat = dst.port > 0
        if chain == "prerouting" and self.firewall_on:
            if not t.nft("forward", fv.forward(UPLINK, net.ifname, self.nets, dnat, self.names)):
                return
        elif t.src.kind == "host" and dnat and self.firewall_on:
            t.hop("nft", "ip tether postrouting: ip saddr 127.0.0.0/8 oifname @bridges "
                  "masquerade", "host", verdict="masquerade",
                  reason="when the client used 127.0.0.1")  # fmt: skip
        if t.link("bridge", net.ifname, "host", None):
            self._dst_leg(t, net, ep, c)
