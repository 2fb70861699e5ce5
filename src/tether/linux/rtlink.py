"""Raw rtnetlink for a container's endpoint: the veth pair and the peer's configuration.

A container start made its endpoint with pyroute2: six requests on the host socket (two
lookups, the veth, master and up, the hairpin flag) and, for the peer, a second pyroute2
socket made in the sandbox with its setup, a lookup, the addresses, up and the route; each
request ~0.3–0.5 ms of Python around the kernel's work. Here the same messages are packed
with ``struct`` (what ``ip``/pyroute2 send: the same header fields and attributes) and
written in batches on plain netlink sockets, the acknowledgements read back by sequence
number: the peer's whole configuration is one write.

Builders return one message (bytes, its sequence number is set by :class:`Batch`);
:func:`run` sends a batch and raises the first refusal as ``OSError`` with the kernel's errno
and the step's name (a step may name errnos it tolerates, e.g. ``EEXIST`` for a default route
an earlier endpoint gave). Nothing here knows asyncio: callers run it on a thread of theirs.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

NETLINK_ROUTE = 0
# message types
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
# header flags
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
NLA_F_NESTED = 0x8000
IFF_UP = 0x1
AF_BRIDGE = 7
# address attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
# route fields and attributes
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1

_HDR = struct.Struct("IHHII")  # struct nlmsghdr
_IFINFO = struct.Struct("BxHiII")  # struct ifinfomsg
_IFADDR = struct.Struct("BBBBI")  # struct ifaddrmsg
_RTMSG = struct.Struct("BBBBBBBBI")  # struct rtmsg


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = struct.pack("HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _str(value: str) -> bytes:
    return value.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("I", value)


def _mac(value: str) -> bytes:
    return bytes(int(x, 16) for x in value.split(":"))


def _ip(value: str) -> tuple[int, bytes]:
    addr = ipaddress.ip_address(value)
    return (socket.AF_INET if addr.version == 4 else socket.AF_INET6), addr.packed


def message(kind: int, flags: int, body: bytes, seq: int = 0) -> bytes:
    return _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


# ---- builders (bodies; :class:`Batch` wraps them in headers) ------------------------------
def veth_body(
    name: str,
    peer: str,
    peer_ns_fd: int,
    *,
    mtu: int,
    peer_mac: str | None = None,
    master: int = 0,
) -> bytes:
    """``ip link add NAME mtu M [master BR] type veth peer name PEER netns FD address MAC
    mtu M``: the peer is made in its namespace under its final name (no move: ~19 ms)."""
    peer_attrs = attr(IFLA_IFNAME, _str(peer)) + attr(IFLA_NET_NS_FD, _u32(peer_ns_fd))
    if peer_mac:
        peer_attrs += attr(IFLA_ADDRESS, _mac(peer_mac))
    peer_attrs += attr(IFLA_MTU, _u32(mtu))
    info = attr(IFLA_INFO_KIND, _str("veth")) + attr(
        IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs)
    )
    body = ifinfo() + attr(IFLA_IFNAME, _str(name)) + attr(IFLA_MTU, _u32(mtu))
    if master:
        body += attr(IFLA_MASTER, _u32(master))
    return body + attr(IFLA_LINKINFO, info)


def link_up_body(index: int) -> bytes:
    """``ip link set dev INDEX up``."""
    return ifinfo(index, IFF_UP, IFF_UP)


def hairpin_body(index: int) -> bytes:
    """``bridge link set dev INDEX hairpin on`` (``RTM_SETLINK`` of the bridge family)."""
    mode = attr(IFLA_BRPORT_MODE, b"\x01")
    return ifinfo(index, family=AF_BRIDGE) + attr(IFLA_PROTINFO | NLA_F_NESTED, mode)


def getlink_body(name: str) -> bytes:
    return ifinfo() + attr(IFLA_IFNAME, _str(name))


def addr_body(index: int, cidr: str) -> bytes:
    """``ip addr add CIDR dev INDEX``: IPv4 with its local and broadcast addresses (as
    Docker's endpoints: ``brd``), IPv6 without duplicate address detection (``nodad``)."""
    iface = ipaddress.ip_interface(cidr)
    family, packed = _ip(str(iface.ip))
    if family == socket.AF_INET:
        brd = iface.network.broadcast_address.packed
        head = _IFADDR.pack(family, iface.network.prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed) + attr(IFA_BROADCAST, brd)
        return head + attrs
    head = _IFADDR.pack(family, iface.network.prefixlen, IFA_F_NODAD, RT_SCOPE_UNIVERSE, index)
    return head + attr(IFA_ADDRESS, packed)


def default_route_body(gateway: str, oif: int) -> bytes:
    """``ip route add default via GATEWAY dev OIF proto static`` (IPv4 or IPv6)."""
    family, packed = _ip(gateway)
    head = _RTMSG.pack(
        family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
    )
    return (
        head
        + attr(RTA_TABLE, _u32(RT_TABLE_MAIN))
        + attr(RTA_GATEWAY, packed)
        + attr(RTA_OIF, _u32(oif))
    )


# ---- sending ---------------------------------------------------------------------------------
@dataclass
class _Step:
    seq: int
    what: str
    tolerate: frozenset[int]


@dataclass
class Batch:
    """Messages sent in one write; each asks for an acknowledgement."""

    first_seq: int = 1
    data: list[bytes] = field(default_factory=list)
    steps: list[_Step] = field(default_factory=list)

    def add(
        self, what: str, kind: int, flags: int, body: bytes, tolerate: Iterable[int] = ()
    ) -> None:
        seq = self.first_seq + len(self.steps)
        self.data.append(message(kind, flags | NLM_F_REQUEST | NLM_F_ACK, body, seq))
        self.steps.append(_Step(seq, what, frozenset(tolerate)))


def open_route_socket() -> socket.socket:
    """An rtnetlink socket in the calling thread's network namespace (10 s timeout)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.settimeout(10.0)
    return sock


def run(sock: socket.socket, batch: Batch) -> None:
    """Send ``batch`` (one write) and wait for every acknowledgement; the first refusal not
    tolerated is raised (``OSError(errno, "STEP: strerror")``) after all were read."""
    if not batch.steps:
        return
    sock.send(b"".join(batch.data))
    pending = {s.seq: s for s in batch.steps}
    first: OSError | None = None
    while pending:
        for seq, code in _acks(sock.recv(65536)):
            step = pending.pop(seq, None)
            if step is None or code == 0 or -code in step.tolerate:
                continue
            if first is None:
                first = OSError(-code, f"{step.what}: {os.strerror(-code)}")
    if first is not None:
        raise first


def replies(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The netlink messages in one datagram, as (type, sequence, payload)."""
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size:
            break
        yield kind, seq, data[off + _HDR.size : off + length]
        off += (length + 3) & ~3


def _acks(data: bytes) -> list[tuple[int, int]]:
    """(sequence, error) of each NLMSG_ERROR in a datagram (error 0: the acknowledgement)."""
    return [
        (seq, struct.unpack_from("i", payload)[0])
        for kind, seq, payload in replies(data)
        if kind == NLMSG_ERROR
    ]


def link_index(sock: socket.socket, name: str, seq: int = 0x7F000000) -> int | None:
    """The index of ``name`` in the socket's namespace (None: no such link)."""
    sock.send(message(RTM_GETLINK, NLM_F_REQUEST, getlink_body(name), seq))
    while True:
        for kind, got, payload in replies(sock.recv(65536)):
            if got != seq:
                continue
            if kind == RTM_NEWLINK:
                return int(_IFINFO.unpack_from(payload)[2])
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("i", payload)[0]
                if code in (errno_mod.ENODEV, errno_mod.ENOENT):
                    return None
                raise OSError(code, f"lookup of {name}: {os.strerror(code)}")


# ---- an endpoint ---------------------------------------------------------------------------
def peer_batch(index: int, addresses: Iterable[str], gateways: Iterable[str]) -> Batch:
    """The peer's configuration in one batch: its addresses, up, then the default routes
    (``EEXIST``: an earlier endpoint of the sandbox gives it already)."""
    b = Batch()
    for cidr in addresses:
        b.add(f"address {cidr}", RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, addr_body(index, cidr))
    b.add("link up", RTM_NEWLINK, 0, link_up_body(index))
    for gw in gateways:
        b.add(
            f"default route via {gw}",
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            default_route_body(gw, index),
            tolerate=(errno_mod.EEXIST,),
        )
    return b


def create_veth(
    sock: socket.socket,
    name: str,
    peer: str,
    peer_ns_path: str,
    *,
    mtu: int,
    peer_mac: str | None,
    master: int,
) -> None:
    """The pair, ``name`` (down, on ``master``) in the socket's namespace, ``peer`` in the
    namespace at ``peer_ns_path``."""
    fd = os.open(peer_ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        b = Batch()
        body = veth_body(name, peer, fd, mtu=mtu, peer_mac=peer_mac, master=master)
        b.add(f"veth {name}", RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)
        run(sock, b)
    finally:
        os.close(fd)


def delete_link(sock: socket.socket, name: str) -> None:
    """``ip link del NAME`` on ``sock`` (blocking: the kernel answers once the link is
    unregistered, ~40 ms for a bridge); ``OSError`` with the kernel's errno."""
    b = Batch()
    b.add(f"delete {name}", RTM_DELLINK, 0, getlink_body(name))
    run(sock, b)


def dellink_by_name(name: str) -> None:
    """:func:`delete_link` on a socket of its own in the calling thread's namespace."""
    with open_route_socket() as sock:
        delete_link(sock, name)


def create_bridge(sock: socket.socket, name: str, mtu: int) -> None:
    """``ip link add NAME mtu M type bridge`` (down)."""
    body = ifinfo() + attr(IFLA_IFNAME, _str(name)) + attr(IFLA_MTU, _u32(mtu))
    body += attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, _str("bridge")))
    b = Batch()
    b.add(f"bridge {name}", RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)
    run(sock, b)


def addresses_up_batch(index: int, addresses: Iterable[str]) -> Batch:
    """Each address (one already there is no error), then the link up."""
    b = Batch()
    for cidr in addresses:
        b.add(
            f"address {cidr}",
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            addr_body(index, cidr),
            tolerate=(errno_mod.EEXIST,),
        )
    b.add("link up", RTM_NEWLINK, 0, link_up_body(index))
    return b


def port_up(sock: socket.socket, index: int, hairpin: bool) -> None:
    """The bridge port up (and in hairpin mode: a frame may leave through the port it came
    in on, so a container reaches its own published port through a host address)."""
    b = Batch()
    b.add("link up", RTM_NEWLINK, 0, link_up_body(index))
    if hairpin:
        b.add("hairpin", RTM_SETLINK, 0, hairpin_body(index))
    run(sock, b)
