"""Netlink: the links, addresses and routes tether makes, behind one small interface.

``Netlink`` is the protocol the drivers use; ``PyrouteNetlink`` is the real
backend (pyroute2's ``AsyncIPRoute``; one long-lived socket for the host namespace, and a
short-lived one per operation inside a sandbox namespace: the socket is made there by the
namespace thread of :mod:`tether.linux.nsthread`, ~0.8 ms with pyroute2's setup, so nothing
is cached per sandbox (pyroute2's own ``netns=`` forks a helper per socket, and a cache
costs ~20 KB of daemon memory per container));
``FakeNetlink`` (in ``tether.testing.netlink``) records the same calls in memory for unit tests.

Veth peers are created directly inside the target namespace under their final
name (``eth0``), which saves moving them (~19 ms each here). A container's endpoint
(:mod:`.endpoint`), a bridge (``ensure_bridge``) and the overlay's entries (:mod:`.neighbatch`)
are made in raw netlink (:mod:`.rtlink`): the calls of every container start and network
create, where pyroute2's ~0.3–0.5 ms of Python per request was most of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tether.errors import Internal
from tether.linux import linkread, neighbatch, rtlink
from tether.linux.endpoint import EndpointWire, route_socket
from tether.linux.lazypkg import bare_package
from tether.linux.linktypes import LinkInfo as LinkInfo
from tether.linux.linktypes import LinkSpec as LinkSpec
from tether.linux.linktypes import Netlink as Netlink
from tether.linux.neighbatch import VxlanEntry as VxlanEntry
from tether.linux.nsock import netlink_socket_in_netns
from tether.linux.rtlink import dellink_by_name as dellink_by_name
from tether.linux.sysctl import ProcSysctl, Sysctl

NETLINK_ROUTE = 0


# pyroute2 logs every message it sends and receives at debug level, each a formatted dict
# of the whole reply: with the daemon's ``--debug`` that was ~0.5 ms per request, so the
# debug phases overstated every netlink step. Its warnings and errors still come through.
logging.getLogger("pyroute2").setLevel(logging.INFO)


def _async_iproute() -> Any:
    """pyroute2's ``AsyncIPRoute`` without the rest of pyroute2 (see :mod:`.lazypkg`)."""
    bare_package("pyroute2")
    from pyroute2.iproute.linux import AsyncIPRoute

    return AsyncIPRoute


def _netlink_error() -> Any:
    bare_package("pyroute2")
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def _err(what: str, exc: BaseException) -> Internal:
    return Internal(f"{what}: {exc}")


class PyrouteNetlink:
    """The real backend over pyroute2 0.9's asyncio API."""

    def __init__(self, sysctl: Sysctl | None = None) -> None:
        self._host: Any = None
        self._sysctl = sysctl or ProcSysctl()  # the daemon's namespace's
        self.endpoints = EndpointWire(self._sysctl)  # a container's veth, in raw netlink

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
        """The bridge ``name`` with its addresses, up, made if missing (raw netlink,
        :mod:`.rtlink`: a lookup, the bridge, a lookup, then the addresses and up in one
        write; was six pyroute2 requests, an address dump among them)."""
        with route_socket(ns_path) as sock:
            try:
                idx = rtlink.link_index(sock, name)
                if idx is None:
                    rtlink.create_bridge(sock, name, mtu)
                    idx = rtlink.link_index(sock, name)
                if idx is None:
                    raise OSError(errno.ENODEV, f"{name} did not appear")
                if address6:
                    await self.endpoints.enable_ipv6(ns_path, name)
                addrs = [a for a in (address, address6) if a]
                rtlink.run(sock, rtlink.addresses_up_batch(idx, addrs))
            except OSError as exc:
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

    async def loopback_up(self, ns_path: str, keep_socket: bool = False) -> None:
        await self.endpoints.loopback_up(ns_path, keep_socket)

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
        await self.endpoints.add_veth(host_ifname, bridge, spec, bridge_ns)

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
            await self.endpoints.configure_peer(spec)
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
        with route_socket(ns_path) as sock:
            try:
                neighbatch.apply(sock, vxlan, entries)
            except OSError as exc:
                raise _err(f"cannot program the entries of {vxlan}", exc) from exc

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The device's own remote entries: (FDB MAC -> VTEP, neighbour IP -> MAC).

        Only FDB entries with a destination (what :meth:`set_entries` makes; the bridge's own
        entries for the port have none) and permanent neighbour entries are listed.
        Empty when the device is missing.
        """
        async with self._in_ns(ns_path) as ipr:
            return await linkread.vxlan_entries(ipr, vxlan)

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]:
        """Every link of the namespace (the daemon's with ``ns_path`` None), read only."""
        async with self._in_ns(ns_path) as ipr:
            return await linkread.link_table(ipr)

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
        self.endpoints.close()
        if self._host is not None:
            self._host.close()
            self._host = None


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

    async def loopback_up(self, ns_path: str, keep_socket: bool = False) -> None:
        # submitted from the caller's thread, in its order (no hop to the netlink thread)
        try:
            await asyncio.wrap_future(
                self._inner.endpoints.submit_loopback_up(ns_path, keep_socket)
            )
        except OSError as exc:
            raise _err(f"cannot set lo up in {ns_path}", exc) from exc

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
