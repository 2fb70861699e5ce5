"""In-memory fakes of the Linux adapters, for unit tests (no root, no kernel).

``FakeNetlink`` implements ``tether.linux.netlink.Netlink``: it keeps the host
namespace's links (with their master and kind), each vxlan device's FDB and
each device's neighbour table in dicts, and records every call in ``calls``,
so a test can check both the resulting state and the order of work. It follows
the real backend's rules where drivers rely on them: deleting a missing link is
fine, FDB/neighbour writes on a missing device are ignored (the device went
away with its entries), deleting a link drops its entries, and ``add_veth``
onto a missing bridge fails with ``Internal`` as the kernel call would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.errors import Internal
from tether.linux.netlink import LinkInfo, LinkSpec, VxlanEntry


@dataclass
class FakeLink:
    name: str
    kind: str
    master: str | None = None
    mtu: int = 1500
    address: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class FakeNetlink:
    """Records links, FDB and neighbour entries in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.links: dict[str, FakeLink] = {}
        self.fdb: dict[str, dict[str, str]] = {}  # vxlan -> mac -> remote VTEP
        self.neigh: dict[str, dict[str, str]] = {}  # device -> ip -> mac
        self.sandboxes: dict[str, dict[str, LinkSpec]] = {}  # ns path -> ifname -> spec
        self.routes: list[ipaddress.IPv4Network] = []
        self.default_routes: dict[str, tuple[str, str]] = {}  # set by default_route only
        self.default_routes6: dict[str, tuple[str, str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, BaseException] = {}  # method name -> error to raise once

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        err = self.fail.pop(name, None)
        if err is not None:
            raise err

    async def ensure_bridge(
        self,
        name: str,
        address: str | None,
        mtu: int,
        ns_path: str | None = None,
        address6: str | None = None,
    ) -> None:
        self._call("ensure_bridge", name, address, mtu)
        link = self.links.setdefault(name, FakeLink(name, "bridge", mtu=mtu))
        link.address = address or link.address
        if address6:
            link.info["address6"] = address6
        if ns_path is not None:
            link.info["ns"] = ns_path

    async def delete_link(self, name: str, ns_path: str | None = None) -> None:
        self._call("delete_link", name, ns_path)
        # (devices in another namespace than the host's or a sandbox's, e.g. an overlay
        # network's, live in ``links`` with info["ns"]: names are unique in a test)
        if ns_path is not None and not (
            name in self.links and self.links[name].info.get("ns") == ns_path
        ):
            self.sandboxes.get(ns_path, {}).pop(name, None)
            return
        link = self.links.pop(name, None)
        self.fdb.pop(name, None)
        self.neigh.pop(name, None)
        if link is not None and link.kind == "veth":
            peer = link.info.get("peer")
            if isinstance(peer, LinkSpec):
                self.sandboxes.get(peer.ns_path, {}).pop(peer.ifname, None)
        for other in self.links.values():
            if other.master == name:
                other.master = None

    async def reap_link(self, name: str) -> None:
        await self.delete_link(name)

    async def retire_link(self, name: str, new_name: str) -> bool:
        self._call("retire_link", name, new_name)
        link = self.links.pop(name, None)
        if link is None:
            return False
        link.name = new_name
        link.info["down"] = True
        self.links[new_name] = link
        return True

    async def link_names(self) -> set[str]:
        return set(self.links)

    async def add_veth(
        self, host_ifname: str, bridge: str, spec: LinkSpec, bridge_ns: str | None = None
    ) -> None:
        self._call("add_veth", host_ifname, bridge, spec)
        if bridge not in self.links:
            raise Internal(f"bridge {bridge} is missing")
        if host_ifname in self.links:
            raise Internal(f"cannot create endpoint {spec.ifname}: File exists")
        self.links[host_ifname] = FakeLink(
            host_ifname, "veth", master=bridge, mtu=spec.mtu, info={"peer": spec}
        )
        if bridge_ns is not None:
            self.links[host_ifname].info["ns"] = bridge_ns
        self.sandboxes.setdefault(spec.ns_path, {})[spec.ifname] = spec

    async def ensure_shim(self, name: str, parent: str, address: str, route: str) -> None:
        self._call("ensure_shim", name, parent, address, route)
        if parent not in self.links:
            raise Internal(f"parent interface {parent} is missing")
        info = {"parent": parent, "route": route}
        self.links[name] = FakeLink(name, "macvlan", address=f"{address}/32", info=info)

    async def add_macvlan(self, parent: str, mode: str, spec: LinkSpec) -> None:
        self._call("add_macvlan", parent, mode, spec)
        if parent not in self.links:
            raise Internal(f"parent interface {parent} is missing")
        self.sandboxes.setdefault(spec.ns_path, {})[spec.ifname] = spec

    async def ensure_vxlan(
        self,
        name: str,
        vni: int,
        local: str,
        bridge: str,
        mtu: int,
        port: int = 4789,
        ns_path: str | None = None,
    ) -> None:
        self._call("ensure_vxlan", name, vni, local, bridge, mtu, port)
        if bridge not in self.links:
            raise Internal(f"cannot set up vxlan {name}: bridge {bridge} is missing")
        link = self.links.get(name)
        if link is None:
            info: dict[str, Any] = {"vni": vni, "local": local, "port": port}
            if ns_path is not None:
                info["ns"] = ns_path
            link = FakeLink(name, "vxlan", mtu=mtu, info=info)
            self.links[name] = link
        link.master = bridge

    async def ensure_vlan(self, name: str, parent: str, vid: int) -> None:
        self._call("ensure_vlan", name, parent, vid)
        if parent not in self.links:
            raise Internal(f"parent interface {parent} is missing")
        self.links.setdefault(name, FakeLink(name, "vlan", info={"parent": parent, "vid": vid}))

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        self._call("vxlan_entries", vxlan)
        return dict(self.fdb.get(vxlan, {})), dict(self.neigh.get(vxlan, {}))

    async def set_entries(
        self, vxlan: str, entries: Sequence[VxlanEntry], ns_path: str | None = None
    ) -> None:
        """One batch (one call recorded, ``("set_entries", vxlan, count)``), applied in order."""
        self._call("set_entries", vxlan, len(entries))
        for e in entries:
            if e.table == "fdb":
                self._fdb(vxlan, e.mac, e.dst, e.present)
            else:
                self._neigh(vxlan, e.dst, e.mac, e.present)

    def _fdb(self, vxlan: str, mac: str, dst: str, present: bool) -> None:
        if vxlan not in self.links:
            return
        table = self.fdb.setdefault(vxlan, {})
        if present:
            table[mac] = dst
        elif table.get(mac) == dst:
            del table[mac]

    def _neigh(self, ifname: str, ip: str, mac: str, present: bool) -> None:
        if ifname not in self.links:
            return
        table = self.neigh.setdefault(ifname, {})
        if present:
            table[ip] = mac
        elif table.get(ip) == mac:
            del table[ip]

    async def loopback_up(self, ns_path: str, keep_socket: bool = False) -> None:
        self._call("loopback_up", ns_path)

    async def default_route(self, ns_path: str, gateway: str, ifname: str) -> None:
        self._call("default_route", ns_path, gateway, ifname)
        if ":" in gateway:  # the IPv6 default route (dual-stack networks)
            self.default_routes6[ns_path] = (gateway, ifname)
            return
        self.default_routes[ns_path] = (gateway, ifname)

    async def host_routes(self) -> list[ipaddress.IPv4Network]:
        return list(self.routes)

    async def link_exists(self, name: str, ns_path: str | None = None) -> bool:
        if ns_path is None:
            return name in self.links
        return name in self.sandboxes.get(ns_path, {})

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]:
        """The links of the host (``ns_path`` None), of an overlay network's namespace, or of
        a sandbox (its specs as ``veth`` links, and ``lo``). ``info["state"]`` overrides "up"."""
        out = [
            LinkInfo(
                name=link.name,
                kind=link.kind,
                state=str(link.info.get("state", "up")),
                mac=str(link.info.get("mac", "")),
                mtu=link.mtu,
                master=link.master or "",
                parent=str(link.info.get("parent", "")),
                addresses=(link.address,) if link.address else (),
                vni=int(link.info.get("vni", 0)),
                local=str(link.info.get("local", "")),
            )
            for link in self.links.values()
            if link.info.get("ns") == ns_path
        ]
        if ns_path is not None and ns_path in self.sandboxes:
            out.append(LinkInfo("lo", "", "unknown", mtu=65536, addresses=("127.0.0.1/8",)))
            for spec in self.sandboxes[ns_path].values():
                out.append(LinkInfo(spec.ifname, "veth", "up", spec.mac, spec.mtu,
                                    addresses=(spec.address,)))  # fmt: skip
        return out

    async def close(self) -> None:
        self._call("close")


class FakeNetns:
    """``tether.linux.netns.NetnsDir`` in memory: namespace name -> path.

    ``create`` is idempotent (as the real one is for a live namespace), ``delete`` of a
    missing one is fine, and ``calls`` records the work in order.
    """

    def __init__(self, root: str = "/fake/netns") -> None:
        self.root = root
        self.namespaces: dict[str, str] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, BaseException] = {}  # method name -> error to raise once

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        err = self.fail.pop(name, None)
        if err is not None:
            raise err

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    async def create(self, name: str) -> str:
        self._call("create", name)
        self.namespaces[name] = self.path(name)
        return self.namespaces[name]

    def delete(self, name: str) -> None:
        self._call("delete", name)
        self.namespaces.pop(name, None)

    def list(self) -> list[str]:
        return sorted(self.namespaces)
