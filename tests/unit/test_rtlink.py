"""The raw rtnetlink messages of ``tether.linux.rtlink``, decoded by pyroute2's own parsers:
the same fields and attributes pyroute2 (the path they replace) sends."""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from tether.linux import rtlink


def decode(cls: type, kind: int, flags: int, body: bytes) -> object:
    msg = cls(rtlink.message(kind, flags, body, seq=7))
    msg.decode()
    assert msg["header"]["type"] == kind
    assert msg["header"]["sequence_number"] == 7
    return msg


def test_ipv4_address_has_local_and_broadcast() -> None:
    m = decode(ifaddrmsg, rtlink.RTM_NEWADDR, 0, rtlink.addr_body(5, "172.30.0.10/16"))
    assert (m["family"], m["prefixlen"], m["index"], m["flags"]) == (2, 16, 5, 0)
    assert m.get_attr("IFA_LOCAL") == "172.30.0.10"
    assert m.get_attr("IFA_ADDRESS") == "172.30.0.10"
    assert m.get_attr("IFA_BROADCAST") == "172.30.255.255"


def test_ipv6_address_without_dad() -> None:
    m = decode(ifaddrmsg, rtlink.RTM_NEWADDR, 0, rtlink.addr_body(3, "fd00:1::5/64"))
    assert (m["family"], m["prefixlen"], m["index"]) == (10, 64, 3)
    assert m["flags"] & rtlink.IFA_F_NODAD
    assert m.get_attr("IFA_ADDRESS") == "fd00:1::5"
    assert m.get_attr("IFA_BROADCAST") is None


@pytest.mark.parametrize(("gw", "family"), [("172.30.0.1", 2), ("fd00:1::1", 10)])
def test_default_route_as_pyroute2_adds_it(gw: str, family: int) -> None:
    m = decode(rtmsg, rtlink.RTM_NEWROUTE, 0, rtlink.default_route_body(gw, 9))
    # pyroute2's route("add", dst=default, gateway=..., oif=...): static, unicast, main
    assert (m["family"], m["dst_len"], m["table"]) == (family, 0, 254)
    assert (m["proto"], m["scope"], m["type"]) == (4, 0, 1)
    assert m.get_attr("RTA_GATEWAY") == gw
    assert m.get_attr("RTA_OIF") == 9
    assert m.get_attr("RTA_TABLE") == 254


def test_veth_with_its_peer_in_the_namespace() -> None:
    body = rtlink.veth_body("veth1", "eth0", 12, mtu=1450, peer_mac="02:42:ac:1e:00:0a", master=4)
    m = decode(ifinfmsg, rtlink.RTM_NEWLINK, rtlink.NLM_F_CREATE, body)
    assert m.get_attr("IFLA_IFNAME") == "veth1"
    assert m.get_attr("IFLA_MTU") == 1450
    assert m.get_attr("IFLA_MASTER") == 4
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_NET_NS_FD") == 12
    assert peer.get_attr("IFLA_ADDRESS") == "02:42:ac:1e:00:0a"
    assert peer.get_attr("IFLA_MTU") == 1450


def test_up_and_hairpin() -> None:
    up = decode(ifinfmsg, rtlink.RTM_NEWLINK, 0, rtlink.link_up_body(6))
    assert (up["index"], up["flags"], up["change"]) == (6, 1, 1)
    hp = rtlink.hairpin_body(6)
    fam, _typ, idx = struct.unpack_from("BxHi", hp)
    assert (fam, idx) == (socket.AF_BRIDGE, 6)
    # IFLA_PROTINFO, nested (the kernel takes a flat one as the old RSTP state byte)
    length, kind = struct.unpack_from("HH", hp, 16)
    assert kind == rtlink.IFLA_PROTINFO | rtlink.NLA_F_NESTED
    assert struct.unpack_from("HHB", hp, 20) == (5, rtlink.IFLA_BRPORT_MODE, 1)
    assert length == 12


class FakeSock:
    """Acknowledges each message of a write; ``refuse`` maps a step's position to an errno."""

    def __init__(self, refuse: dict[int, int] | None = None) -> None:
        self.refuse = refuse or {}
        self.sent: list[bytes] = []
        self.replies: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        off, out, i = 0, b"", 0
        while off < len(data):
            length, _kind, _flags, seq, _pid = struct.unpack_from("IHHII", data, off)
            err = -self.refuse.get(i, 0)
            out += struct.pack("IHHII", 36, 2, 0x100, seq, 0) + struct.pack("i", err) + bytes(16)
            off += length
            i += 1
        self.replies.append(out)
        return len(data)

    def recv(self, _n: int) -> bytes:
        return self.replies.pop(0)


def test_peer_batch_is_one_write_in_order() -> None:
    sock = FakeSock()
    b = rtlink.peer_batch(2, ["172.30.0.10/16", "fd00::a/64"], ["172.30.0.1"])
    rtlink.run(sock, b)  # type: ignore[arg-type]
    assert len(sock.sent) == 1
    kinds = []
    off = 0
    data = sock.sent[0]
    while off < len(data):
        length, kind, flags, _seq, _pid = struct.unpack_from("IHHII", data, off)
        assert flags & rtlink.NLM_F_ACK
        kinds.append(kind)
        off += length
    addr, link, route = rtlink.RTM_NEWADDR, rtlink.RTM_NEWLINK, rtlink.RTM_NEWROUTE
    assert kinds == [addr, addr, link, route]


def test_a_refusal_names_the_step_and_tolerated_ones_pass() -> None:
    b = rtlink.peer_batch(2, ["172.30.0.10/16"], ["172.30.0.1"])
    rtlink.run(FakeSock({2: errno.EEXIST}), b)  # type: ignore[arg-type]  # the route: fine
    b = rtlink.peer_batch(2, ["172.30.0.10/16"], ["172.30.0.1"])
    with pytest.raises(OSError) as got:
        rtlink.run(FakeSock({0: errno.EADDRNOTAVAIL}), b)  # type: ignore[arg-type]
    assert got.value.errno == errno.EADDRNOTAVAIL
    assert "address 172.30.0.10/16" in str(got.value)


def test_bridge_then_addresses_already_there_and_up() -> None:
    sock = FakeSock()
    rtlink.create_bridge(sock, "tbr-1", 1450)  # type: ignore[arg-type]
    m = ifinfmsg(sock.sent[0])
    m.decode()
    assert m["header"]["flags"] & (rtlink.NLM_F_CREATE | rtlink.NLM_F_EXCL)
    assert m.get_attr("IFLA_IFNAME") == "tbr-1"
    assert m.get_attr("IFLA_MTU") == 1450
    assert m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "bridge"
    # a restart finds the gateway address on the bridge already: not an error
    b = rtlink.addresses_up_batch(4, ["172.30.0.1/16", "fd00::1/64"])
    rtlink.run(FakeSock({0: errno.EEXIST, 1: errno.EEXIST}), b)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        rtlink.run(FakeSock({1: errno.ENODEV}), rtlink.addresses_up_batch(4, ["172.30.0.1/16"]))  # type: ignore[arg-type]
