"""Sockets created inside another network namespace, without moving a daemon thread.

A socket belongs to the network namespace it was created in, for its whole life, whichever
thread later uses it. So the daemon can serve a container's 127.0.0.11:53 from its own asyncio
loop (and talk netlink to a sandbox from its netlink thread): it only needs the socket to be
*created* (and bound) inside the container's namespace. That is done by the dedicated
namespace thread of :mod:`tether.linux.nsthread` (no other daemon thread changes namespace);
this module is the small API the rest of the daemon uses.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from tether.linux.nsthread import IP_FREEBIND, SocketSpec, default

__all__ = [
    "IP_FREEBIND",
    "SocketSpec",
    "netlink_socket_in_netns",
    "open_sockets_in_netns",
    "socket_in_netns",
    "sockets_in_netns",
]

NETLINK_ROUTE = 0


def socket_in_netns(
    ns_path: str,
    family: int,
    type: int,  # mirrors socket.socket()
    bind: tuple[object, ...],
    *,
    freebind: bool = False,
    reuseaddr: bool = False,
) -> socket.socket:
    """Create a socket inside the network namespace at ``ns_path`` and bind it to ``bind``.

    Returns a blocking socket owned by the caller; it lives in that namespace for good.
    Raises ``OSError`` (with the failing step's errno) when the namespace cannot be joined or
    the socket cannot be created or bound; ``FileNotFoundError`` when ``ns_path`` does not
    exist.
    """
    spec = SocketSpec(family, type, bind, freebind=freebind, reuseaddr=reuseaddr)
    return sockets_in_netns(ns_path, [spec])[0]


def sockets_in_netns(ns_path: str, specs: Sequence[SocketSpec]) -> list[socket.socket]:
    """Create several sockets inside one namespace in one job of the namespace thread."""
    return default().sockets_in_netns(ns_path, specs)


async def open_sockets_in_netns(ns_path: str, specs: Sequence[SocketSpec]) -> list[socket.socket]:
    """:func:`sockets_in_netns` for a coroutine: the loop waits on the job's future, no thread."""
    return await asyncio.wrap_future(default().submit_sockets(ns_path, specs))


def netlink_socket_in_netns(ns_path: str) -> socket.socket:
    """An rtnetlink socket (unbound; it autobinds) that talks to the namespace at ``ns_path``."""
    spec = SocketSpec(socket.AF_NETLINK, socket.SOCK_DGRAM, None, proto=NETLINK_ROUTE)
    return sockets_in_netns(ns_path, [spec])[0]
