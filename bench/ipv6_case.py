"""§5/§4 over IPv6, beside the IPv4 rows: container ↔ container, published port, DNS AAAA.

Per Docker-API engine (tether, Docker; podman is not driven here), inside the engine's lab
host:

- the host's lab ``eth0`` gets ``fd99::1N/64`` (``nodad``; lab namespaces only);
- a dual-stack network ``bench6`` (``--ipv6``, 172.30.0.0/24 + fd00:30::/64) holds ``b6srv``
  (``-p 15206:5201``) and ``b6cli``;
- ``tp6_c2c``: iperf3 from ``b6cli``'s namespace to ``b6srv``'s IPv6 address;
- ``tp6_addr``: iperf3 from the host's namespace to ``[fd99::1N]:15206`` (the published port
  on the host's own IPv6 address);
- ``dns6_qps``: dnsperf in ``b6cli``'s namespace, ``b6srv AAAA`` to the embedded server at
  127.0.0.11 (checked first: the answer must hold b6srv's IPv6 address).

The engines run interleaved, round by round, as the other cases. Docker's side: the bench's
dockerd (bench/engines.py) runs with ``--experimental --ip6tables`` so that its IPv6 published
ports are DNAT in the kernel as its IPv4 ones are (Docker 20.10's default leaves IPv6 to
docker-proxy). ``[::1]`` is not measured: tether serves it with a userland proxy, Docker with
docker-proxy; both are the same kind of path as the IPv4 loopback row.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile

from bench.cases import Results, log, rotations
from bench.engines import BenchError, Engine
from bench.ports_bench import PORT, iperf

NET = "bench6"
SUBNETS = ("172.30.0.0/24", "fd00:30::/64")
PUBLISHED6 = 15206
SRV, CLI = "b6srv", "b6cli"
CASES = {
    "tp6_c2c": ("5", "throughput container → container over IPv6, one network (Gbit/s)"),
    "tp6_addr": ("5", "throughput host → [host IPv6 address]:published port (Gbit/s)"),
    "dns6_qps": (
        "4",
        "DNS container name AAAA (dual-stack network): dnsperf, 100 outstanding (queries/s)",
    ),
}

_CHECK_AAAA = """
import socket, sys
from dnslib import DNSRecord, QTYPE
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(DNSRecord.question(sys.argv[1], "AAAA").pack(), ("127.0.0.11", 53))
r = DNSRecord.parse(s.recv(4096))
print(" ".join(str(a.rdata) for a in r.rr if a.rtype == QTYPE.AAAA))
"""


class V6Setup:
    def __init__(self, engine: Engine, index: int) -> None:
        self.e = engine
        self.host_v6 = f"fd99::{0x10 + index:x}"
        self.srv_key = self.cli_key = self.srv_v6 = ""

    def start(self) -> None:
        e = self.e
        subprocess.run(["nsenter", f"--net={e.host.netns_path}", "ip", "-6", "addr", "replace",
                        f"{self.host_v6}/64", "dev", "eth0", "nodad"], check=True)  # fmt: skip
        e.cli("network", "create", "--ipv6", "--subnet", SUBNETS[0], "--subnet", SUBNETS[1], NET)
        e.cli("run", "-d", *e.run_opts, "--name", SRV, "--network", NET,
              "-p", f"{PUBLISHED6}:{PORT}", "alpine", "sleep", "3600")  # fmt: skip
        e.cli("run", "-d", *e.run_opts, "--name", CLI, "--network", NET, "alpine", "sleep", "3600")
        key = "{{.NetworkSettings.SandboxKey}}"
        self.srv_key = e.cli("inspect", "-f", key, SRV).out.strip()
        self.cli_key = e.cli("inspect", "-f", key, CLI).out.strip()
        fmt = '{{(index .NetworkSettings.Networks "' + NET + '").GlobalIPv6Address}}'
        self.srv_v6 = e.cli("inspect", "-f", fmt, SRV).out.strip()
        if not (self.srv_key and self.cli_key and self.srv_v6):
            raise BenchError(f"{e.name}: {SRV} has no IPv6 address or sandbox")
        got = self.in_cli([sys.executable, "-c", _CHECK_AAAA, SRV]).stdout.split()
        if self.srv_v6 not in got:
            raise BenchError(f"{e.name}: AAAA {SRV} answered {got}, not {self.srv_v6}")

    def in_cli(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net={self.cli_key}", *argv], capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    def stop(self) -> None:
        self.e.cli("rm", *self.e.rm_opts, SRV, CLI, check=False)
        self.e.cli("network", "rm", NET, check=False)

    def dnsperf(self, seconds: int) -> float | None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write(f"{SRV} AAAA\n")
            f.flush()
            p = self.in_cli(["dnsperf", "-s", "127.0.0.11", "-d", f.name, "-l", str(seconds),
                             "-q", "100", "-t", "2"], timeout=seconds + 30)  # fmt: skip
        m = re.search(r"Queries per second:\s+([\d.]+)", p.stdout)
        return float(m.group(1)) if m else None

    def measure(self, key: str, seconds: int) -> float | None:
        if key == "dns6_qps":
            return self.dnsperf(seconds)
        if key == "tp6_c2c":
            return iperf(self.srv_key, self.cli_key, self.srv_v6, PORT, seconds)
        return iperf(self.srv_key, self.e.host.netns_path, self.host_v6, PUBLISHED6, seconds)


def ipv6(engines: list[Engine], res: Results, rounds: int, seconds: int) -> None:
    """The IPv6 rows: ``rounds`` rounds of ``seconds`` per case, engines interleaved."""
    for key, (section, label) in CASES.items():
        fmt, lower = ("{:,.0f}", False) if key.startswith("dns") else ("{:.1f}", False)
        res.fig(key, section, label, fmt, lower=lower)
    ready: dict[str, V6Setup] = {}
    setups: list[V6Setup] = []
    try:
        for i, e in enumerate(engines):
            if e.docker_host is None:
                for key in CASES:
                    res.note(key, e.name, "not run (docker API only)")
                continue
            s = V6Setup(e, i)
            setups.append(s)
            try:
                s.start()
                ready[e.name] = s
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                log(f"  {e.name}: IPv6 set-up failed: {exc}")
                for key in CASES:
                    res.note(key, e.name, "set-up failed")
        for i, order in rotations([e for e in engines if e.name in ready], rounds):
            for key in CASES:
                for e in order:
                    try:
                        v = ready[e.name].measure(key, seconds)
                    except (SystemExit, subprocess.SubprocessError) as exc:
                        log(f"  {e.name} {key}: {exc}")
                        v = None
                    if v is None:
                        res.note(key, e.name, "failed")
                    else:
                        res.add(key, e.name, v)
            log(f"  IPv6 round {i + 1}/{rounds}")
    finally:
        for s in setups:
            s.stop()


def main() -> int:
    """Only the IPv6 rows, in a lab of their own (the full bench runs them in its own lab)."""
    import argparse
    import os
    import secrets

    from bench.engines import ENGINES
    from bench.report import write
    from tether.lab.lab import Lab

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--engines", default="tether,docker")
    ap.add_argument("--out", default="/tmp/tether-bench-ipv6.md")
    ap.add_argument("--lab-prefix", default="l1b6")
    a = ap.parse_args()
    import time

    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="tether-bench6-")
    tar = os.path.join(tmp, "busybox.tar")
    subprocess.run(["sh", os.path.join(root, "scripts", "build-busybox-image.sh"), tar], check=True)
    lab = Lab.up(f"{a.lab_prefix}{secrets.token_hex(2)}", [], daemons=False)
    engines: list[Engine] = []
    res = Results()
    try:
        for name in a.engines.split(","):
            e = ENGINES[name](lab, lab.add_host(name, daemon=False))
            engines.append(e)
            e.start()
            e.import_image(tar)
        ipv6(engines, res, a.rounds, a.seconds)
    finally:
        for e in engines:
            e.cleanup()
            e.stop()
        lab.down()
    versions = {e.name: e.version for e in engines}
    write(a.out, res, list(versions), versions, {}, sys.argv, started, time.monotonic() - t0, [],
          raw_path=a.out + ".json")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
