"""Queries per second of the embedded DNS server over loopback.

    PYTHONPATH=src .venv/bin/python bench/dns_bench.py [--seconds 10] [--loop uvloop|asyncio|both]
                                                       [--tool auto|dnsperf|python]

Starts, each in its own process: the DnsServer (serving one sandbox on 127.0.0.1:<port>, with
a fake resolver that knows ``web``), a fake upstream DNS server (answers NXDOMAIN to everything
at wire level, on uvloop), and the load generator: dnsperf when installed (Debian ``dnsperf``;
the same tool the platform notes and peer benchmarks used), else a small async generator that
keeps a window of queries outstanding. Cases: a container name (cached answer), AAAA of a
container name (cached empty answer), and a nonexistent name (forwarded upstream each time).
Prints a Markdown table. No root needed; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = [
    ("container name, A (cached)", "web A"),
    ("container name, AAAA (cached empty)", "web AAAA"),
    ("nonexistent name (forwarded)", "nonexistent.example A"),
]


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# -- processes ---------------------------------------------------------------------------------


def serve(loop_kind: str, upstream_port: int) -> None:
    from tether.engine.dns import DnsServer

    class Resolver:
        def lookup(self, sandbox: str, name: str) -> list[str] | None:
            return ["172.28.0.2"] if name == "web" else None

        def reverse(self, sandbox: str, ip: str) -> str | None:
            return None

        def upstreams(self, sandbox: str) -> list[str]:
            return [f"127.0.0.1:{upstream_port}"]

    async def main() -> None:
        server = DnsServer(Resolver())
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        await server.serve_sockets("bench", udp, tcp)
        print("READY", udp.getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.close()

    loop = _new_loop(loop_kind)
    loop.run_until_complete(main())


def upstream() -> None:
    class Nx(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if len(data) >= 12:
                flags = 0x8000 | (data[2] << 8 & 0x7900) | 0x80 | 3  # QR, opcode, RD, RA, NX
                out = data[:2] + flags.to_bytes(2, "big") + data[4:]
                self.transport.sendto(out, addr)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Nx, local_addr=("127.0.0.1", 0))
        print("READY", transport.get_extra_info("sockname")[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)

    _new_loop("uvloop").run_until_complete(main())


def pygen(port: int, line: str, seconds: float, window: int) -> None:
    """Keep ``window`` queries outstanding for ``seconds``; print completed queries per second."""
    from dnslib import DNSRecord

    name, qtype = line.split()
    template = bytes(DNSRecord.question(name, qtype).pack())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = 0
        next_id = 0
        stop_at = loop.time() + seconds

        class Gen(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t = transport

            def send(self) -> None:
                nonlocal next_id
                next_id = (next_id + 1) & 0xFFFF
                self.t.sendto(next_id.to_bytes(2, "big") + template[2:])  # type: ignore[attr-defined]

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                nonlocal done
                done += 1
                if loop.time() < stop_at:
                    self.send()

        transport, proto = await loop.create_datagram_endpoint(Gen, remote_addr=("127.0.0.1", port))
        last = -1
        while loop.time() < stop_at:
            if done == last:  # start, or every query of the window was lost: refill
                for _ in range(window):
                    proto.send()
            last = done
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.2)
        transport.close()
        print(f"QPS {done / seconds:.0f}", flush=True)

    _new_loop("uvloop").run_until_complete(main())


# -- driver ------------------------------------------------------------------------------------


def _spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")},
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        proc.kill()
        raise SystemExit(f"{args[0]} did not start")
    return proc, int(ready[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_dnsperf(port: int, line: str, seconds: int, window: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(line + "\n")
        f.flush()
        out = subprocess.run(
            [
                "dnsperf",
                "-s",
                "127.0.0.1",
                "-p",
                str(port),
                "-d",
                f.name,
                "-l",
                str(seconds),
                "-q",
                str(window),
                "-t",
                "2",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if match is None:
        raise SystemExit(f"cannot read dnsperf output:\n{out}")
    if lost and int(lost.group(1)):
        print(f"  (dnsperf: {lost.group(1)} queries lost)", file=sys.stderr)
    return float(match.group(1))


def measure_python(port: int, line: str, seconds: int, window: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "pygen", str(port), line, str(seconds), str(window)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="both")
    parser.add_argument("--tool", choices=["auto", "dnsperf", "python"], default="auto")
    parser.add_argument("--window", type=int, default=100, help="queries outstanding")
    args = parser.parse_args()
    tool = args.tool
    if tool == "auto":
        tool = "dnsperf" if shutil.which("dnsperf") else "python"
    measure = measure_dnsperf if tool == "dnsperf" else measure_python
    loops = ["uvloop", "asyncio"] if args.loop == "both" else [args.loop]

    up, up_port = _spawn("upstream")
    rows: list[tuple[str, str, float]] = []
    try:
        for loop_kind in loops:
            srv, port = _spawn("serve", loop_kind, str(up_port))
            try:
                for label, line in CASES:
                    measure(port, line, 1, args.window)  # warm up (fills the cache)
                    t0 = time.monotonic()
                    qps = measure(port, line, args.seconds, args.window)
                    rows.append((loop_kind, label, qps))
                    took = time.monotonic() - t0
                    print(
                        f"{loop_kind:8} {label:38} {qps:10.0f} q/s ({took:.0f} s)", file=sys.stderr
                    )
            finally:
                _stop(srv)
    finally:
        _stop(up)
    print(
        f"\nTether embedded DNS, loopback, {tool}, {args.seconds} s per case, "
        f"{args.window} outstanding, {os.cpu_count()} CPUs\n"
    )
    print("| loop | query | queries/s |")
    print("|---|---|---|")
    for loop_kind, label, qps in rows:
        print(f"| {loop_kind} | {label} | {qps:,.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "upstream":
        upstream()
    elif len(sys.argv) > 1 and sys.argv[1] == "pygen":
        pygen(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
