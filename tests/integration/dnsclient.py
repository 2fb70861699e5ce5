"""A resolver test client: one DNS query, printed as JSON (run inside a container's netns).

    nsenter --net=SANDBOXKEY python dnsclient.py NAME [TYPE] [--tcp] [--server 127.0.0.11]
        [--port 53] [--edns SIZE] [--timeout 3]

Prints ``{"rcode": "NOERROR", "tc": false, "aa": false, "answers": [[name, type, data], ...]}``
or ``{"error": "timeout"}``. Used by the lab tests for the wire details busybox's nslookup
hides (TCP, truncation, PTR, AAAA with an empty answer).
"""

from __future__ import annotations

import argparse
import json
import socket
import struct

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord


def query(
    name: str, qtype: str, server: str, port: int, tcp: bool, edns: int | None, timeout: float
) -> dict[str, object]:
    q = DNSRecord.question(name, qtype)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns))
    data = q.pack()
    try:
        if tcp:
            with socket.create_connection((server, port), timeout=timeout) as s:
                s.sendall(struct.pack("!H", len(data)) + data)
                buf = b""
                while len(buf) < 2:
                    chunk = s.recv(2 - len(buf))
                    if not chunk:
                        return {"error": "closed"}
                    buf += chunk
                (n,) = struct.unpack("!H", buf)
                raw = b""
                while len(raw) < n:
                    chunk = s.recv(n - len(raw))
                    if not chunk:
                        return {"error": "closed"}
                    raw += chunk
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(data, (server, port))
                raw, _ = s.recvfrom(65535)
    except TimeoutError:
        return {"error": "timeout"}
    except OSError as exc:
        return {"error": str(exc)}
    r = DNSRecord.parse(raw)
    return {
        "id_ok": r.header.id == q.header.id,
        "rcode": RCODE.get(r.header.rcode),
        "tc": bool(r.header.tc),
        "aa": bool(r.header.aa),
        "size": len(raw),
        "answers": [[str(rr.rname), QTYPE.get(rr.rtype), str(rr.rdata)] for rr in r.rr],
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("qtype", nargs="?", default="A")
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--server", default="127.0.0.11")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--edns", type=int)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    print(json.dumps(query(a.name, a.qtype, a.server, a.port, a.tcp, a.edns, a.timeout)))
