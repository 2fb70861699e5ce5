"""The lab's links, addresses and routes over netlink (pyroute2), not the ``ip`` command.

Each call opens an rtnetlink socket inside the named namespace (made there by the
namespace thread, :func:`tether.linux.nsock.netlink_socket_in_netns`, as the daemon does for
a sandbox; no process is forked and no thread of ours changes namespace), sends the
request ``ip`` would send for the same command line, and closes the socket. What each
function stands for is in its docstring, as the ``ip -n NETNS ...`` line it replaces.
A failure is a :class:`LabError` naming the step and the kernel's error.

Namespaces themselves are still made and removed by ``ip netns add``/``delete``, and
commands run inside them through ``nsenter``: see :mod:`tether.lab.system` for why.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import Any

from tether.lab import naming
from tether.lab.errors import LabError
from tether.linux.nsock import netlink_socket_in_netns

RTPROT_BOOT = 3  # what `ip route add` sets (pyroute2's own default is "static")


@contextlib.contextmanager
def _route(netns: str, what: str) -> Iterator[Any]:
    """A sync pyroute2 ``IPRoute`` talking to ``netns``; errors become a LabError."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        sock = netlink_socket_in_netns(naming.netns_path(netns))
    except OSError as exc:
        raise LabError(f"{what} in {netns}: cannot open netlink: {exc}") from exc
    try:
        ipr = IPRoute(fileno=sock.detach())
    except (OSError, NetlinkError) as exc:
        raise LabError(f"{what} in {netns}: {exc}") from exc
    try:
        yield ipr
    except (OSError, NetlinkError) as exc:
        raise LabError(f"{what} in {netns}: {exc}") from exc
    finally:
        ipr.close()


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise OSError(errno.ENODEV, f'cannot find device "{ifname}"')
    return int(found[0])


def link_up(netns: str, ifname: str) -> None:
    """``ip -n NETNS link set IFNAME up``."""
    with _route(netns, f"set {ifname} up") as ipr:
        ipr.link("set", index=_index(ipr, ifname), state="up")


def add_bridge(netns: str, name: str) -> None:
    """``ip -n NETNS link add NAME type bridge`` (fails if NAME exists)."""
    with _route(netns, f"add bridge {name}") as ipr:
        ipr.link("add", ifname=name, kind="bridge")


def add_address(netns: str, ifname: str, cidr: str, replace: bool = False) -> None:
    """``ip -n NETNS addr add CIDR dev IFNAME`` (``addr replace`` with ``replace``)."""
    address, _, prefix = cidr.partition("/")
    verb = "replace" if replace else "add"
    with _route(netns, f"{verb} address {cidr} on {ifname}") as ipr:
        ipr.addr(verb, index=_index(ipr, ifname), address=address, prefixlen=int(prefix))


def add_veth(netns: str, name: str, peer: str, peer_netns: str) -> None:
    """``ip -n NETNS link add NAME type veth peer name PEER netns PEER_NETNS``."""
    with _route(netns, f"add veth {name}") as ipr:
        ipr.link(
            "add",
            ifname=name,
            kind="veth",
            peer={"ifname": peer, "net_ns_fd": naming.netns_path(peer_netns)},
        )


def set_master_up(netns: str, ifname: str, master: str) -> None:
    """``ip -n NETNS link set IFNAME master MASTER up``."""
    with _route(netns, f"put {ifname} on {master}") as ipr:
        ipr.link("set", index=_index(ipr, ifname), master=_index(ipr, master), state="up")


def add_default_route(netns: str, gateway: str) -> None:
    """``ip -n NETNS route add default via GATEWAY``."""
    with _route(netns, f"add default route via {gateway}") as ipr:
        ipr.route("add", dst="0.0.0.0/0", gateway=gateway, proto=RTPROT_BOOT)


def delete_link(netns: str, ifname: str) -> None:
    """``ip -n NETNS link del IFNAME``, best effort: never raises (a missing link is fine)."""
    with contextlib.suppress(LabError), _route(netns, f"delete {ifname}") as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            ipr.link("del", index=found[0])
