"""Queries per second and single-query latency of the embedded DNS server over loopback.

    PYTHONPATH=src .venv/bin/python bench/dns_bench.py [--seconds 10] [--single 2000]
        [--loop uvloop|asyncio|both] [--baseline GITREF] [--no-dnsmasq]

Starts, each in its own process: the DnsServer (serving one sandbox on 127.0.0.1:<port>, with
a fake resolver that knows ``web``), the fake upstream DNS server (bench/dns_cli_bench.py
``--serve-upstream``: one Python process on uvloop answering every query at wire level with
an authoritative NXDOMAIN and the root zone's SOA, TTL and MINIMUM 60 s, so the negative
answer is cacheable per RFC 2308), and the load: dnsperf (Debian ``dnsperf``) for q/s with
``--window`` queries outstanding, then ``--single`` sequential queries from a small Python
client for p50/p99 (µs; the client's own cost included, the same for every server). The
server's own CPU time during the dnsperf run (/proc/PID/stat) over the queries it completed
gives "CPU µs per query": unlike q/s and latency, it hardly moves when other work shares the
machine, so it is the figure to compare on a busy one.

Cases: a container name (cached answer), AAAA of a container name (cached empty answer), a
nonexistent name asked again and again (a forwarding-cache hit after the first), and a new
nonexistent name for every query (50,000 names, more than the forwarding cache holds: every
query is a miss, so that row is the upstream's speed plus tether's forwarding cost).

Columns besides tether:
- ``--baseline GITREF``: the DnsServer of that commit (its ``src/`` exported with
  ``git archive``), in the same run: what a change bought.
- the limit: dnsmasq (Debian ``dnsmasq-base``, C, cache 10,000) forwarding to the same
  upstream, so its repeated-name row answers from its cache (the forwarded case's floor).
- the upstream alone: dnsperf straight at the fake upstream (the miss rows' ceiling).
Prints a Markdown table. No root needed; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dns_cli_bench import MISS_NAME, Dnsmasq, query_file, stop_helper

REPO = Path(__file__).resolve().parent.parent
CLI_BENCH = str(Path(__file__).resolve().parent / "dns_cli_bench.py")
CASES = [
    ("name", "container name, A (cached)", "web", "A"),
    ("aaaa", "container name, AAAA (cached empty)", "web", "AAAA"),
    ("hit", "nonexistent name, the same each query (cache hit)", "nx.bench.invalid", "A"),
    ("miss", "nonexistent name, a new one each query (miss)", MISS_NAME, "A"),
]
ONLY = {"limit": {"hit"}, "upstream": {"miss"}}  # the rows measured for the other servers


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


class Proc:
    """A helper process that prints ``READY <port>`` and stops when its stdin closes (or
    is terminated: dnsmasq)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            self.stop()
            raise SystemExit(f"{argv[1]} did not start")
        self.port = int(ready[1])

    def stop(self) -> None:
        stop_helper(self.proc)


def tether_server(loop_kind: str, up_port: int, src: Path) -> Proc:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return Proc([sys.executable, __file__, "serve", loop_kind, str(up_port)], env)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def limit_dnsmasq(up_port: int) -> Dnsmasq:
    """dnsmasq on 127.0.0.1:<free port>, forwarding to the upstream, 10,000 cache entries
    (no READY line: started once it answers a query)."""
    port = free_udp_port()
    probe = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01"

    def answers() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            s.sendto(probe, ("127.0.0.1", port))
            try:
                s.recv(512)
            except OSError:
                return False
            return True

    return Dnsmasq("127.0.0.1", port, f"127.0.0.1#{up_port}", answers, tries=100, pause=0.0,
                   error=SystemExit)  # fmt: skip


