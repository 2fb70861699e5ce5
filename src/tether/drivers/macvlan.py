"""The macvlan driver: each endpoint is a macvlan sub-interface of a host interface.

``docker network create -d macvlan -o parent=IFACE [-o macvlan_mode=MODE]``:
every container gets its own MAC on the parent's LAN (modes ``bridge``
(default), ``private``, ``vepa``, ``passthru``). The sub-interface is made on
the host and moved into the sandbox as ``eth<n>`` with the endpoint's address;
addresses come from the network's own pool and are unique per host only
(macvlan networks are local scope, as in Docker: give each host a distinct
``--ip-range`` or static ``--ip`` addresses).

One macvlan network per parent interface, never ``lo``, and its subnet may not overlap any
other network's (libnetwork's rules and texts; checked by the network controller, which sees
the other networks).

Parents:

- ``eth0.10`` (a dot and a number) means the 802.1Q sub-interface VLAN 10 of
  ``eth0``; it is created with the network (and removed with it) when missing.
  Kernels without the vlan link type (this one) refuse it with a clear error.
- no parent: an *internal* network. Docker makes a ``dummy`` link as parent;
  this kernel has no dummy type, so tether makes an empty Linux bridge
  (``tmv-<id>``, no address, no ports) and hangs the macvlans off it: the
  containers of the network reach each other (bridge mode) and nothing else.

The kernel rule every macvlan user meets: the host cannot talk to its own
macvlan containers through the parent (frames from a macvlan never go out and
back in through its lower device). The usual fix is a macvlan "shim" on the host
(``ip link add shim link PARENT type macvlan mode bridge`` plus an address and
a route). tether makes one when asked, with the network, and removes it with
the network: ``-o tether.host_shim=IP``, where IP is an address of the subnet
reserved with ``--aux-address`` (so no container gets it); the host gets a
macvlan ``tms-<id>`` in bridge mode on the parent with IP/32 and a route to the
network's ``--ip-range`` (or its subnet) through it.

Dual-stack (``--ipv6 --subnet V6``, issue 18): each endpoint gets its IPv6 address too (no
DAD, no router advertisements taken; see ``PyrouteNetlink._enable_ipv6``) and a default route
through the IPv6 gateway, a router of the parent's LAN as for IPv4; static ``--ip6`` works
as ``--ip``. The host shim stays IPv4.

ipvlan: the driver accepts ``-d ipvlan`` only where the kernel has the type;
here creation fails with "this kernel has no ipvlan support".
"""

from __future__ import annotations

import contextlib
import ipaddress
import re

from tether.contracts.model import Endpoint, Network
from tether.errors import BadRequest, Internal, TetherError
from tether.linux.netlink import LinkSpec, Netlink

MODES = ("bridge", "private", "vepa", "passthru")
OPT_PARENT = "parent"
OPT_MODE = "macvlan_mode"
OPT_SHIM = "tether.host_shim"
VLAN_RE = re.compile(r"^(?P<parent>[^.]+)\.(?P<vid>\d+)$")


def internal_parent(net: Network) -> str:
    return "tmv-" + net.id[:11]


def shim_name(net: Network) -> str:
    return "tms-" + net.id[:11]


def shim_plan(net: Network) -> tuple[str, str] | None:
    """(address, route) of the host shim the network asks for, or None; BadRequest if wrong."""
    raw = net.options.get(OPT_SHIM)
    if raw is None:
        return None
    if not net.options.get(OPT_PARENT):
        raise BadRequest(f"{OPT_SHIM} needs a parent interface (-o parent=IFACE)")
    try:
        ip = ipaddress.IPv4Address(raw)
    except ValueError:
        raise BadRequest(f"invalid {OPT_SHIM} address {raw!r}") from None
    for pool in net.pools:
        if ip in pool.subnet:
            if ip not in pool.aux.values():
                raise BadRequest(
                    f"{OPT_SHIM} address {ip} must be reserved with --aux-address "
                    f"(e.g. --aux-address host={ip}) so that no container gets it"
                )
            return str(ip), str(pool.ip_range or pool.subnet)
    raise BadRequest(f"{OPT_SHIM} address {ip} is not in a subnet of the network")


