"""The netlink batch of FDB/neighbour entries against a fake rtnetlink socket (no root)."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from tether.linux import neighbatch as nb
from tether.linux import rtlink
from tether.linux.neighbatch import VxlanEntry

IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change


class FakeSock:
    """Answers RTM_GETLINK with link ``index`` (or ENODEV) and every neighbour request with
    an acknowledgement carrying ``errors.get(n)`` for the n-th entry (0: success)."""

    def __init__(self, index: int | None = 7, errors: dict[int, int] | None = None) -> None:
        self.index = index
        self.errors = errors or {}
        self.sent: list[bytes] = []
        self.inbox: list[bytes] = []
        self.entries = 0

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        off = 0
        while off < len(data):
            length, kind, flags, seq, _ = nb.HDR.unpack_from(data, off)
            if kind == rtlink.RTM_GETLINK:
                if self.index is None:
                    self.inbox.append(self._ack(seq, -errno.ENODEV))
                else:
                    info = IFINFO.pack(0, 0, self.index, 0, 0)
                    head = nb.HDR.pack(16 + len(info), rtlink.RTM_NEWLINK, 0, seq, 0)
                    self.inbox.append(head + info)
            else:
                assert flags & nb.NLM_F_ACK
                self.inbox.append(self._ack(seq, -self.errors.get(self.entries, 0)))
                self.entries += 1
            off += length
        return len(data)

    @staticmethod
    def _ack(seq: int, code: int) -> bytes:
        body = struct.pack("=i", code) + nb.HDR.pack(16, 0, 0, seq, 0)
        return nb.HDR.pack(16 + len(body), nb.NLMSG_ERROR, 0, seq, 0) + body

    def recv(self, size: int) -> bytes:
        return self.inbox.pop(0)  # one datagram per read, as netlink gives them


def entries(n: int, present: bool = True) -> list[VxlanEntry]:
    out = []
    for i in range(n):
        mac = f"02:42:0a:4d:{i >> 8:02x}:{i & 255:02x}"
        out.append(VxlanEntry("fdb", mac, "198.18.0.12", present))
        out.append(VxlanEntry("neigh", mac, f"10.77.{i >> 8}.{i & 255}", present))
    return out


def test_messages_carry_the_entry() -> None:
    fdb = nb.neigh_message(7, VxlanEntry("fdb", "02:42:0a:4d:00:09", "198.18.0.12", True), 5)
    length, kind, flags, seq, _ = nb.HDR.unpack_from(fdb)
    assert (length, kind, seq) == (len(fdb), nb.RTM_NEWNEIGH, 5)
    assert flags & nb.NLM_F_REPLACE and flags & nb.NLM_F_CREATE
    family, index, state, ntf, _ = nb.NDMSG.unpack_from(fdb, nb.HDR.size)
    assert (family, index, state, ntf) == (nb.AF_BRIDGE, 7, nb.NUD_PERMANENT, nb.NTF_SELF)
    assert socket.inet_aton("198.18.0.12") in fdb and bytes.fromhex("02420a4d0009") in fdb
    gone = nb.neigh_message(7, VxlanEntry("neigh", "02:42:0a:4d:00:09", "fd00::9", False), 6)
    assert nb.HDR.unpack_from(gone)[1] == nb.RTM_DELNEIGH
    assert nb.NDMSG.unpack_from(gone, nb.HDR.size)[0] == socket.AF_INET6


def test_a_batch_is_one_lookup_and_few_writes() -> None:
    sock = FakeSock()
    assert nb.apply(sock, "tvx-x", entries(300))  # type: ignore[arg-type]
    assert sock.entries == 600
    assert len(sock.sent) == 1 + -(-600 // nb.CHUNK)  # the lookup, then 128 messages a write


def test_a_missing_device_is_not_an_error_nor_a_gone_entry() -> None:
    assert not nb.apply(FakeSock(index=None), "tvx-x", entries(2))  # type: ignore[arg-type]
    sock = FakeSock(errors={0: errno.ENOENT})
    assert nb.apply(sock, "tvx-x", entries(2, present=False))  # type: ignore[arg-type]


def test_the_first_refused_entry_is_raised_after_all_were_tried() -> None:
    sock = FakeSock(errors={3: errno.EINVAL, 5: errno.EEXIST})
    with pytest.raises(nb.BatchError) as info:
        nb.apply(sock, "tvx-x", entries(4))  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL and "10.77.0.1" in str(info.value)
    assert sock.entries == 8
