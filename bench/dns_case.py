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
--net=<SandboxKey>``), for the container name, for a nonexistent name asked again and again
(tether answers it from its forwarding cache after the first: the upstream's NXDOMAIN carries
an SOA, cacheable 60 s per RFC 2308; Docker 20.10 and aardvark-dns 1.4 have no cache and
forward every query) and for a new nonexistent name each query (misses: 50,000 names for
dnsperf, fresh ones for the single queries; the upstream's speed plus the forwarding cost):
``dnsperf`` (``seconds``, 100 outstanding) → q/s, and ``count`` sequential queries from a small
Python client → p50/p99 (µs, the client's own cost included and the same for every engine).

The limit column (``limit`` in the results): dnsmasq (Debian ``dnsmasq-base``, C) inside
tether's ``dnscli`` namespace at 127.0.0.1:53, forwarding to the same upstream with a 10,000
entry cache: the repeated nonexistent name is answered from its cache, from the same place
tether's 127.0.0.11 answers (a floor for the cached forwarded case).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from bench.cases import Results, log, rotations
from bench.dns_cli_bench import (
    MISS_NAME,
    Dnsmasq,
    add_local_address,
    query_file,
    stop_helper,
    upstream_address,
)
from bench.engines import BenchError, Engine

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns_cli_bench.py")
SUBNET, GATEWAY = "172.28.0.0/24", "172.28.0.1"
NAMES = [
    ("name", "dnsweb", "container name"),
    ("nx", "nx.bench.invalid", "nonexistent name (the same each query: tether caches it)"),
    ("miss", MISS_NAME, "nonexistent name, a new one each query (forwarding-cache misses)"),
]
LIMIT_SERVER = "127.0.0.1"  # dnsmasq in tether's client namespace (the limit column)


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
        if not self.proc.stdout.readline().startswith("READY"):
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
            stop_helper(self.proc)

    def dnsperf(self, name: str, seconds: int, server: str | None = None) -> float | None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            query_file(f, name, "A")
            argv = ["nsenter", f"--net={self.key}", "dnsperf", "-s", server or self.server,
                    "-d", f.name,
                    "-l", str(seconds), "-q", "100", "-t", "2"]  # fmt: skip
            p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
        m = re.search(r"Queries per second:\s+([\d.]+)", p.stdout)
        return float(m.group(1)) if m else None

    def single(self, name: str, count: int, server: str | None = None) -> dict[str, float | None]:
        argv = ["nsenter", f"--net={self.key}", sys.executable, SCRIPT,
                "--single-client", server or self.server, name, str(count)]  # fmt: skip
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            return {}
        out: dict[str, float | None] = json.loads(p.stdout.strip().splitlines()[-1])
        return out


class LimitDnsmasq(Dnsmasq):
    """dnsmasq in ``setup``'s client namespace at ``LIMIT_SERVER``:53 (see the module notes)."""

    def __init__(self, setup: DnsSetup) -> None:
        self.setup = setup
        super().__init__(
            LIMIT_SERVER, 53, setup.upstream,
            lambda: setup.single(NAMES[1][1], 1, LIMIT_SERVER).get("p50") is not None,
            prefix=["nsenter", f"--net={setup.key}"], error=BenchError,
        )  # fmt: skip


def _measure(
    res: Results, s: DnsSetup, engine: str, k: str, name: str, seconds: int, count: int,
    server: str | None = None,
) -> None:  # fmt: skip
    qps = s.dnsperf(name, seconds, server)
    if qps is None:
        res.note(f"dns_qps_{k}", engine, "dnsperf failed")
    else:
        res.add(f"dns_qps_{k}", engine, qps)
    lat = s.single(name, count, server)
    if lat.get("p50") is None:
        res.note(f"dns_p50_{k}", engine, "no answers")
        return
    res.add(f"dns_p50_{k}", engine, float(lat["p50"] or 0))
    res.add(f"dns_p99_{k}", engine, float(lat["p99"] or 0))
    if lat.get("lost"):
        res.note(f"dns_p99_{k}", engine, f"{lat['lost']:.0f} lost")


def _limit(setup: DnsSetup | None) -> LimitDnsmasq | None:
    if setup is None or shutil.which("dnsmasq") is None:
        log("  DNS limit: not measured (no tether set-up or no dnsmasq)")
        return None
    try:
        return LimitDnsmasq(setup)
    except (BenchError, OSError) as exc:
        log(f"  DNS limit: {exc}")
        return None


def dns(engines: list[Engine], res: Results, rounds: int, seconds: int, count: int) -> None:
    for k, _, what in NAMES:
        res.fig(f"dns_qps_{k}", "4", f"DNS {what}: dnsperf {seconds} s, 100 outstanding "
                "(queries/s)", "{:,.0f}", lower=False)  # fmt: skip
        res.fig(f"dns_p50_{k}", "4", f"DNS {what}: one query, p50 of {count} (µs)")
        res.fig(f"dns_p99_{k}", "4", f"DNS {what}: one query, p99 of {count} (µs)")
    upstream = upstream_address()
    setups: list[DnsSetup] = []
    limit: LimitDnsmasq | None = None
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
        limit = _limit(ready.get("tether"))
        for i, order in rotations([e for e in engines if e.name in ready], rounds):
            for k, name, _ in NAMES:
                for e in order:
                    _measure(res, ready[e.name], e.name, k, name, seconds, count)
                if k == "nx" and limit is not None:  # dnsmasq answering from its cache
                    _measure(res, limit.setup, "limit", k, name, seconds, count, LIMIT_SERVER)
            log(f"  DNS round {i + 1}/{rounds}")
    finally:
        if limit is not None:
            limit.stop()
        for s in setups:
            s.stop()
