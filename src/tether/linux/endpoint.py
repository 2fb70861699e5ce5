"""A container's endpoint in raw rtnetlink (:mod:`.rtlink`): the veth pair, its bridge port,
and the peer's configuration inside the sandbox; split from :mod:`.netlink`, whose
``PyrouteNetlink`` hands these calls here.

A start made the endpoint with pyroute2: ~11 requests and a second socket made in the
sandbox with pyroute2's set-up (~5 ms in all, bench/FINDINGS.md, issue 21). Here: a lookup,
the pair made with its master, a lookup, then the port's up and hairpin in one write; the
peer's addresses, up and default routes in one write on a socket made in the sandbox. That
socket is asked of the namespace thread together with ``lo`` (``submit_loopback_up``), before
the container's runtime is started there (which holds that thread for a few ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from concurrent.futures import Future

from tether.errors import Internal
from tether.linux import nsthread, rtlink
from tether.linux.linktypes import LinkSpec
from tether.linux.nsock import netlink_socket_in_netns
from tether.linux.nsthread import SocketSpec
from tether.linux.sysctl import Sysctl, disable_ipv6

_KEEP = 16  # sockets kept for a sandbox's first endpoint (submit_loopback_up), at most
_NL_SPEC = SocketSpec(socket.AF_NETLINK, socket.SOCK_RAW, None, proto=rtlink.NETLINK_ROUTE)


def _err(what: str, exc: BaseException) -> Internal:
    return Internal(f"{what}: {exc}")


def _close_sockets(job: Future[list[socket.socket]]) -> None:
    if not job.cancelled() and job.exception() is None:
        for s in job.result():
            s.close()


def route_socket(ns_path: str | None) -> socket.socket:
    """A raw rtnetlink socket in ``ns_path`` (the daemon's namespace with None)."""
    try:
        sock = rtlink.open_route_socket() if ns_path is None else netlink_socket_in_netns(ns_path)
    except OSError as exc:
        raise _err(f"cannot open netlink in {ns_path or 'the host namespace'}", exc) from exc
    sock.settimeout(10.0)
    return sock


class EndpointWire:
    """The endpoint calls of ``Netlink`` (``add_veth``, ``loopback_up``) and the peer's
    configuration for the other drivers (``configure_peer``)."""

    def __init__(self, sysctl: Sysctl) -> None:
        self._sysctl = sysctl  # the daemon's namespace's
        self._kept: list[tuple[str, Future[list[socket.socket]]]] = []  # submit_loopback_up's
        self._kept_lock = threading.Lock()

    def close(self) -> None:
        """Close the sockets kept for joins that never came."""
        with self._kept_lock:
            kept, self._kept = self._kept, []
        for _path, job in kept:
            job.add_done_callback(_close_sockets)

    async def loopback_up(self, ns_path: str, keep_socket: bool = False) -> None:
        try:
            await asyncio.wrap_future(self.submit_loopback_up(ns_path, keep_socket))
        except OSError as exc:
            raise _err(f"cannot set lo up in {ns_path}", exc) from exc

    async def configure_peer(
        self, spec: LinkSpec, ns_sock: Future[list[socket.socket]] | None = None
    ) -> None:
        """The container side of an endpoint, in raw netlink (:mod:`.rtlink`): its IPv6
        settings (dual-stack), then addresses, up and default routes in one batch on a socket
        made in its namespace (``ns_sock``: one asked for already)."""
        job = ns_sock or self.ns_socket(spec.ns_path)
        try:
            sock = (await asyncio.wrap_future(job))[0]
        except OSError as exc:
            raise _err(f"cannot open netlink in {spec.ns_path}", exc) from exc
        with sock:
            sock.settimeout(10.0)
            idx = rtlink.link_index(sock, spec.ifname)
            if idx is None:
                raise Internal(f"interface {spec.ifname} did not appear in {spec.ns_path}")
            v6 = [a for a in spec.link_local if ":" in a]
            if spec.address6 or v6:
                await self.enable_ipv6(spec.ns_path, spec.ifname)
            addrs = [spec.address, *([spec.address6] if spec.address6 else []), *spec.link_local]
            gateways = [g for g in (spec.gateway, spec.gateway6) if g]
            rtlink.run(sock, rtlink.peer_batch(idx, addrs, gateways))

    async def enable_ipv6(self, ns_path: str | None, ifname: str) -> None:
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

    def submit_loopback_up(self, ns_path: str, keep_socket: bool = False) -> Future[None]:
        """``lo`` up in ``ns_path``, and with ``keep_socket`` a netlink socket made there for
        the next endpoint's peer (:meth:`ns_socket`), both asked of the namespace thread
        now (thread-safe: the caller's thread submits, the netlink thread takes the socket)."""
        ns = nsthread.default()
        job = ns.submit_link_up(ns_path, "lo")
        if keep_socket:
            sock = ns.submit_sockets(ns_path, [_NL_SPEC])
            with self._kept_lock:
                self._kept.append((ns_path, sock))
                while len(self._kept) > _KEEP:  # never taken (a join that failed first)
                    self._kept.pop(0)[1].add_done_callback(_close_sockets)
        return job

    def ns_socket(self, ns_path: str) -> Future[list[socket.socket]]:
        """The socket kept for ``ns_path`` by :meth:`submit_loopback_up`, else a new one."""
        with self._kept_lock:
            for i, (path, job) in enumerate(self._kept):
                if path == ns_path:
                    del self._kept[i]
                    return job
        return nsthread.default().submit_sockets(ns_path, [_NL_SPEC])

    async def add_veth(
        self, host_ifname: str, bridge: str, spec: LinkSpec, bridge_ns: str | None = None
    ) -> None:
        """A veth pair: ``host_ifname`` on ``bridge`` (in the daemon's namespace, or in
        ``bridge_ns``: an overlay network's), its peer ``spec`` in the container's.

        Raw netlink (:mod:`.rtlink`; was ~11 pyroute2 requests and a second socket): the
        pair made with its master, the port's IPv6 off, port up and hairpin in one write,
        the peer configured in one write on a socket asked of the namespace thread first
        (so it does not queue behind the container's runtime starting there)."""
        ns_job = self.ns_socket(spec.ns_path)
        try:
            with route_socket(bridge_ns) as host:
                self._host_side(host, host_ifname, bridge, spec, bridge_ns is None)
        except BaseException:
            ns_job.add_done_callback(_close_sockets)
            raise
        try:
            await self.configure_peer(spec, ns_job)
        except (OSError, Internal) as exc:
            with contextlib.suppress(OSError, Internal), route_socket(bridge_ns) as host:
                rtlink.delete_link(host, host_ifname)
            if isinstance(exc, Internal):
                raise
            raise _err(f"cannot create endpoint {spec.ifname}", exc) from exc

    def _host_side(
        self, sock: socket.socket, name: str, bridge: str, spec: LinkSpec, own_ns: bool
    ) -> None:
        try:
            br = rtlink.link_index(sock, bridge)
            if br is None:
                raise Internal(f"bridge {bridge} is missing")
            rtlink.create_veth(
                sock, name, spec.ifname, spec.ns_path, mtu=spec.mtu, peer_mac=spec.mac, master=br
            )
        except OSError as exc:
            raise _err(f"cannot create endpoint {spec.ifname}", exc) from exc
        try:
            idx = rtlink.link_index(sock, name)
            if idx is None:
                raise Internal(f"interface {name} did not appear")
            if own_ns:  # (in a namespace of tether's, IPv6 is off already)
                # a bridge port needs no address; with IPv6 its link-local one would send
                # DAD, MLD and router solicitations the bridge floods to every container
                disable_ipv6(self._sysctl, name)
            # hairpin only on the daemon's bridges: nothing is published through an overlay's
            rtlink.port_up(sock, idx, hairpin=own_ns)
        except (OSError, Internal) as exc:
            with contextlib.suppress(OSError):
                rtlink.delete_link(sock, name)
            if isinstance(exc, Internal):
                raise
            raise _err(f"cannot create endpoint {spec.ifname}", exc) from exc
