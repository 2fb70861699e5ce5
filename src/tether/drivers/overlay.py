"""The overlay driver: one L2 segment across hosts, carried in VXLAN.

Per host and network the data path is a Linux bridge (``tov-<id>``) with a
VXLAN device (``tvx-<id>``: UDP 4789, the network's VNI, ``local`` = this
host's advertise address, learning off, ARP proxy on) as one of its ports; each
local container is a veth pair from its ``eth<n>`` (MTU 1450) to that bridge.
The pair of devices is made when the first local container joins and removed
with the last one.

Both live in a network namespace of the network's own (``<exec-root>/overlay/<id>``,
:class:`NetnsSpaces`), as in Docker's overlay driver: the VXLAN device is made in the
daemon's namespace and moved there, so its UDP socket stays on the host's underlay. The
reason is br_netfilter: where it is on (Docker sets ``bridge-nf-call-iptables=1``, and a
fresh namespace starts with it on), every frame a bridge forwards goes through the IP
hooks (conntrack, the host's nftables chains), ~13 % of the CPU of an overlay transfer
measured here; the setting is per namespace, and a bridge can only turn it on, not off,
so the overlay's namespace sets it to 0 (bench/FINDINGS.md: +12 % throughput on a
CPU-bound lab). A network wired by an older tether in the host namespace (its bridge is
there) stays there until its last local container leaves.

Nothing is learnt from the wire: for every *remote* endpoint of the network
the cluster view calls :meth:`OverlayDriver.peers_changed` (in batches, coalesced
from the watch: ``tether.engine.cluster_batch``), which programs a permanent FDB
entry (MAC -> remote VTEP) and a permanent neighbour entry (IP -> MAC) on the
VXLAN device, so ARP is answered by the local kernel and the first packet already
knows where to go (flannel's model, not gossip or kernel miss notifications). Only
on a network wired here (with a local endpoint); a batch is one netlink batch
(``Netlink.set_entries``). Those entries live in the kernel, so the data path
keeps working while the cluster store is away.

The driver owns kernel objects only. What it needs from above is given at
construction, typed by the Protocols of :mod:`tether.contracts.cluster`:
``peers(net_id)`` (the remote endpoints known now), ``publish(net, ep, present)``
(write/remove this endpoint's record in the cluster store), ``gateway`` (the
per-host gateway bridge attachment that gives each container ``eth<n+1>`` with a
default route and NAT, like Docker's ``docker_gwbridge``) and ``spaces`` (the
networks' namespaces).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from tether.contracts.cluster import (
    VNI_MAX,
    EndpointPublisher,
    Gateway,
    Peer,
    PeerSource,
    Spaces,
    requested_vni,
)
from tether.contracts.model import Endpoint, Network, check_mtu
from tether.errors import BadRequest, Internal, TetherError
from tether.linux import nsthread
from tether.linux.netlink import LinkSpec, Netlink, VxlanEntry
from tether.linux.netns import NetnsDir

log = logging.getLogger("tether.overlay")

VXLAN_PORT = 4789


BR_NF_KEYS = (
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
)


class NetnsSpaces:
    """:class:`Spaces` as namespace files in a folder of their own, br_netfilter off in each."""

    def __init__(self, folder: NetnsDir) -> None:
        self.folder = folder

    async def ensure(self, net_id: str) -> str:
        path = await self.folder.create(net_id[:12])
        try:
            for key in BR_NF_KEYS:
                await asyncio.wrap_future(nsthread.default().submit_sysctl(path, key, "0"))
        except OSError as exc:
            self.folder.delete(net_id[:12])
            raise Internal(f"cannot prepare the overlay namespace {path}: {exc}") from exc
        return path

    def delete(self, net_id: str) -> None:
        self.folder.delete(net_id[:12])

    def list(self) -> list[str]:
        return self.folder.list()


def bridge_name(net: Network) -> str:
    return "tov-" + net.id[:11]


def vxlan_name(net: Network) -> str:
    return "tvx-" + net.id[:11]


def veth_name(ep: Endpoint) -> str:
    return "to" + ep.id[:13]


def _entries(peer: Peer, present: bool) -> list[VxlanEntry]:
    """A remote endpoint's FDB entry (MAC -> VTEP) and neighbour entries (IP -> MAC; the IPv6
    one on a dual-stack network: the VXLAN proxy answers NDP from it)."""
    out = [VxlanEntry("fdb", peer.mac, peer.vtep, present)]
    out += [VxlanEntry("neigh", peer.mac, ip, present) for ip in (peer.ip, peer.ip6) if ip]
    return out


def _held(entry: VxlanEntry, macs: set[str], ips: set[str]) -> bool:
    """Whether an entry belongs to one of the endpoints (their ``macs`` and ``ips``)."""
    return entry.mac.lower() in macs if entry.table == "fdb" else entry.dst in ips


def _clash(a: Peer, b: Peer) -> bool:
    """Two endpoints with the same MAC or a same address (their kernel entries collide)."""
    return a.mac.lower() == b.mac.lower() or bool({a.ip, a.ip6} & {b.ip, b.ip6} - {""})


class OverlayDriver:
    name = "overlay"
    scope = "global"
    extra_interfaces = 1  # the gateway eth<n+1> (not on an internal network)
    publishes_ports = False
    restores_endpoints = False
    sandbox_mode = ""

    def __init__(
        self,
        netlink: Netlink,
        vtep: str,
        *,
        peers: PeerSource,
        publish: EndpointPublisher | None = None,
        gateway: Gateway | None = None,
        spaces: Spaces | None = None,
    ) -> None:
        self.nl = netlink
        self.vtep = vtep
        self.peers = peers
        self.publish = publish
        self.gateway = gateway  # None: no eth<n+1> (tests)
        self.spaces = spaces  # None: the devices live in the daemon's namespace
        self._ns: dict[str, str | None] = {}  # network id -> namespace of its devices
        self._local: dict[str, set[str]] = {}  # network id -> local endpoint ids joined
        self._programmed: dict[str, dict[str, Peer]] = {}  # network id -> peers in the kernel
        self._lock = asyncio.Lock()

    # ---- network -----------------------------------------------------------
    def validate(self, net: Network) -> None:
        check_mtu(net)
        requested_vni(net)
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

    def device_names(self, net: Network) -> dict[str, str]:
        """The network's devices by role (the topology; a record from the cluster store
        carries no ``ifname``)."""
        return {"bridge": bridge_name(net), "vxlan": vxlan_name(net)}

    def namespace_of(self, net_id: str) -> str | None:
        """Where the network's bridge and VXLAN device live (None: the daemon's namespace)."""
        return self._ns.get(net_id)

    # ---- data path ---------------------------------------------------------
    async def _wire(self, net: Network) -> None:
        if net.id in self._local:
            return
        if not 0 < net.vni <= VNI_MAX:
            raise BadRequest(f"network {net.name} has no VXLAN id")
        ns: str | None = None
        if self.spaces is not None and not await self.nl.link_exists(bridge_name(net)):
            ns = await self.spaces.ensure(net.id)
        try:
            await self.nl.ensure_bridge(bridge_name(net), None, net.mtu, ns_path=ns)
            await self.nl.ensure_vxlan(
                vxlan_name(net), net.vni, self.vtep, bridge_name(net), net.mtu, VXLAN_PORT,
                ns_path=ns,
            )  # fmt: skip
            if net.dual_stack and ns is not None:
                await self._ipv6_on(vxlan_name(net), ns)
        except BaseException:
            await self._drop(net, ns)
            raise
        self._ns[net.id] = ns
        self._local[net.id] = set()
        self._programmed[net.id] = {}
        # catching up: every remote endpoint known now, in one batch; if that fails nothing
        # stays wired (a network wired without its peers would never catch up: the next
        # join finds it wired)
        try:
            await self._program(
                net, {p.endpoint_id: p for p in self.peers(net.id) if p.vtep != self.vtep}
            )
        except BaseException:
            await self._unwire(net)
            raise

    @staticmethod
    async def _ipv6_on(ifname: str, ns: str) -> None:
        """IPv6 on the VXLAN device of a dual-stack network (off in the network's namespace
        otherwise): the kernel takes IPv6 neighbour entries only on a device with IPv6 on, and
        the device's proxy answers neighbour solicitations from them. No DAD, no RA."""
        for name, value in (("accept_dad", "0"), ("accept_ra", "0"), ("disable_ipv6", "0")):
            key = f"net/ipv6/conf/{ifname}/{name}"
            if not await asyncio.wrap_future(nsthread.default().submit_sysctl(ns, key, value)):
                raise Internal(f"cannot enable IPv6 on {ifname}: no {key}")

    async def _unwire(self, net: Network) -> None:
        self._local.pop(net.id, None)
        self._programmed.pop(net.id, None)
        await self._drop(net, self._ns.pop(net.id, None))

    async def _drop(self, net: Network, ns: str | None) -> None:
        """Delete the network's devices in ``ns`` (None: the daemon's namespace, where an
        older tether made them), then that namespace. The devices go first, not with the
        namespace's (asynchronous) destruction: a rewiring makes a VXLAN device with the same
        id and port at once."""
        await self.nl.delete_link(vxlan_name(net), ns)
        await self.nl.delete_link(bridge_name(net), ns)
        if ns is not None and self.spaces is not None:
            self.spaces.delete(net.id)

    async def sweep(self) -> None:
        """Remove the namespaces of networks no local container uses (after a restart's
        adoption: their containers died or the network went while the daemon was away)."""
        if self.spaces is None:
            return
        async with self._lock:
            wired = {nid[:12] for nid in self._local}
            for name in self.spaces.list():
                if name not in wired:
                    self.spaces.delete(name)

    async def _program(self, net: Network, changes: Mapping[str, Peer | None]) -> None:
        """Make the kernel entries of the endpoints in ``changes`` (endpoint id -> the peer
        now, None: gone) equal to it, in one netlink batch: every removal first (an address
        or MAC can pass from a gone endpoint to a new one in the same batch), then the new
        entries. The table of what is programmed changes only once the batch succeeded.

        An address can also pass to an endpoint that came in an earlier batch (the gone one's
        delete was held back while the store was away): a neighbour entry is keyed by the
        address, so an entry that an endpoint holds after the batch is not removed, and the
        entries of an endpoint at a gone one's address or MAC are written again."""
        table = self._programmed.setdefault(net.id, {})
        gone: list[Peer] = []
        add: list[VxlanEntry] = []
        for eid, peer in changes.items():
            old = table.get(eid)
            if old == peer:
                continue
            if old is not None:
                gone.append(old)
            if peer is not None:
                add += _entries(peer, True)
        held = [p for p in {**table, **changes}.values() if p is not None]
        macs = {p.mac.lower() for p in held}
        ips = {ip for p in held for ip in (p.ip, p.ip6) if ip}
        drop = [e for old in gone for e in _entries(old, False) if not _held(e, macs, ips)]
        for eid, p in table.items():
            if eid not in changes and any(_clash(p, old) for old in gone):
                add += _entries(p, True)
        if drop or add:
            await self.nl.set_entries(vxlan_name(net), drop + add, ns_path=self._ns.get(net.id))
        for eid, peer in changes.items():
            if peer is None:
                table.pop(eid, None)
            else:
                table[eid] = peer

    async def peer_changed(self, net: Network, peer: Peer, present: bool) -> None:
        """A remote endpoint appeared or went away (one: see :meth:`peers_changed`)."""
        await self.peers_changed(net, {peer.endpoint_id: peer if present else None})

    async def peers_changed(self, net: Network, changes: Mapping[str, Peer | None]) -> None:
        """Remote endpoints appeared, changed or went away (endpoint id -> the peer now, None:
        gone), applied as one batch. Only on a network wired here, that is with a local
        endpoint: the others' entries are programmed when the first local container joins
        (from ``peers``, in one batch too), and go with the devices when the last one leaves."""
        want = {eid: p for eid, p in changes.items() if p is None or p.vtep != self.vtep}
        async with self._lock:
            if net.id not in self._local or not want:
                return
            await self._program(net, want)

    async def resync(self, net: Network) -> None:
        """Make the kernel entries equal to ``peers(net.id)`` (after a full resync)."""
        async with self._lock:
            if net.id not in self._local:
                return
            want: dict[str, Peer | None] = {
                p.endpoint_id: p for p in self.peers(net.id) if p.vtep != self.vtep
            }
            for eid in self._programmed.get(net.id, {}):
                want.setdefault(eid, None)
            await self._program(net, want)

    # ---- endpoints ---------------------------------------------------------
    async def endpoint_changed(self, net: Network, ep: Endpoint) -> None:
        """A local endpoint's record changed (its container was renamed): write it again."""
        if self.publish is not None and net.id in self._local:
            await self.publish(net, ep, True)

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
            # dual-stack: on-link IPv6 between the network's containers (no IPv6 gateway:
            # the gateway bridge is IPv4-only)
            address6=f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else None,
            link_local=ep.link_local(),
        )
        attached = False
        try:
            await self.nl.add_veth(
                ep.host_ifname, bridge_name(net), spec, bridge_ns=self._ns.get(net.id)
            )
            if self.gateway is not None and not net.internal:
                await self.gateway.attach(ep, ns_path)
                attached = True
            if self.publish is not None:
                await self.publish(net, ep, True)
        except BaseException:
            if attached and self.gateway is not None:
                await self.gateway.detach(ep)
            await self.nl.delete_link(ep.host_ifname, self._ns.get(net.id))
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
        ips = {p.ip for p in known} | {p.ip6 for p in known if p.ip6}
        ns = self._ns.get(net.id)
        fdb, neigh = await self.nl.vxlan_entries(vxlan_name(net), ns_path=ns)
        stale = [VxlanEntry("fdb", mac, dst, False) for mac, dst in fdb.items()
                 if mac.lower() not in macs]  # fmt: skip
        stale += [VxlanEntry("neigh", mac, ip, False) for ip, mac in neigh.items() if ip not in ips]
        await self.nl.set_entries(vxlan_name(net), stale, ns_path=ns)

    async def leave(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        if ep.host_ifname:
            await self.nl.delete_link(ep.host_ifname, self._ns.get(net.id))
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
