"""Embedded DNS as containers see it: dnsperf in a container's namespace against 127.0.0.11.

    PYTHONPATH=src .venv/bin/python bench/dns_cli_bench.py [--seconds 5] [--window 100]
        [--single 2000] [--docker-host unix:///PATH --upstream-netns PATH|none]
        [--upstream ADDRESS]

Without ``--docker-host`` it builds a throw-away lab (one host running tether), imports the
busybox image as ``alpine:latest`` and removes the lab afterwards. With ``--docker-host`` it
drives that daemon instead (tether or dockerd: the same CLI, the same steps), which must
already have an ``alpine:latest`` image; ``--upstream-netns`` is the daemon's network
namespace (``none``: this process's own).

Steps: a fake upstream (wire level, NXDOMAIN to everything, on uvloop) listens on
``--upstream`` in the daemon's namespace, an address put on that namespace's ``lo``; a
user-defined network holds ``bench-web`` and ``bench-cli`` (``--dns <upstream>``). The upstream
must not be a 127/8 address: Docker treats a per-container ``--dns 127.x`` as an ordinary
server and forwards from the container's namespace, where nothing listens, so every forwarded
query timed out (that is why this script never finished against dockerd at first). An address
on the daemon namespace's ``lo`` is reached by every engine, whichever side it forwards from.
The default is the machine's own first resolv.conf nameserver (aardvark-dns, podman's server,
forwards there whatever ``--dns`` says, see bench/dns_case.py), so nothing is sent to it: the
address is local to the lab namespace. Then, inside ``bench-cli``'s namespace
(``nsenter --net=<SandboxKey>``), for a container name and for a nonexistent name:
- ``dnsperf -s 127.0.0.11`` for ``--seconds`` with ``--window`` queries outstanding → q/s;
- ``--single`` sequential queries from a small Python client → p50/p99 latency (µs; the
  client's own cost is included and the same for every daemon).
Prints a Markdown table. Nothing leaves the machine (every address is loopback or the lab's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCKER = os.environ.get("DOCKER", "/usr/local/bin/docker")
MISS_NAME = "m{i}.nx.bench.invalid"  # {i}: a new name per query (see query_file)
MISS_NAMES = 50_000  # more than the forwarding cache holds (10,000): every query misses
NET = "bench-dns"
WEB = "bench-web"
CLI = "bench-cli"
CASES = [
    ("container name (A)", WEB, "A"),
    ("nonexistent name (forwarded; cached after the first)", "nx.bench.invalid", "A"),
    ("nonexistent name, a new one each query (forwarded, misses)", MISS_NAME, "A"),
]


# ---- helper processes (run by this same file) -----------------------------------------------
NEG_TTL = 60  # the fake upstream's SOA TTL and MINIMUM: negative answers cacheable for 60 s
_SOA = (
    b"\x00"  # owner: the root zone
    + struct.pack("!HHIH", 6, 1, NEG_TTL, 22)  # SOA, IN, TTL, rdlength
    + b"\x00\x00"  # mname, rname: the root
    + struct.pack("!IIIII", 1, 1800, 900, 604800, NEG_TTL)  # serial ... MINIMUM
)


def nx_reply(data: bytes) -> bytes | None:
    """An authoritative NXDOMAIN to ``data`` with the root zone's SOA in authority (what a real
    resolver sends, RFC 2308: cacheable for ``NEG_TTL`` s); None for a packet that is no query."""
    if len(data) < 12 or data[2] & 0x80 or data[4:6] != b"\x00\x01":
        return None
    pos = 12
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    end = pos + 5
    if end > len(data):
        return None
    flags = 0x8000 | (data[2] << 8 & 0x7900) | 0x0480 | 3  # QR, opcode, AA, RD, RA, NXDOMAIN
    return data[:2] + struct.pack("!HHHHH", flags, 1, 0, 1, 0) + data[12:end] + _SOA


def serve_upstream(addr: str) -> None:
    """NXDOMAIN (+ SOA) to every query, at wire level, one uvloop process; stops when stdin
    closes. Prints ``READY <port>`` (the port is the kernel's when ``addr`` ends in ``:0``)."""
    import asyncio

    import uvloop

    class Nx(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def datagram_received(self, data: bytes, peer: tuple[str, int]) -> None:
            out = nx_reply(data)
            if out is not None:
                self.transport.sendto(out, peer)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        host, _, port = addr.rpartition(":")
        transport, _ = await loop.create_datagram_endpoint(Nx, local_addr=(host, int(port)))
        print("READY", transport.get_extra_info("sockname")[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)

    uvloop.run(main())


def upstream_address() -> str:
    """The first IPv4, non-loopback nameserver of /etc/resolv.conf, else 198.18.255.53."""
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    addr = parts[1]
                    if addr.count(".") == 3 and not addr.startswith("127."):
                        return addr
    except OSError:
        pass
    return "198.18.255.53"


def query_file(f: Any, name: str, qtype: str) -> None:
    """dnsperf's input: ``name qtype``, or ``MISS_NAMES`` distinct names when ``name`` holds
    ``{i}`` (dnsperf cycles through them: each comes back after more than the forwarding
    cache's bound of other names, so every query is a miss)."""
    if "{i}" in name:
        f.write("".join(f"{name.replace('{i}', str(i))} {qtype}\n" for i in range(MISS_NAMES)))
    else:
        f.write(f"{name} {qtype}\n")
    f.flush()


def add_local_address(netns: str, addr: str) -> None:
    """Put ``addr``/32 on ``lo`` inside ``netns`` (a namespace the bench made)."""
    subprocess.run(
        ["nsenter", f"--net={netns}", "ip", "addr", "replace", f"{addr}/32", "dev", "lo"],
        check=True,
        capture_output=True,
    )


def _query(qid: int, name: str) -> bytes:
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


MAX_LOST = 20  # an unanswered name costs a whole timeout: give up rather than hang


def single(server: str, name: str, count: int) -> None:
    """Sequential queries; prints JSON with the latencies' p50/p99/mean in µs. A ``{i}`` in
    ``name`` makes every query's name a new one (forwarding-cache misses)."""
    host, _, port = server.partition(":")  # "ADDRESS" or "ADDRESS:PORT"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.connect((host, int(port or 53)))
    times: list[float] = []
    lost = 0
    run = secrets.token_hex(4)  # names of their own: never in a cache filled before
    for i in range(count + 50):
        if lost >= MAX_LOST:
            break
        q = _query(i & 0xFFFF, name.replace("{i}", f"{run}-{i}"))
        t0 = time.perf_counter_ns()
        s.send(q)
        try:
            while True:
                r = s.recv(4096)
                if r[:2] == q[:2]:
                    break
        except TimeoutError:
            lost += 1
            continue
        if i >= 50:  # warm-up excluded
            times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    out = {
        "p50": times[len(times) // 2] if times else None,
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))] if times else None,
        "mean": statistics.fmean(times) if times else None,
        "lost": lost,
        "answered": len(times),
    }
    print(json.dumps(out))


# ---- helper processes every DNS bench uses (dns_bench.py, dns_case.py) -----------------------
def stop_helper(proc: subprocess.Popen[str]) -> None:
    """Stop a helper process and reap it: its stdin closed (the fake upstream and the DNS
    server leave then) and 5 s to go, else SIGTERM (dnsmasq) and 5 s more, else SIGKILL."""
    if proc.stdin is not None:
        proc.stdin.close()
        try:
            proc.wait(5)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Dnsmasq:
    """dnsmasq (Debian ``dnsmasq-base``, C) on ``listen``:``port`` forwarding to ``server``
    with a 10,000 entry cache: the DNS benches' limit column. ``prefix`` runs it elsewhere
    (``nsenter --net=...``). Started when ``answers()`` (asked up to ``tries`` times,
    ``pause`` s apart) is true; ``error(text)`` is raised when it exits or never answers."""

    def __init__(
        self,
        listen: str,
        port: int,
        server: str,
        answers: Callable[[], bool],
        *,
        prefix: Sequence[str] = (),
        tries: int = 20,
        pause: float = 0.1,
        error: Callable[[str], BaseException] = RuntimeError,
    ) -> None:
        self.port = port
        argv = [*prefix, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--user=root", "--pid-file", "--bind-interfaces",
                f"--listen-address={listen}", f"--port={port}", f"--server={server}",
                "--cache-size=10000"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        for _ in range(tries):
            time.sleep(pause)
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise error(f"dnsmasq did not start: {err.strip()}")
            if answers():
                return
        self.stop()
        raise error("dnsmasq did not answer")

    def stop(self) -> None:
        stop_helper(self.proc)


# ---- driver ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, docker_host: str, netns: str | None, upstream: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env["DOCKER_HOST"] = docker_host
        self.netns = netns
        self.upstream = upstream
        self.proc: subprocess.Popen[str] | None = None

    def docker(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(
            [DOCKER, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and r.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout.strip()

    def in_ns(self, ns: str | None, argv: list[str]) -> list[str]:
        return argv if ns is None else ["nsenter", f"--net={ns}", *argv]

    def setup(self) -> str:
        if self.netns is not None:
            add_local_address(self.netns, self.upstream)
        argv = [sys.executable, __file__, "--serve-upstream", f"{self.upstream}:53"]
        self.proc = subprocess.Popen(
            self.in_ns(self.netns, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        if not self.proc.stdout.readline().startswith("READY"):
            raise SystemExit("the fake upstream did not start")
        self.cleanup_containers()
        self.docker("network", "create", NET)
        self.docker("run", "-d", "--name", WEB, "--network", NET, "alpine", "sleep", "3600")
        self.docker(
            "run", "-d", "--name", CLI, "--network", NET, "--dns", self.upstream,
            "alpine", "sleep", "3600",
        )  # fmt: skip
        return self.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", CLI)

    def cleanup_containers(self) -> None:
        self.docker("rm", "-f", WEB, CLI, check=False)
        self.docker("network", "rm", NET, check=False)

    def close(self) -> None:
        self.cleanup_containers()
        if self.proc is not None:
            stop_helper(self.proc)

    def dnsperf(
        self, key: str, name: str, qtype: str, seconds: int, window: int
    ) -> tuple[float, int]:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            query_file(f, name, qtype)
            argv = ["dnsperf", "-s", "127.0.0.11", "-d", f.name, "-l", str(seconds)]
            argv += ["-q", str(window), "-t", "2"]
            out = subprocess.run(
                self.in_ns(key, argv), capture_output=True, text=True, check=True
            ).stdout
        qps = re.search(r"Queries per second:\s+([\d.]+)", out)
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        if qps is None:
            raise SystemExit(f"cannot read dnsperf output:\n{out}")
        return float(qps.group(1)), int(lost.group(1)) if lost else 0

    def single(self, key: str, name: str, count: int) -> dict[str, Any]:
        argv = [sys.executable, __file__, "--single-client", "127.0.0.11", name, str(count)]
        out = subprocess.run(
            self.in_ns(key, argv), capture_output=True, text=True, check=True, timeout=600
        ).stdout
        result: dict[str, Any] = json.loads(out)
        return result


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def run(b: Bench, label: str, seconds: int, window: int, count: int) -> None:
    key = b.setup()
    rows = []
    for case, name, qtype in CASES:
        qps, lost = b.dnsperf(key, name, qtype, seconds, window)
        lat = b.single(key, name, count)
        rows.append((case, qps, lost, lat))
    print(f"\n### embedded DNS via the docker CLI: {label}\n")
    print(f"dnsperf {seconds} s, {window} outstanding; {count} sequential single queries\n")
    print("| case | queries/s | lost | single p50 µs | single p99 µs | mean µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, qps, lost, lat in rows:
        print(
            f"| {case} | {qps:,.0f} | {lost} | {_fmt(lat['p50'])} | {_fmt(lat['p99'])} "
            f"| {_fmt(lat['mean'])} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--docker-host")
    ap.add_argument("--upstream-netns", default="none")
    ap.add_argument("--upstream", default=None)
    ap.add_argument("--label")
    ap.add_argument("--serve-upstream", help=argparse.SUPPRESS)
    ap.add_argument("--single-client", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_upstream:
        serve_upstream(a.serve_upstream)
        return
    if a.single_client:
        single(a.single_client[0], a.single_client[1], int(a.single_client[2]))
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root (nsenter into container namespaces)")
    if a.upstream is None:
        a.upstream = upstream_address()
    if a.docker_host:
        ns = None if a.upstream_netns == "none" else a.upstream_netns
        b = Bench(a.docker_host, ns, a.upstream)
        try:
            run(b, a.label or a.docker_host, a.seconds, a.window, a.single)
        finally:
            b.close()
        return
    sys.path.insert(0, str(REPO / "src"))
    from tether.lab.lab import Lab

    name = f"dnsb{secrets.token_hex(3)}"
    lab = Lab.up(name, ["h1"], daemons=True)
    try:
        host = lab.host("h1")
        with tempfile.TemporaryDirectory() as tmp:
            tar = Path(tmp) / "bb.tar"
            subprocess.run(
                [str(REPO / "scripts" / "build-busybox-image.sh"), str(tar)],
                check=True,
                capture_output=True,
            )
            b = Bench(host.docker_host, host.netns_path, a.upstream)
            b.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest")
        try:
            run(b, a.label or "tether (lab host)", a.seconds, a.window, a.single)
        finally:
            b.close()
    finally:
        Lab.destroy(name)


if __name__ == "__main__":
    main()
