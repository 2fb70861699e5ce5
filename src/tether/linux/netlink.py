"""Netlink: the links, addresses and routes tether makes, behind one small interface.

``Netlink`` is the protocol the drivers use; ``PyrouteNetlink`` is the real
backend (pyroute2's ``AsyncIPRoute``; one long-lived socket for the host namespace, and a
short-lived one per operation inside a sandbox namespace: the socket is made there by the
namespace thread of :mod:`tether.linux.nsthread`, ~0.8 ms with pyroute2's setup, so nothing
is cached per sandbox (pyroute2's own ``netns=`` forks a helper per socket, and a cache
costs ~20 KB of daemon memory per container));
``FakeNetlink`` (in ``tether.testing.netlink``) records the same calls in memory for unit tests.

Veth peers are created directly inside the target namespace under their final
name (``eth0``), which saves moving them (~19 ms each here).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tether.errors import Internal
from tether.linux import neighbatch, nsthread
from tether.linux.lazypkg import bare_package
from tether.linux.neighbatch import VxlanEntry as VxlanEntry
from tether.linux.nsock import netlink_socket_in_netns
from tether.linux.sysctl import ProcSysctl, Sysctl, disable_ipv6


@dataclass(frozen=True)
class LinkSpec:
    """A container-side interface: where it lives and how it is addressed."""

    ns_path: str
    ifname: str
    mac: str
    address: str  # "IP/prefix"
    gateway: str | None  # default route via this, or None
    mtu: int = 1500
    # dual-stack networks (issue 18): "IP6/prefix" and the IPv6 default route's gateway
    address6: str | None = None
    gateway6: str | None = None
    # ``IPAMConfig.LinkLocalIPs``: more "IP/prefix" addresses on the interface
    link_local: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinkInfo:
    """One link as the kernel lists it (``Netlink.link_table``: the topology's kernel check)."""

    name: str
    kind: str  # "bridge", "veth", "vxlan", "macvlan", ... ("" for a plain device)
    state: str  # "down" (not up administratively), else the operstate: "up", "unknown", ...
    mac: str = ""
    mtu: int = 0
    master: str = ""  # the bridge it is a port of
    parent: str = ""  # the link it sits on (macvlan/vlan), or a veth's peer index as "#N"
    addresses: tuple[str, ...] = ()  # IPv4 "ip/prefix"
    vni: int = 0  # vxlan
    local: str = ""  # vxlan: the local VTEP address


class Netlink(Protocol):
    async def ensure_bridge(
        self,
        name: str,
        address: str | None,
        mtu: int,
        ns_path: str | None = None,
        address6: str | None = None,
    ) -> None: ...

    async def delete_link(self, name: str, ns_path: str | None = None) -> None: ...
    async def retire_link(self, name: str, new_name: str) -> bool:
        """Set ``name`` down and rename it ``new_name`` (False: there is no ``name``)."""
        ...

    async def reap_link(self, name: str) -> None:
        """Delete the link ``name`` of the daemon's namespace, off the netlink thread (the
        kernel's wait for a bridge to unregister holds no lock others need)."""
        ...

    async def link_names(self) -> set[str]: ...

    async def add_veth(
        self, host_ifname: str, bridge: str, spec: LinkSpec, bridge_ns: str | None = None
    ) -> None: ...

    async def add_macvlan(self, parent: str, mode: str, spec: LinkSpec) -> None: ...

    async def ensure_vxlan(
        self,
        name: str,
        vni: int,
        local: str,
        bridge: str,
        mtu: int,
        port: int = 4789,
        ns_path: str | None = None,
    ) -> None: ...

    async def ensure_vlan(self, name: str, parent: str, vid: int) -> None: ...

    async def ensure_shim(self, name: str, parent: str, address: str, route: str) -> None: ...

    async def set_entries(
        self, vxlan: str, entries: Sequence[VxlanEntry], ns_path: str | None = None
    ) -> None: ...

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]: ...

    async def loopback_up(self, ns_path: str) -> None: ...

    async def default_route(self, ns_path: str, gateway: str, ifname: str) -> None: ...

    async def host_routes(self) -> list[ipaddress.IPv4Network]: ...

    async def link_exists(self, name: str, ns_path: str | None = None) -> bool: ...

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]: ...

    async def close(self) -> None: ...