def git_src(ref: str, into: Path) -> Path:
    """``src/`` of ``ref`` exported into ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], capture_output=True,
                             check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


# -- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(port: int, name: str, qtype: str, seconds: int, window: int) -> tuple[float, int]:
    """(queries/s, queries completed)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        query_file(f, name, qtype)
        argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", f.name, "-l", str(seconds),
                "-q", str(window), "-t", "2"]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    done = re.search(r"Queries completed:\s+(\d+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if match is None or done is None:
        raise SystemExit(f"cannot read dnsperf output:\n{out}")
    if lost and int(lost.group(1)):
        print(f"  (dnsperf: {lost.group(1)} queries lost)", file=sys.stderr)
    return float(match.group(1)), int(done.group(1))


def single(port: int, name: str, qtype: str, count: int) -> dict[str, float]:
    """p50/p99 of ``count`` sequential A queries (dns_cli_bench's client)."""
    if qtype != "A":  # the client asks A only
        return {}
    argv = [sys.executable, CLI_BENCH, "--single-client", f"127.0.0.1:{port}", name, str(count)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
    try:
        result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}
    return result


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--single", type=int, default=2000, help="sequential queries (p50/p99)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio", "both"], default="asyncio")
    parser.add_argument("--window", type=int, default=100, help="queries outstanding")
    parser.add_argument("--baseline", metavar="GITREF", help="also measure this commit's server")
    parser.add_argument("--no-dnsmasq", action="store_true", help="skip the dnsmasq limit")
    parser.add_argument("--cases", default="name,aaaa,hit,miss", help="of name,aaaa,hit,miss")
    args = parser.parse_args()
    if shutil.which("dnsperf") is None:
        raise SystemExit("needs dnsperf (apt-get install dnsperf)")
    loops = ["uvloop", "asyncio"] if args.loop == "both" else [args.loop]
    rows: list[tuple[str, str, float, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        servers: list[tuple[str, Path | None, str]] = [(f"tether ({k})", REPO / "src", k)
                                                       for k in loops]  # fmt: skip
        cases = [c for c in CASES if c[0] in args.cases.split(",")]
        if args.baseline:
            src = git_src(args.baseline, Path(tmp))
            servers.append((f"tether {args.baseline} (uvloop)", src, "uvloop"))
        if not args.no_dnsmasq and shutil.which("dnsmasq"):
            servers.append(("limit: dnsmasq 10k cache", None, "limit"))
        servers.append(("upstream alone", None, "upstream"))
        up = Proc([sys.executable, CLI_BENCH, "--serve-upstream", "127.0.0.1:0"])
        try:
            for label, src, kind in servers:
                if kind == "upstream":
                    srv: Proc | Dnsmasq | None = None
                    port, pid = up.port, up.proc.pid
                elif src is None:
                    srv = limit_dnsmasq(up.port)
                    port, pid = srv.port, srv.proc.pid
                else:
                    srv = tether_server(kind, up.port, src)
                    port, pid = srv.port, srv.proc.pid
                try:
                    for key, case, name, qtype in cases:
                        if key not in ONLY.get(kind, {key}):
                            continue  # dnsmasq: its cache; the upstream: its own speed
                        dnsperf(port, name, qtype, 1, args.window)  # warm up (fills caches)
                        t0 = time.monotonic()
                        cpu0 = cpu_seconds(pid)
                        qps, done = dnsperf(port, name, qtype, args.seconds, args.window)
                        cpu = (cpu_seconds(pid) - cpu0) / max(done, 1) * 1e6
                        lat = single(port, name, qtype, args.single)
                        rows.append((label, case, qps, cpu, lat))
                        print(f"{label:30} {case:64} {qps:10.0f} q/s {cpu:6.1f} CPU µs/q "
                              f"p99 {_fmt(lat.get('p99'))} µs ({time.monotonic() - t0:.0f} s)",
                              file=sys.stderr)  # fmt: skip
                finally:
                    if srv is not None:
                        srv.stop()
        finally:
            up.stop()
    load = os.getloadavg()
    print(f"\nEmbedded DNS over loopback: dnsperf {args.seconds} s per case, {args.window} "
          f"outstanding; {args.single} sequential queries for p50/p99; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end\n")  # fmt: skip
    print("| server | query | queries/s | server CPU µs per query | p50 µs | p99 µs |")
    print("|---|---|---:|---:|---:|---:|")
    for label, case, qps, cpu, lat in rows:
        print(f"| {label} | {case} | {qps:,.0f} | {cpu:.1f} | {_fmt(lat.get('p50'))} "
              f"| {_fmt(lat.get('p99'))} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
