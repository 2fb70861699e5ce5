"""§4 DNS from inside a container, every engine side by side (folded into the main table).

Per engine: a fake upstream (bench/dns_cli_bench.py ``--serve-upstream``: NXDOMAIN to
everything) listens on ``upstream:53`` where ``upstream`` is an address put on ``lo`` of the
engine's lab namespace; a network ``benchdns`` (172.28.0.0/24) holds ``dnsweb`` and ``dnscli``.
The server the client asks is the engine's own:

- tether and Docker: the embedded server at 127.0.0.11 (``dnscli`` gets ``--dns upstream``,
  which both forward unknown names to);
- podman: aardvark-dns at the network's gateway 172.28.0.1. ``dnscli`` gets no ``--dns``:
  podman 4.3 would then write only that server into resolv.conf and bypass aardvark. Aardvark
  1.4 forwards unknown names to the nameservers of the machine's /etc/resolv.conf, so the
  upstream address is that nameserver's (``dns_cli_bench.upstream_address``): it is local to
  the lab namespace, and nothing reaches the real one.

Then, rounds interleaved across the engines, inside ``dnscli``'s namespace (``nsenter
--net=<SandboxKey>``), for the container name and for a nonexistent two-label name:
``dnsperf`` (``seconds``, 100 outstanding) → q/s, and ``count`` sequential queries from a small
Python client → p50/p99 (µs, the client's own cost included and the same for every engine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

from bench.cases import Results, log, rotations
from bench.dns_cli_bench import add_local_address, upstream_address
from bench.engines import BenchError, Engine

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns_cli_bench.py")
SUBNET, GATEWAY = "172.28.0.0/24", "172.28.0.1"
NAMES = [("name", "dnsweb", "container name"), ("nx", "nx.bench.invalid", "nonexistent name")]


class DnsSetup:
    """One engine's upstream, network, two containers; ``server`` and ``key`` for the client."""

    def __init__(self, engine: Engine, upstream: str) -> None:
        self.e = engine
        self.upstream = upstream
        self.proc: subprocess.Popen[str] | None = None
        self.server = GATEWAY if engine.docker_host is None else "127.0.0.11"
        self.key = ""

    def start(self) -> None:
        e = self.e
        add_local_address(e.host.netns_path, self.upstream)
        argv = ["nsenter", f"--net={e.host.netns_path}", sys.executable, SCRIPT,
                "--serve-upstream", f"{self.upstream}:53"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            raise BenchError(f"{e.name}: the fake DNS upstream did not start")
        e.cli("network", "create", "--subnet", SUBNET, "--gateway", GATEWAY, "benchdns")
        e.cli("run", "-d", *e.run_opts, "--name", "dnsweb", "--network", "benchdns",
              "alpine", "sleep", "3600")  # fmt: skip
        dns = [] if e.docker_host is None else ["--dns", self.upstream]
        e.cli("run", "-d", *e.run_opts, "--name", "dnscli", "--network", "benchdns", *dns,
              "alpine", "sleep", "3600")  # fmt: skip
        self.key = e.cli("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "dnscli").out.strip()
        if not self.key:
            raise BenchError(f"{e.name}: no SandboxKey for dnscli")

    def stop(self) -> None:
        self.e.cli("rm", *self.e.rm_opts, "dnsweb", "dnscli", check=False)
        self.e.cli("network", "rm", "benchdns", check=False)
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def dnsperf(self, name: str, seconds: int) -> float | None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write(f"{name} A\n")
            f.flush()
            argv = ["nsenter", f"--net={self.key}", "dnsperf", "-s", self.server, "-d", f.name,
                    "-l", str(seconds), "-q", "100", "-t", "2"]  # fmt: skip
            p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
        m = re.search(r"Queries per second:\s+([\d.]+)", p.stdout)
        return float(m.group(1)) if m else None

    def single(self, name: str, count: int) -> dict[str, float | None]:
        argv = ["nsenter", f"--net={self.key}", sys.executable, SCRIPT,
                "--single-client", self.server, name, str(count)]  # fmt: skip
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            return {}
        out: dict[str, float | None] = json.loads(p.stdout.strip().splitlines()[-1])
        return out


def dns(engines: list[Engine], res: Results, rounds: int, seconds: int, count: int) -> None:
    for k, _, what in NAMES:
        res.fig(f"dns_qps_{k}", "4", f"DNS {what}: dnsperf {seconds} s, 100 outstanding "
                "(queries/s)", "{:,.0f}", lower=False)  # fmt: skip
        res.fig(f"dns_p50_{k}", "4", f"DNS {what}: one query, p50 of {count} (µs)")
        res.fig(f"dns_p99_{k}", "4", f"DNS {what}: one query, p99 of {count} (µs)")
    upstream = upstream_address()
    setups: list[DnsSetup] = []
    try:
        for e in engines:
            s = DnsSetup(e, upstream)
            setups.append(s)
            try:
                s.start()
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                log(f"  {e.name}: DNS set-up failed: {exc}")
                for k, _, _ in NAMES:
                    res.note(f"dns_qps_{k}", e.name, "set-up failed")
        ready = {s.e.name: s for s in setups if s.key}
        for i, order in rotations([e for e in engines if e.name in ready], rounds):
            for k, name, _ in NAMES:
                for e in order:
                    s = ready[e.name]
                    qps = s.dnsperf(name, seconds)
                    if qps is None:
                        res.note(f"dns_qps_{k}", e.name, "dnsperf failed")
                    else:
                        res.add(f"dns_qps_{k}", e.name, qps)
                    lat = s.single(name, count)
                    if lat.get("p50") is None:
                        res.note(f"dns_p50_{k}", e.name, "no answers")
                        continue
                    res.add(f"dns_p50_{k}", e.name, float(lat["p50"] or 0))
                    res.add(f"dns_p99_{k}", e.name, float(lat["p99"] or 0))
                    if lat.get("lost"):
                        res.note(f"dns_p99_{k}", e.name, f"{lat['lost']:.0f} lost")
            log(f"  DNS round {i + 1}/{rounds}")
    finally:
        for s in setups:
            s.stop()
