"""A fake upstream DNS server for lab tests and the DNS benchmark (run it inside a lab host).

    python dnsfake.py --listen 127.0.0.1:5300 [--listen 198.18.0.11:53] --log FILE

Zone (everything else is NXDOMAIN, authoritative):

- ``*.lab.test``        A 192.0.2.10 (any name under lab.test)
- ``big.lab.test``      40 A records 192.0.2.100.. (over 512 bytes: TC on plain UDP)
- ``tc.lab.test``       over UDP always an empty answer with TC set; over TCP A 192.0.2.20
- ``slow.lab.test``     never answered (the forwarder must time out and move on)

Each query is appended to ``--log`` as ``PROTO QNAME QTYPE`` (one line, flushed), so a
test can prove a query did (or did not) reach the upstream and over which protocol. Stops
on SIGTERM. Only for lab addresses: it binds exactly the addresses it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

ZONE = "lab.test."
FIXED = "192.0.2.10"
TC_TCP_ANSWER = "192.0.2.20"


class Upstream:
    def __init__(self, log_path: str | None) -> None:
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115

    def note(self, proto: str, q: DNSRecord) -> None:
        if self.log is not None:
            self.log.write(f"{proto} {str(q.q.qname).lower()} {QTYPE.get(q.q.qtype)}\n")

    def answer(self, data: bytes, proto: str) -> bytes | None:
        try:
            q = DNSRecord.parse(data)
        except Exception:
            return None
        self.note(proto, q)
        name = str(q.q.qname).lower()
        r = q.reply()
        r.header.ra = 1
        if name == "slow." + ZONE:
            return None
        if not name.endswith("." + ZONE) and name != ZONE:
            r.header.aa = 1
            r.header.rcode = RCODE.NXDOMAIN
            return r.pack()
        if q.q.qtype not in (QTYPE.A, QTYPE.ANY):
            return r.pack()
        if name == "tc." + ZONE:
            if proto == "udp":
                r.header.tc = 1
                return r.pack()
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(TC_TCP_ANSWER), ttl=60))
            return r.pack()
        if name == "big." + ZONE:
            for i in range(40):
                r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(f"192.0.2.{100 + i}"), ttl=60))
            packed: bytes = r.pack()
            limit = 512
            if q.ar:
                limit = max(512, q.ar[0].rclass)
            if proto == "udp" and len(packed) > limit:
                r.rr = []
                r.header.tc = 1
                return r.pack()
            return packed
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(FIXED), ttl=60))
        return r.pack()


class Udp(asyncio.DatagramProtocol):
    def __init__(self, up: Upstream) -> None:
        self.up = up
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.up.answer(data, "udp")
        if out is not None:
            self.transport.sendto(out, addr)


async def handle_tcp(up: Upstream, reader: asyncio.StreamReader, writer: Any) -> None:
    try:
        while True:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            out = up.answer(await reader.readexactly(n), "tcp")
            if out is not None:
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(listens: list[str], log_path: str | None) -> None:
    up = Upstream(log_path)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    servers = []
    for item in listens:
        host, _, port = item.rpartition(":")
        await loop.create_datagram_endpoint(lambda: Udp(up), local_addr=(host, int(port)))
        servers.append(
            await asyncio.start_server(lambda r, w: handle_tcp(up, r, w), host, int(port))
        )
    print("ready", flush=True)
    await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    asyncio.run(main(a.listen, a.log))