NETLINK_ROUTE = 0
IFA_F_NODAD = 0x02  # an address without duplicate address detection


def _async_iproute() -> Any:
    """pyroute2's ``AsyncIPRoute`` without the rest of pyroute2 (see :mod:`.lazypkg`)."""
    bare_package("pyroute2")
    from pyroute2.iproute.linux import AsyncIPRoute

    return AsyncIPRoute


def _netlink_error() -> Any:
    bare_package("pyroute2")
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def dellink_by_name(name: str) -> None:
    """``RTM_DELLINK`` of ``name`` on a socket of its own (blocking: the kernel answers once
    the link is unregistered, ~40 ms for a bridge); ``OSError`` with the kernel's errno."""
    import socket
    import struct

    raw = name.encode() + b"\0"
    attr = struct.pack("HH", 4 + len(raw), 3) + raw  # IFLA_IFNAME
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("BxHiII", 0, 0, 0, 0, 0) + attr  # struct ifinfomsg
    msg = struct.pack("IHHII", 16 + len(body), 17, 0x5, 1, 0) + body  # RTM_DELLINK, REQUEST|ACK
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0) as s:
        s.send(msg)
        reply = s.recv(4096)
    kind, error = struct.unpack_from("H", reply, 4)[0], struct.unpack_from("i", reply, 16)[0]
    if kind == 2 and error < 0:  # NLMSG_ERROR with an errno (0: the ack)
        raise OSError(-error, os.strerror(-error))


def _err(what: str, exc: BaseException) -> Internal:
    return Internal(f"{what}: {exc}")


