"""The overlay driver: one L2 segment across hosts, carried in VXLAN.

Per host and network the data path is a Linux bridge (``tov-<id>``) with a
VXLAN device (``tvx-<id>``: UDP 4789, the network's VNI, ``local`` = this
host's advertise address, learning off, ARP proxy on) as one of its ports; each
local container is a veth pair from its ``eth<n>`` (MTU 1450) to that bridge.
The pair of devices is made when the first local container joins and removed
with the last one.

Nothing is learnt from the wire: for every *remote* endpoint of the network
the cluster view calls :meth:`OverlayDriver.peer_changed`, which programs a
permanent FDB entry (MAC -> remote VTEP) and a permanent neighbour entry
(IP -> MAC) on the VXLAN device, so ARP is answered by the local kernel and
the first packet already knows where to go (flannel's model, not gossip or
kernel miss notifications). Those entries live in the kernel, so the data path
keeps working while the cluster store is away.

The driver owns kernel objects only. What it needs from above is injected by
the composition root: ``peers(net_id)`` (the remote endpoints known now),
``publish(net, ep, present)`` (write/remove this endpoint's record in the
cluster store) and ``gateway`` (the per-host gateway bridge attachment that
gives each container ``eth<n+1>`` with a default route and NAT, like Docker's
``docker_gwbridge``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from tether.engine.model import Endpoint, Network
from tether.errors import BadRequest, TetherError
from tether.linux.netlink import LinkSpec, Netlink

log = logging.getLogger("tether.overlay")

VXLAN_PORT = 4789
VNI_MIN = 4096
VNI_MAX = (1 << 24) - 1


@dataclass(frozen=True)
class Peer:
    """A remote endpoint as the data path needs it."""

    endpoint_id: str
    ip: str
    mac: str
    vtep: str


class Gateway(Protocol):
    async def attach(self, ep: Endpoint, ns_path: str) -> None: ...

    async def detach(self, ep: Endpoint) -> None: ...


def bridge_name(net: Network) -> str:
    return "tov-" + net.id[:11]


def vxlan_name(net: Network) -> str:
    return "tvx-" + net.id[:11]


def veth_name(ep: Endpoint) -> str:
    return "to" + ep.id[:13]


class OverlayDriver:
    name = "overlay"
    scope = "global"

    def __init__(self, netlink: Netlink, vtep: str) -> None:
        self.nl = netlink
        self.vtep = vtep
        self.peers: Callable[[str], list[Peer]] = lambda _nid: []
        self.publish: Callable[[Network, Endpoint, bool], Awaitable[None]] | None = None
        self.gateway: Gateway | None = None
        self._local: dict[str, set[str]] = {}  # network id -> local endpoint ids joined
        self._programmed: dict[str, dict[str, Peer]] = {}  # network id -> peers in the kernel
        self._lock = asyncio.Lock()

    # ---- network -----------------------------------------------------------
    def validate(self, net: Network) -> None:
        if not 68 <= net.mtu <= 65535:
            raise BadRequest(f"invalid MTU {net.mtu}")
        if not net.pools:
            raise BadRequest("an overlay network needs an address pool")

    async def create(self, net: Network) -> None:
        net.ifname = bridge_name(net)  # the devices themselves come with the first join

    async def restore(self, net: Network) -> None:
        net.ifname = bridge_name(net)

    async def delete(self, net: Network) -> None:
        async with self._lock:
            await self._unwire(net)

    def owned_links(self, net: Network) -> set[str]:
        return {bridge_name(net), vxlan_name(net)}

    def wired(self, net_id: str) -> bool:
        return net_id in self._local

    # ---- data path ---------------------------------------------------------
    async def _wire(self, net: Network) -> None:
        if net.id in self._local:
            return
        if not 0 < net.vni <= VNI_MAX:
            raise BadRequest(f"network {net.name} has no VXLAN id")
        await self.nl.ensure_bridge(bridge_name(net), None, net.mtu)
        await self.nl.ensure_vxlan(
            vxlan_name(net), net.vni, self.vtep, bridge_name(net), net.mtu, VXLAN_PORT
        )
        self._local[net.id] = set()
        self._programmed[net.id] = {}
        for peer in self.peers(net.id):
            await self._program(net, peer, True)

    async def _unwire(self, net: Network) -> None:
        self._local.pop(net.id, None)
        self._programmed.pop(net.id, None)
        await self.nl.delete_link(vxlan_name(net))
        await self.nl.delete_link(bridge_name(net))

    async def _program(self, net: Network, peer: Peer, present: bool) -> None:
        table = self._programmed.setdefault(net.id, {})
        old = table.get(peer.endpoint_id)
        if present and old == peer:
            return
        if old is not None and (not present or old != peer):
            await self.nl.set_fdb(vxlan_name(net), old.mac, old.vtep, False)
            await self.nl.set_neigh(vxlan_name(net), old.ip, old.mac, False)
            table.pop(peer.endpoint_id, None)
        if present:
            await self.nl.set_fdb(vxlan_name(net), peer.mac, peer.vtep, True)
            await self.nl.set_neigh(vxlan_name(net), peer.ip, peer.mac, True)
            table[peer.endpoint_id] = peer

    async def peer_changed(self, net: Network, peer: Peer, present: bool) -> None:
        """A remote endpoint appeared or went away (called from the cluster watch)."""
        if peer.vtep == self.vtep:
            return
        async with self._lock:
            if net.id not in self._local:
                return  # not wired here: programmed when the first local container joins
            await self._program(net, peer, present)

    async def resync(self, net: Network) -> None:
        """Make the kernel entries equal to ``peers(net.id)`` (after a full resync)."""
        async with self._lock:
            if net.id not in self._local:
                return
            want = {p.endpoint_id: p for p in self.peers(net.id) if p.vtep != self.vtep}
            for eid, old in list(self._programmed.get(net.id, {}).items()):
                if eid not in want:
                    await self._program(net, old, False)
            for peer in want.values():
                await self._program(net, peer, True)

    # ---- endpoints ---------------------------------------------------------
    async def join(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        async with self._lock:
            await self._wire(net)
            self._local[net.id].add(ep.id)
        ep.host_ifname = veth_name(ep)
        spec = LinkSpec(
            ns_path=ns_path,
            ifname=ep.ifname,
            mac=ep.mac,
            address=f"{ep.ip}/{ep.prefixlen}",
            gateway=None,  # the default route goes through the gateway bridge (eth<n+1>)
            mtu=net.mtu,
        )
        attached = False
        try:
            await self.nl.add_veth(ep.host_ifname, bridge_name(net), spec)
            if self.gateway is not None and not net.internal:
                await self.gateway.attach(ep, ns_path)
                attached = True
            if self.publish is not None:
                await self.publish(net, ep, True)
        except BaseException:
            if attached and self.gateway is not None:
                await self.gateway.detach(ep)
            await self.nl.delete_link(ep.host_ifname)
            await self._forget_local(net, ep)
            raise

    async def adopt(self, net: Network, ep: Endpoint) -> None:
        """A container that kept running across a daemon restart: count it, re-wire.

        The kernel entries outlived the daemon; those of peers that went away meanwhile are
        removed (the table of what was programmed did not survive, so the device is read).
        """
        async with self._lock:
            if net.id not in self._local:
                await self._wire(net)
                await self._prune_unknown(net)
            self._local[net.id].add(ep.id)

    async def _prune_unknown(self, net: Network) -> None:
        known = self._programmed.get(net.id, {}).values()
        macs = {p.mac.lower() for p in known}
        ips = {p.ip for p in known}
        fdb, neigh = await self.nl.vxlan_entries(vxlan_name(net))
        for mac, dst in fdb.items():
            if mac.lower() not in macs:
                await self.nl.set_fdb(vxlan_name(net), mac, dst, False)
        for ip, mac in neigh.items():
            if ip not in ips:
                await self.nl.set_neigh(vxlan_name(net), ip, mac, False)

    async def leave(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        if ep.host_ifname:
            await self.nl.delete_link(ep.host_ifname)
        if self.gateway is not None:
            await self.gateway.detach(ep)
        if self.publish is not None:
            try:
                await self.publish(net, ep, False)
            except TetherError as exc:  # the store is away: the record is dropped on resync
                log.warning("endpoint %s stays in the cluster store for now: %s", ep.id[:12], exc)
        await self._forget_local(net, ep)

    async def _forget_local(self, net: Network, ep: Endpoint) -> None:
        async with self._lock:
            eps = self._local.get(net.id)
            if eps is None:
                return
            eps.discard(ep.id)
            if not eps:
                await self._unwire(net)
