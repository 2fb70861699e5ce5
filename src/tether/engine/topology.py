"""The topology model: every object tether made, from the store, checked against the kernel.

``Topology.build`` answers ``GET /tether/topology`` (docs/operations.md): the host(s), the
networks with their subnets and kernel devices (bridge, VXLAN device, macvlan parent), the
endpoints (both sides of each veth, MAC, IPv4), the containers (published ports, DNS names,
aliases, links) and, on overlay networks, the remote peers with the FDB entries that point at
their VTEPs.

The store's side is the engine's state (the network controller, the container table, the
cluster view's endpoint book); the kernel's side is read through the ``Netlink`` protocol
(``link_table`` per namespace: the daemon's, each running sandbox's, each overlay
network's; and ``vxlan_entries``). An object found on one side only, or different on the
two, carries a ``drift`` text and is listed in the top-level ``drift`` array. Kernel-only
objects are found by tether's own device name patterns (``tbr-``/``tov-``/``tvx-``/``tmv-``/
``tms-`` + 11 hex, ``tv``/``to``/``tg`` + 13 hex); reconcile still never deletes by pattern:
this only reports.

The kernel check reads one namespace per running container (~1 ms each); ``kernel=False``
skips it (``GET /tether/topology?kernel=0``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tether.contracts.cluster import Peer
from tether.contracts.model import Endpoint, Network
from tether.engine.networks import NetworkController
from tether.engine.record import Container, network_mode
from tether.errors import TetherError
from tether.linux.netlink import LinkInfo

TETHER_LINK = re.compile(r"^(t(br|ov|vx|mv|ms)-[0-9a-f]{11}|t[vog][0-9a-f]{13})$")
GATEWAY_VETH = "tg"  # engine/gateway.py: an overlay endpoint's gateway veth, "tg" + 13 hex
MISSING = "missing in the kernel"
KERNEL_ONLY = "in the kernel only (no record names it)"


class KernelReader(Protocol):
    """What the topology reads of the kernel (``tether.linux.netlink.Netlink``)."""

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]: ...

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]: ...


class Sandboxes(Protocol):
    """The container side (``tether.engine.containers.ContainerController``)."""

    @property
    def containers(self) -> Mapping[str, Container]: ...
    def sandbox_ns(self, c: Container) -> str | None: ...
    def has_sandbox(self, c: Container) -> bool: ...


@runtime_checkable
class ClusterPeers(Protocol):
    """The cluster view as the topology reads it (``tether.engine.cluster.ClusterView``)."""

    @property
    def host(self) -> str: ...

    hosts: dict[str, dict[str, Any]]

    def peers(self, net_id: str) -> list[Peer]: ...
    def remote_endpoints(self, net_id: str) -> list[dict[str, Any]]: ...


@dataclass
class KernelView:
    """What the kernel holds: links per namespace (None: the daemon's), VXLAN entries."""

    spaces: dict[str | None, dict[str, LinkInfo]] = field(default_factory=dict)
    fdb: dict[str, dict[str, str]] = field(default_factory=dict)  # vxlan -> mac -> vtep
    errors: dict[str | None, str] = field(default_factory=dict)  # namespace -> why unread

    def link(self, name: str, ns: str | None = None) -> LinkInfo | None:
        return self.spaces.get(ns, {}).get(name)

    def read(self, ns: str | None) -> bool:
        return ns in self.spaces


def link_json(link: LinkInfo | None) -> dict[str, Any] | None:
    if link is None:
        return None
    out: dict[str, Any] = {"kind": link.kind, "state": link.state, "mac": link.mac}
    out.update({"mtu": link.mtu, "master": link.master, "addresses": list(link.addresses)})
    if link.kind == "vxlan":
        out.update({"vni": link.vni, "local": link.local})
    if link.parent and not link.parent.startswith("#"):
        out["parent"] = link.parent
    return out


def subnets(net: Network) -> list[dict[str, str]]:
    return [
        {k: str(c[k]) for k in ("Subnet", "Gateway", "IPRange") if c.get(k)} for c in net.configs
    ]


def dns_names(c: Container, ep: Endpoint, net: Network) -> list[str]:
    """The names the embedded DNS answers for ``c`` on ``net`` (none on predefined ones)."""
    if net.predefined:
        return []
    return list(dict.fromkeys([c.name, *ep.aliases, c.id[:12]]))


def remote_endpoint(rec: dict[str, Any], net: Network) -> dict[str, Any]:
    """An endpoint record of another host (``cluster/endpoints/...``) in the model's shape."""
    ip, ip6 = rec.get("ip"), rec.get("ip6")
    return {
        "id": f"{str(rec.get('container', ''))[:12]}/{net.id[:12]}",
        "network": net.name,
        "container": str(rec.get("name", "")),
        "host": str(rec.get("host", "")),
        "remote": True,
        "vtep": str(rec.get("vtep", "")),
        "mac": str(rec.get("mac", "")),
        "ipv4": f"{ip}/{rec.get('prefixlen')}" if ip else "",
        "ipv6": f"{ip6}/{rec.get('prefixlen6')}" if ip6 else "",
    }


class Topology:
    def __init__(
        self,
        networks: NetworkController,
        containers: Sandboxes | None,
        kernel: KernelReader | None,
        cluster: object | None = None,
    ) -> None:
        self.networks = networks
        self.containers = containers
        self.kernel = kernel
        self.cluster = cluster if isinstance(cluster, ClusterPeers) else None

    # ---- the store's side ------------------------------------------------------------
    def all_containers(self) -> list[Container]:
        if self.containers is None:
            return []
        return sorted(self.containers.containers.values(), key=lambda c: c.name)

    def live(self, c: Container) -> bool:
        return self.containers is not None and self.containers.has_sandbox(c)

    def sandbox(self, c: Container) -> str | None:
        kind, _ = network_mode(c.host_config)
        if self.containers is None or kind != "network" or not self.live(c):
            return None
        try:
            return self.containers.sandbox_ns(c)
        except TetherError:
            return None

    def device_ns(self, net: Network) -> str | None:
        """Where the network's devices live: an overlay network's own namespace, or None."""
        drv = self.networks.drivers.get(net.driver)
        where = getattr(drv, "namespace_of", None)
        return where(net.id) if callable(where) else None

    def devices(self, net: Network) -> list[tuple[str, str, bool]]:
        """``(name, role, expected)`` of the network's kernel devices on this host."""
        drv = self.networks.drivers.get(net.driver)
        if drv is None or drv.sandbox_mode:
            return []
        wired = getattr(drv, "wired", None)
        expected = bool(wired(net.id)) if callable(wired) else True
        named = getattr(drv, "device_names", None)
        if callable(named):  # the overlay driver: its bridge and VXLAN device
            return [(name, role, expected) for role, name in named(net).items()]
        if not net.ifname:
            return []
        roles = {"bridge": "bridge"}
        out = [(net.ifname, roles.get(net.driver, "parent"), expected)]
        for name in sorted(drv.owned_links(net) - {net.ifname}):
            role = (
                "vxlan"
                if net.driver == "overlay"
                else "shim"
                if name.startswith("tms-")
                else "vlan"
            )
            out.append((name, role, expected))
        return out

    def bridge(self, net: Network) -> str:
        """The network's bridge (or macvlan parent) device name on this host."""
        return next((n for n, role, _ in self.devices(net) if role in ("bridge", "parent")), "")

    def peers(self, net: Network) -> list[Peer]:
        if self.cluster is None or net.scope != "global":
            return []
        return self.cluster.peers(net.id)

    # ---- the kernel's side -------------------------------------------------------------
    async def read_kernel(self) -> KernelView:
        view = KernelView()
        if self.kernel is None:
            return view
        await self.read_ns(view, None)
        for net in self.networks.list():
            ns = self.device_ns(net)
            if ns is not None:
                await self.read_ns(view, ns)
            await self.read_fdb(view, net)
        for c in self.all_containers():
            ns = self.sandbox(c)
            if ns is not None:
                await self.read_ns(view, ns)
        return view

    async def read_fdb(self, view: KernelView, net: Network) -> None:
        """The remote entries of the network's VXLAN device (when it is wired here)."""
        if self.kernel is None:
            return
        for name, role, expected in self.devices(net):
            if role == "vxlan" and expected and name not in view.fdb:
                try:
                    fdb, _neigh = await self.kernel.vxlan_entries(name, self.device_ns(net))
                except TetherError:
                    continue
                view.fdb[name] = {m.lower(): v for m, v in fdb.items()}

    async def read_ns(self, view: KernelView, ns: str | None) -> None:
        if ns in view.spaces or ns in view.errors or self.kernel is None:
            return
        try:
            view.spaces[ns] = {link.name: link for link in await self.kernel.link_table(ns)}
        except TetherError as exc:
            view.errors[ns] = exc.message
        except OSError as exc:
            view.errors[ns] = str(exc)

    # ---- the model ---------------------------------------------------------------------
    async def build(self, kernel: bool = True) -> dict[str, Any]:
        view = await self.read_kernel() if kernel else None
        drift: list[dict[str, str]] = []
        nets = [self._network(n, view, drift) for n in self.networks.list()]
        endpoints: list[dict[str, Any]] = []
        containers = [self._container(c, view, endpoints, drift) for c in self.all_containers()]
        containers.extend(self._remote(endpoints))
        if view is not None:
            drift.extend(self._kernel_only(view))
            for ns, why in sorted(view.errors.items(), key=lambda kv: str(kv[0])):
                drift.append({"kind": "namespace", "name": ns or "host", "drift": why})
        return {
            "hosts": self._hosts(),
            "networks": sorted(nets, key=lambda n: n["name"]),
            "endpoints": endpoints,
            "containers": containers,
            "kernel_checked": view is not None,
            "drift": drift,
        }

    def _remote(self, endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The other hosts' containers on global networks, from the cluster view's endpoint
        records (each marked ``remote`` with its ``host``, the host's address). A remote host's
        local networks are not in the cluster store, so neither are their containers."""
        if self.cluster is None:
            return []
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for net in self.networks.list():
            if net.scope != "global":
                continue
            for rec in self.cluster.remote_endpoints(net.id):
                host, name = str(rec.get("host", "")), str(rec.get("name", ""))
                c = out.setdefault((host, name), {
                    "id": str(rec.get("container", "")), "name": name, "state": "running",
                    "host": host, "remote": True, "networks": [], "ports": [],
                    "dns_names": {}, "links": [],
                })  # fmt: skip
                c["networks"].append(net.name)
                c["dns_names"][net.name] = [name, *rec.get("aliases", [])]
                endpoints.append(remote_endpoint(rec, net))
        return [out[k] for k in sorted(out)]

    def _hosts(self) -> list[dict[str, Any]]:
        me = {"name": socket.gethostname(), "address": "", "self": True}
        if self.cluster is None:
            return [me]
        me["address"] = self.cluster.host
        others = [
            {"name": str(rec.get("name") or addr), "address": addr, "self": False}
            for addr, rec in sorted(self.cluster.hosts.items())
            if addr != self.cluster.host and isinstance(rec, dict)
        ]
        return [me, *others]

    def _network(
        self, net: Network, view: KernelView | None, drift: list[dict[str, str]]
    ) -> dict[str, Any]:
        ns = self.device_ns(net)
        devices = []
        for name, role, expected in self.devices(net):
            dev: dict[str, Any] = {"name": name, "role": role, "namespace": ns}
            if view is not None:
                link = view.link(name, ns)
                dev["kernel"] = link_json(link)
                if link is None and expected and view.read(ns):
                    dev["drift"] = MISSING
                    drift.append({"kind": "device", "name": name, "drift": MISSING})
                elif link is not None and not expected:
                    dev["drift"] = "present, but no local container uses the network"
            devices.append(dev)
        out: dict[str, Any] = {
            "id": net.id,
            "name": net.name,
            "driver": net.driver,
            "scope": net.scope,
            "internal": net.internal,
            "subnets": subnets(net),
            "devices": devices,
        }
        if net.driver == "overlay":
            out["vni"] = net.vni
            out["peers"] = self._peers(net, view, drift)
        return out

    def _peers(
        self, net: Network, view: KernelView | None, drift: list[dict[str, str]]
    ) -> list[dict[str, Any]]:
        vxlan = next((n for n, role, _ in self.devices(net) if role == "vxlan"), "")
        remote = {}
        if self.cluster is not None:
            remote = {
                str(r.get("mac", "")).lower(): r for r in self.cluster.remote_endpoints(net.id)
            }
        fdb = view.fdb.get(vxlan) if view is not None else None
        out = []
        for p in self.peers(net):
            rec = remote.get(p.mac.lower(), {})
            entry: dict[str, Any] = {
                "endpoint": p.endpoint_id,
                "container": rec.get("name", ""),
                "ip": p.ip,
                "mac": p.mac,
                "vtep": p.vtep,
            }
            if fdb is not None:
                have = fdb.get(p.mac.lower())
                entry["fdb"] = have
                if have != p.vtep:
                    why = MISSING if have is None else f"FDB points at {have}, not {p.vtep}"
                    entry["drift"] = f"FDB entry {why}"
                    drift.append({"kind": "fdb", "name": f"{vxlan} {p.mac}", "drift": why})
            out.append(entry)
        if fdb is not None:
            known = {p.mac.lower() for p in self.peers(net)}
            for mac, dst in sorted(fdb.items()):
                if mac not in known:
                    why = f"FDB entry to {dst} {KERNEL_ONLY}"
                    drift.append({"kind": "fdb", "name": f"{vxlan} {mac}", "drift": why})
        return out

    def _container(
        self,
        c: Container,
        view: KernelView | None,
        endpoints: list[dict[str, Any]],
        drift: list[dict[str, str]],
    ) -> dict[str, Any]:
        names = {cid: c2.name for cid, c2 in self._by_id().items()}
        ns = self.sandbox(c)
        nets: list[str] = []
        dns: dict[str, list[str]] = {}
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is None:
                continue
            nets.append(net.name)
            dns[net.name] = dns_names(c, ep, net)
            endpoints.append(self._endpoint(c, ep, net, ns, view, drift))
        return {
            "id": c.id,
            "name": c.name,
            "state": c.status,
            "image": c.image,
            "network_mode": c.network_mode,
            "sandbox": ns,
            "host": self.cluster.host if self.cluster is not None else "",
            "remote": False,
            "networks": nets,
            "ports": [dict(p) for p in c.ports],
            "dns_names": dns,
            "links": [{"target": names.get(t, t), "alias": a} for t, a in c.links],
        }

    def _by_id(self) -> Mapping[str, Container]:
        return self.containers.containers if self.containers is not None else {}

    def _endpoint(
        self,
        c: Container,
        ep: Endpoint,
        net: Network,
        ns: str | None,
        view: KernelView | None,
        drift: list[dict[str, str]],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": ep.id,
            "network": net.name,
            "container": c.name,
            "ifname": ep.ifname,
            "host_ifname": ep.host_ifname,
            "mac": ep.mac,
            "ipv4": f"{ep.ip}/{ep.prefixlen}" if ep.ip else "",
            "gateway": ep.gateway,
            "ipv6": f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else "",
            "gateway6": ep.gateway6,
            "aliases": list(ep.aliases),
            "live": self.live(c),
        }
        if view is None or not self.live(c):
            return out
        problems = []
        inner = view.link(ep.ifname, ns) if ns is not None else None
        out["kernel"] = {"container_side": link_json(inner)}
        if ns is not None and view.read(ns):
            if inner is None:
                problems.append(f"{ep.ifname} {MISSING}")
            elif ep.mac and inner.mac and inner.mac.lower() != ep.mac.lower():
                problems.append(f"{ep.ifname} has MAC {inner.mac}, the store says {ep.mac}")
        if ep.host_ifname:
            dev_ns = self.device_ns(net)
            outer = view.link(ep.host_ifname, dev_ns)
            out["kernel"]["host_side"] = link_json(outer)
            if view.read(dev_ns) and outer is None:
                problems.append(f"{ep.host_ifname} {MISSING}")
            elif outer is not None and self.bridge(net) and outer.master != self.bridge(net):
                problems.append(f"{ep.host_ifname} is not a port of {self.bridge(net)}")
        if problems:
            out["drift"] = "; ".join(problems)
            drift.append(
                {"kind": "endpoint", "name": f"{c.name}/{net.name}", "drift": out["drift"]}
            )
        return out

    def _expected_links(self) -> dict[str | None, set[str]]:
        want: dict[str | None, set[str]] = {}
        for net in self.networks.list():
            ns = self.device_ns(net)
            want.setdefault(ns, set()).update(n for n, _, _ in self.devices(net))
        for c in self.all_containers():
            if not self.live(c):
                continue
            for ep in c.eps():
                on = self.networks.networks.get(ep.network_id)
                if on is None or not ep.host_ifname:
                    continue
                want.setdefault(self.device_ns(on), set()).add(ep.host_ifname)
                if on.driver == "overlay" and not on.internal:
                    want.setdefault(None, set()).add(GATEWAY_VETH + ep.id[:13])
        return want

    def _kernel_only(self, view: KernelView) -> list[dict[str, str]]:
        want = self._expected_links()
        sandboxes = {self.sandbox(c) for c in self.all_containers()} - {None}
        out = []
        for ns, links in view.spaces.items():
            if ns in sandboxes:
                continue
            for name in sorted(links):
                if TETHER_LINK.match(name) and name not in want.get(ns, set()):
                    where = "host" if ns is None else ns
                    out.append({"kind": "link", "name": f"{where}:{name}", "drift": KERNEL_ONLY})
        return out