class MacvlanDriver:
    name = "macvlan"
    scope = "local"
    extra_interfaces = 0
    publishes_ports = False
    restores_endpoints = False
    sandbox_mode = ""

    def __init__(self, netlink: Netlink) -> None:
        self.nl = netlink

    def _parent(self, net: Network) -> str:
        return net.options.get(OPT_PARENT) or internal_parent(net)

    def validate(self, net: Network) -> None:
        shim_plan(net)
        mode = net.options.get(OPT_MODE, "bridge")
        if mode not in MODES:
            raise BadRequest(
                f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan "
                "driver default"
            )
        parent = net.options.get(OPT_PARENT, "")
        if parent and (len(parent) > 15 or "/" in parent or " " in parent):
            raise BadRequest(f"invalid parent interface name {parent!r}")
        m = VLAN_RE.match(parent)
        if m and not 1 <= int(m["vid"]) <= 4094:
            raise BadRequest(f"vlan id out of range: {m['vid']}")
        if not 68 <= net.mtu <= 65535:
            raise BadRequest(f"invalid MTU {net.mtu}")

    async def create(self, net: Network) -> None:
        parent = net.options.get(OPT_PARENT, "")
        if not parent:
            net.ifname = internal_parent(net)
            await self.nl.ensure_bridge(net.ifname, None, net.mtu)
            return
        net.ifname = parent
        if not await self.nl.link_exists(parent):
            m = VLAN_RE.match(parent)
            if m is None:
                raise BadRequest(f"-o parent interface was not found on the host: {parent}")
            if not await self.nl.link_exists(m["parent"]):
                raise BadRequest(f"-o parent interface was not found on the host: {m['parent']}")
            await self.nl.ensure_vlan(parent, m["parent"], int(m["vid"]))
            net.options["tether.created_vlan"] = "true"
        plan = shim_plan(net)
        if plan is not None:
            try:
                await self.nl.ensure_shim(shim_name(net), parent, *plan)
            except BaseException:
                await self.delete(net)  # nothing half-made: the VLAN link we made goes too
                raise

    async def restore(self, net: Network) -> None:
        with contextlib.suppress(TetherError):  # a parent that went away: joins say so
            await self.create(net)

    async def delete(self, net: Network) -> None:
        if net.options.get(OPT_SHIM) is not None:
            await self.nl.delete_link(shim_name(net))
        if not net.options.get(OPT_PARENT):
            await self.nl.delete_link(internal_parent(net))
        elif net.options.get("tether.created_vlan") == "true":
            await self.nl.delete_link(net.options[OPT_PARENT])

    async def join(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        parent = self._parent(net)
        if not await self.nl.link_exists(parent):
            raise Internal(f"parent interface {parent} of network {net.name} is missing")
        spec = LinkSpec(
            ns_path=ns_path,
            ifname=ep.ifname,
            mac=ep.mac,
            address=f"{ep.ip}/{ep.prefixlen}",
            gateway=ep.gateway or None,
            mtu=net.mtu,
            address6=f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else None,
            gateway6=ep.gateway6 or None,
            link_local=ep.link_local(),
        )
        await self.nl.add_macvlan(parent, net.options.get(OPT_MODE, "bridge"), spec)

    async def leave(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        # The sub-interface lives in the sandbox: it dies with a torn-down sandbox (ns_path ""),
        # and is deleted there when the sandbox lives on.
        if ns_path:
            await self.nl.delete_link(ep.ifname, ns_path)

    def owned_links(self, net: Network) -> set[str]:
        if not net.options.get(OPT_PARENT):
            return {internal_parent(net)}
        owned = {shim_name(net)} if net.options.get(OPT_SHIM) is not None else set()
        if net.options.get("tether.created_vlan") == "true":
            owned.add(net.options[OPT_PARENT])
        return owned


class IpvlanDriver(MacvlanDriver):
    """``-d ipvlan``: refused with a clear error on kernels without the ipvlan type."""

    name = "ipvlan"

    def validate(self, net: Network) -> None:
        raise BadRequest(
            "ipvlan networks cannot be created: this kernel has no ipvlan support "
            "(link type ipvlan: Operation not supported)"
        )