class PyrouteNetlink:
    """The real backend over pyroute2 0.9's asyncio API."""

    def __init__(self, sysctl: Sysctl | None = None) -> None:
        self._host: Any = None
        self._sysctl = sysctl or ProcSysctl()  # the daemon's namespace's

    async def _ipr(self) -> Any:
        AsyncIPRoute = _async_iproute()
        if self._host is None:
            self._host = AsyncIPRoute()
            await self._host.setup_endpoint()
        return self._host

    @contextlib.asynccontextmanager
    async def _in_ns(self, ns_path: str | None) -> AsyncIterator[Any]:
        """The host socket (``ns_path`` None) or a fresh one inside ``ns_path``, closed after."""
        if ns_path is None:
            yield await self._ipr()
            return
        AsyncIPRoute = _async_iproute()
        try:
            sock = netlink_socket_in_netns(ns_path)
        except OSError as exc:
            raise _err(f"cannot open netlink in {ns_path}", exc) from exc
        ipr = AsyncIPRoute(fileno=sock.detach())
        try:
            await ipr.setup_endpoint()
            yield ipr
        finally:
            ipr.close()

    @staticmethod
    async def _lookup(ipr: Any, name: str) -> int | None:
        found = await ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    async def _index(self, name: str) -> int | None:
        return await self._lookup(await self._ipr(), name)

    async def link_exists(self, name: str, ns_path: str | None = None) -> bool:
        async with self._in_ns(ns_path) as ipr:
            return await self._lookup(ipr, name) is not None

    async def link_names(self) -> set[str]:
        ipr = await self._ipr()
        names: set[str] = set()
        async for link in await ipr.link("dump"):
            names.add(str(link.get("ifname")))
        return names

    async def ensure_bridge(
        self,
        name: str,
        address: str | None,
        mtu: int,
        ns_path: str | None = None,
        address6: str | None = None,
    ) -> None:
        NetlinkError = _netlink_error()
        try:
            async with self._in_ns(ns_path) as ipr:
                idx = await self._lookup(ipr, name)
                if idx is None:
                    await ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                    idx = await self._lookup(ipr, name)
                assert idx is not None
                if address6:
                    await self._enable_ipv6(ns_path, name)
                for addr in (address, address6):
                    if not addr:
                        continue
                    ip, prefix = addr.split("/")
                    have = [
                        (a.get("address"), a.get("prefixlen"))
                        async for a in await ipr.addr("dump", index=idx)
                    ]
                    if (ip, int(prefix)) not in have:
                        flags = {"flags": IFA_F_NODAD} if ":" in ip else {}
                        await ipr.addr("add", index=idx, address=ip, prefixlen=int(prefix), **flags)
                await ipr.link("set", index=idx, state="up")
        except NetlinkError as exc:
            raise _err(f"cannot set up bridge {name}", exc) from exc

    async def delete_link(self, name: str, ns_path: str | None = None) -> None:
        NetlinkError = _netlink_error()
        try:
            async with self._in_ns(ns_path) as ipr:
                idx = await self._lookup(ipr, name)
                if idx is not None:
                    await ipr.link("del", index=idx)
        except NetlinkError as exc:
            if exc.code != 19:  # ENODEV: already gone
                raise _err(f"cannot delete link {name}", exc) from exc

    async def retire_link(self, name: str, new_name: str) -> bool:
        NetlinkError = _netlink_error()
        try:
            ipr = await self._ipr()
            idx = await self._lookup(ipr, name)
            if idx is None:
                return False
            await ipr.link("set", index=idx, state="down")  # a link is renamed only down
            await ipr.link("set", index=idx, ifname=new_name)
            return True
        except NetlinkError as exc:
            raise _err(f"cannot retire link {name}", exc) from exc

    async def _configure_peer(self, spec: LinkSpec) -> None:
        async with self._in_ns(spec.ns_path) as ns:
            await self._configure_in(ns, spec)

    async def _configure_in(self, ns: Any, spec: LinkSpec) -> None:
        idx = await self._lookup(ns, spec.ifname)
        if idx is None:
            raise Internal(f"interface {spec.ifname} did not appear in {spec.ns_path}")
        ip, prefix = spec.address.split("/")
        # with its broadcast address, as Docker's endpoints have (`ip addr`: "brd ...")
        brd = ipaddress.IPv4Network(spec.address, strict=False).broadcast_address
        await ns.addr("add", index=idx, address=ip, prefixlen=int(prefix), broadcast=str(brd))
        if spec.address6:
            await self._enable_ipv6(spec.ns_path, spec.ifname)
            ip6, prefix6 = spec.address6.split("/")
            await ns.addr("add", index=idx, address=ip6, prefixlen=int(prefix6), flags=IFA_F_NODAD)
        await self._add_link_local(ns, idx, spec)
        await ns.link("set", index=idx, state="up")
        NetlinkError = _netlink_error()
        for gateway, dst, family in ((spec.gateway, "0.0.0.0/0", 2), (spec.gateway6, "::/0", 10)):
            if not gateway:
                continue
            try:
                await ns.route("add", dst=dst, gateway=gateway, oif=idx, family=family)
            except NetlinkError as exc:
                if exc.code != 17:  # EEXIST: an earlier endpoint already gives the default route
                    raise

    async def _add_link_local(self, ns: Any, idx: int, spec: LinkSpec) -> None:
        """``LinkLocalIPs`` (IPv6 ones turn IPv6 on for the interface, without DAD)."""
        for addr in spec.link_local:
            net = ipaddress.ip_interface(addr).network
            ip, prefix = addr.split("/")
            if net.version == 4:
                brd = str(net.broadcast_address)
                await ns.addr("add", index=idx, address=ip, prefixlen=int(prefix), broadcast=brd)
                continue
            if not spec.address6:
                await self._enable_ipv6(spec.ns_path, spec.ifname)
            await ns.addr("add", index=idx, address=ip, prefixlen=int(prefix), flags=IFA_F_NODAD)

    async def _enable_ipv6(self, ns_path: str | None, ifname: str) -> None:
        """IPv6 on an interface of a dual-stack network (tether keeps it off elsewhere:
        ``nsthread._make_netns``), before it is up: no DAD (IPAM-allocated addresses, as
        Docker's ``nodad``; the link-local one too, so no probe is flooded through the
        bridge), no router advertisements taken (CVE-2024-32473)."""
        for name, value in (("accept_dad", "0"), ("accept_ra", "0"), ("disable_ipv6", "0")):
            key = f"net/ipv6/conf/{ifname}/{name}"
            if ns_path is None:
                self._sysctl.set(key, value)
            elif not await asyncio.wrap_future(
                nsthread.default().submit_sysctl(ns_path, key, value)
            ):
                raise Internal(f"cannot enable IPv6 on {ifname}: no {key} (IPv6 is off)")

    async def loopback_up(self, ns_path: str) -> None:
        try:
            await asyncio.wrap_future(nsthread.default().submit_link_up(ns_path, "lo"))
        except OSError as exc:
            raise _err(f"cannot set lo up in {ns_path}", exc) from exc

    async def default_route(self, ns_path: str, gateway: str, ifname: str) -> None:
        """Make ``gateway`` through ``ifname`` the namespace's default route (replacing any;
        the IPv6 one when ``gateway`` is an IPv6 address)."""
        NetlinkError = _netlink_error()
        try:
            async with self._in_ns(ns_path) as ns:
                idx = await self._lookup(ns, ifname)
                if idx is None:
                    raise Internal(f"interface {ifname} is missing in {ns_path}")
                dst, family = ("::/0", 10) if ":" in gateway else ("0.0.0.0/0", 2)
                await ns.route("replace", dst=dst, gateway=gateway, oif=idx, family=family)
        except NetlinkError as exc:
            raise _err(f"cannot set the default route via {gateway}", exc) from exc

    async def add_veth(
        self, host_ifname: str, bridge: str, spec: LinkSpec, bridge_ns: str | None = None
    ) -> None:
        """A veth pair: ``host_ifname`` on ``bridge`` (in the daemon's namespace, or in
        ``bridge_ns``: an overlay network's), its peer ``spec`` in the container's."""
        NetlinkError = _netlink_error()
        try:
            async with self._in_ns(bridge_ns) as ipr:
                br = await self._lookup(ipr, bridge)
                if br is None:
                    raise Internal(f"bridge {bridge} is missing")
                await ipr.link(
                    "add",
                    ifname=host_ifname,
                    kind="veth",
                    mtu=spec.mtu,
                    peer={
                        "ifname": spec.ifname,
                        "net_ns_fd": spec.ns_path,
                        "address": spec.mac,
                        "mtu": spec.mtu,
                    },
                )
                idx = await self._lookup(ipr, host_ifname)
                assert idx is not None
                if bridge_ns is None:  # (in a namespace of tether's, IPv6 is off already)
                    # a bridge port needs no address; with IPv6 its link-local one would send
                    # DAD, MLD and router solicitations the bridge floods to every container
                    disable_ipv6(self._sysctl, host_ifname)
                await ipr.link("set", index=idx, master=br, state="up")
                if bridge_ns is None:
                    # hairpin: a frame may leave through the port it came in on, so a container
                    # reaches its own published port through a host address (DNAT sends it
                    # back). The attribute is IFLA_BRPORT_MODE ("mode"); pyroute2 ignores
                    # unknown names. (Nothing is published through an overlay's bridge.)
                    await ipr.brport("set", index=idx, mode=1)
            await self._configure_peer(spec)
        except NetlinkError as exc:
            await self.delete_link(host_ifname, bridge_ns)
            raise _err(f"cannot create endpoint {spec.ifname}", exc) from exc

    async def add_macvlan(self, parent: str, mode: str, spec: LinkSpec) -> None:
        NetlinkError = _netlink_error()
        ipr = await self._ipr()
        try:
            link = await self._index(parent)
            if link is None:
                raise Internal(f"parent interface {parent} is missing")
            tmp = "tm" + spec.mac.replace(":", "")[-10:]
            await ipr.link(
                "add",
                ifname=tmp,
                kind="macvlan",
                link=link,
                macvlan_mode=mode,
                address=spec.mac,
                mtu=spec.mtu,
            )
            idx = await self._index(tmp)
            assert idx is not None
            import os

            fd = os.open(spec.ns_path, os.O_RDONLY)
            try:
                await ipr.link("set", index=idx, net_ns_fd=fd, ifname=spec.ifname)
            finally:
                os.close(fd)
            await self._configure_peer(spec)
        except NetlinkError as exc:
            raise _err(f"cannot create macvlan endpoint {spec.ifname}", exc) from exc

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
        """A VXLAN device ``name`` on ``bridge``; with ``ns_path``, both live in that namespace.

        The device is always made in the daemon's namespace and, with ``ns_path``, moved there:
        its UDP socket stays where it was made, on the host's underlay.
        """
        NetlinkError = _netlink_error()
        ipr = await self._ipr()
        try:
            async with self._in_ns(ns_path) as nsr:
                idx = await self._lookup(nsr, name)
                if idx is None:
                    if ns_path is not None and await self._index(name) is not None:
                        await self.delete_link(name)  # a half-made one from an earlier try
                    await ipr.link(
                        "add",
                        ifname=name,
                        kind="vxlan",
                        vxlan_id=vni,
                        vxlan_local=local,
                        vxlan_port=port,
                        vxlan_learning=0,
                        vxlan_proxy=1,  # answer ARP from the neighbour table (set_entries)
                        mtu=mtu,
                    )
                    if ns_path is not None:
                        host_idx = await self._index(name)
                        assert host_idx is not None
                        try:
                            await ipr.link("set", index=host_idx, net_ns_fd=ns_path)
                        except NetlinkError:
                            await self.delete_link(name)
                            raise
                    idx = await self._lookup(nsr, name)
                br = await self._lookup(nsr, bridge)
                assert idx is not None and br is not None
                await nsr.link("set", index=idx, master=br, state="up")
        except NetlinkError as exc:
            raise _err(f"cannot set up vxlan {name}", exc) from exc

    async def ensure_vlan(self, name: str, parent: str, vid: int) -> None:
        """An 802.1Q sub-interface ``name`` of ``parent`` (kernels without vlan: 95)."""
        NetlinkError = _netlink_error()
        ipr = await self._ipr()
        if await self._index(name) is not None:
            return
        link = await self._index(parent)
        if link is None:
            raise Internal(f"parent interface {parent} is missing")
        try:
            await ipr.link("add", ifname=name, kind="vlan", link=link, vlan_id=vid)
            idx = await self._index(name)
            await ipr.link("set", index=idx, state="up")
        except NetlinkError as exc:
            if exc.code == 95:
                raise Internal(
                    f"cannot create VLAN interface {name}: this kernel has no 802.1Q (vlan) support"
                ) from exc
            raise _err(f"cannot create VLAN interface {name}", exc) from exc

    async def ensure_shim(self, name: str, parent: str, address: str, route: str) -> None:
        """A host-side macvlan (bridge mode) on ``parent`` with ``address`` (/32) and a route
        to ``route`` through it, so the host reaches its own macvlan containers."""
        NetlinkError = _netlink_error()
        ipr = await self._ipr()
        link = await self._index(parent)
        if link is None:
            raise Internal(f"parent interface {parent} is missing")
        try:
            idx = await self._index(name)
            if idx is None:
                await ipr.link("add", ifname=name, kind="macvlan", link=link, macvlan_mode="bridge")
                idx = await self._index(name)
            assert idx is not None
            have = [a.get("address") async for a in await ipr.addr("dump", index=idx)]
            if address not in have:
                await ipr.addr("add", index=idx, address=address, prefixlen=32)
            await ipr.link("set", index=idx, state="up")
            await ipr.route("replace", dst=route, oif=idx)
        except NetlinkError as exc:
            await self.delete_link(name)
            raise _err(f"cannot set up the host shim {name}", exc) from exc

    async def set_entries(
        self, vxlan: str, entries: Sequence[VxlanEntry], ns_path: str | None = None
    ) -> None:
        """Replace (or delete) permanent FDB/neighbour entries on ``vxlan``, in order, as one
        netlink batch (:mod:`tether.linux.neighbatch`: one socket in ``ns_path``, one device
        lookup, the messages packed into as few writes as fit; a burst of remote endpoints
        was a socket, a lookup and a pyroute2 request per entry). Deleting an entry, or from
        a device, that is gone is not an error; the first entry refused is raised after the
        kernel went through every other one."""
        if not entries:
            return
        try:
            if ns_path is None:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
            else:
                sock = netlink_socket_in_netns(ns_path)
        except OSError as exc:
            raise _err(f"cannot open netlink in {ns_path or 'the host namespace'}", exc) from exc
        try:
            sock.settimeout(10.0)
            neighbatch.apply(sock, vxlan, entries)
        except OSError as exc:
            raise _err(f"cannot program the entries of {vxlan}", exc) from exc
        finally:
            sock.close()

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The device's own remote entries: (FDB MAC -> VTEP, neighbour IP -> MAC).

        Only FDB entries with a destination (what :meth:`set_entries` makes; the bridge's own
        entries for the port have none) and permanent neighbour entries are listed.
        Empty when the device is missing.
        """
        fdb: dict[str, str] = {}
        neigh: dict[str, str] = {}
        async with self._in_ns(ns_path) as ipr:
            idx = await self._lookup(ipr, vxlan)
            if idx is None:
                return fdb, neigh
            async for e in await ipr.fdb("dump", ifindex=idx):
                if e.get("ifindex") == idx and e.get("NDA_DST") and e.get("NDA_LLADDR"):
                    fdb[str(e.get("NDA_LLADDR"))] = str(e.get("NDA_DST"))
            for family in (2, 10):  # IPv4, IPv6 (dual-stack overlay networks)
                async for e in await ipr.neigh("dump", ifindex=idx, family=family):
                    if e.get("ifindex") == idx and e.get("state") == 0x80 and e.get("NDA_LLADDR"):
                        neigh[str(e.get("NDA_DST"))] = str(e.get("NDA_LLADDR"))
        return fdb, neigh

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]:
        """Every link of the namespace (the daemon's with ``ns_path`` None), read only."""
        async with self._in_ns(ns_path) as ipr:
            raw = [link async for link in await ipr.link("dump")]
            addrs: dict[int, list[str]] = {}
            async for a in await ipr.addr("dump", family=2):
                addrs.setdefault(int(a["index"]), []).append(f"{a.get('address')}/{a['prefixlen']}")
        names = {int(link["index"]): str(link.get("ifname")) for link in raw}
        return [_link_info(link, names, addrs) for link in raw]

    async def host_routes(self) -> list[ipaddress.IPv4Network]:
        ipr = await self._ipr()
        nets: list[ipaddress.IPv4Network] = []
        async for r in await ipr.route("dump", family=2):
            dst = r.get("dst")
            plen = r.get("dst_len")
            if dst and plen and r.get("table") == 254:
                nets.append(ipaddress.IPv4Network(f"{dst}/{plen}", strict=False))
        return nets

    async def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None


def _link_info(link: Any, names: dict[int, str], addrs: dict[int, list[str]]) -> LinkInfo:
    idx = int(link["index"])
    kind = str(link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "")
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    up = bool(link["flags"] & 1)
    master = link.get("master")
    parent = link.get("link")
    vni = local = None
    if kind == "vxlan" and data is not None:
        vni, local = data.get("IFLA_VXLAN_ID"), data.get("IFLA_VXLAN_LOCAL")
    return LinkInfo(
        name=names[idx],
        kind=kind,
        state=str(link.get("operstate") or "unknown").lower() if up else "down",
        mac=str(link.get("address") or ""),
        mtu=int(link.get("mtu") or 0),
        master=names.get(int(master), "") if master else "",
        parent=(names.get(int(parent)) or f"#{parent}") if parent and parent != idx else "",
        addresses=tuple(addrs.get(idx, ())),
        vni=int(vni or 0),
        local=str(local or ""),
    )


class ThreadedNetlink:
    """Runs a ``PyrouteNetlink`` on its own plain-asyncio loop in one thread.

    pyroute2's asyncio transport opens netlink sockets as datagram endpoints,
    which uvloop refuses (``invalid family 16``). The daemon's loop was uvloop
    (plain asyncio since issue 20, ``TETHER_LOOP=uvloop`` still selects it), so
    netlink work runs on a private loop in a dedicated thread; every call hops
    there and back (~50 µs).
    The thread is owned by this object and stopped by ``close``.
    """

    def __init__(self) -> None:
        import threading

        self._loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop()
        self._inner = PyrouteNetlink()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netlink", daemon=True)
        self._thread.start()

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        coro = getattr(self._inner, name)(*args, **kwargs)
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(fut)

    async def ensure_bridge(
        self,
        name: str,
        address: str | None,
        mtu: int,
        ns_path: str | None = None,
        address6: str | None = None,
    ) -> None:
        await self._call("ensure_bridge", name, address, mtu, ns_path, address6)

    async def delete_link(self, name: str, ns_path: str | None = None) -> None:
        await self._call("delete_link", name, ns_path)

    async def link_names(self) -> set[str]:
        names: set[str] = await self._call("link_names")
        return names

    async def add_veth(
        self, host_ifname: str, bridge: str, spec: LinkSpec, bridge_ns: str | None = None
    ) -> None:
        await self._call("add_veth", host_ifname, bridge, spec, bridge_ns)

    async def add_macvlan(self, parent: str, mode: str, spec: LinkSpec) -> None:
        await self._call("add_macvlan", parent, mode, spec)

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
        await self._call("ensure_vxlan", name, vni, local, bridge, mtu, port, ns_path)

    async def ensure_vlan(self, name: str, parent: str, vid: int) -> None:
        await self._call("ensure_vlan", name, parent, vid)

    async def ensure_shim(self, name: str, parent: str, address: str, route: str) -> None:
        await self._call("ensure_shim", name, parent, address, route)

    async def set_entries(
        self, vxlan: str, entries: Sequence[VxlanEntry], ns_path: str | None = None
    ) -> None:
        await self._call("set_entries", vxlan, list(entries), ns_path)

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        entries: tuple[dict[str, str], dict[str, str]] = await self._call(
            "vxlan_entries", vxlan, ns_path
        )
        return entries

    async def retire_link(self, name: str, new_name: str) -> bool:
        done: bool = await self._call("retire_link", name, new_name)
        return done

    async def reap_link(self, name: str) -> None:
        try:
            await asyncio.to_thread(dellink_by_name, name)
        except OSError as exc:
            if exc.errno != 19:  # ENODEV: already gone
                raise _err(f"cannot delete link {name}", exc) from exc

    async def loopback_up(self, ns_path: str) -> None:
        await self._call("loopback_up", ns_path)

    async def default_route(self, ns_path: str, gateway: str, ifname: str) -> None:
        await self._call("default_route", ns_path, gateway, ifname)

    async def host_routes(self) -> list[ipaddress.IPv4Network]:
        routes: list[ipaddress.IPv4Network] = await self._call("host_routes")
        return routes

    async def link_exists(self, name: str, ns_path: str | None = None) -> bool:
        found: bool = await self._call("link_exists", name, ns_path)
        return found

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]:
        found: list[LinkInfo] = await self._call("link_table", ns_path)
        return found

    async def close(self) -> None:
        await self._call("close")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
