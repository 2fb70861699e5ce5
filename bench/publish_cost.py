"""The firewall step of publishing one port, with N ports already published.

    PYTHONPATH=src .venv/bin/python bench/publish_cost.py [--published 1,1000,10000] [--runs 15]

In a network namespace it makes (and removes), with libnftables in the kernel: for each N,
the median over ``--runs`` of

- whole replace: ``NftFirewall.apply`` of every network and N+1 ports (render + one batch
  replacing tether's table: what every publish cost before port updates),
- publish / unpublish: ``NftFirewall.update_ports`` adding / deleting that one port (what a
  container start / stop costs now).

With ``--docker`` it measures ``docker run -d -p P:80`` end to end instead, in a fresh lab
(or ``--docker-host unix://...`` with ``--netns``/``--address`` for any engine): one container
publishing ``--scale`` ports is started and stopped between rounds, so runs with none and with
``--scale`` ports published alternate and share the machine's load (``--rounds`` × 3 runs each).

Prints a Markdown table in ms. Needs root and Debian's python3-nftables.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")


def child(counts: list[int], runs: int) -> None:
    from tether.engine.firewall import NetRule, NftFirewall, PortRule

    net = NetRule("a" * 64, "tthpc0", "198.19.0.0/16", "198.19.0.1")

    def port(i: int) -> PortRule:
        return PortRule("tcp", "", 10000 + i, f"198.19.{i // 250}.{2 + i % 250}", 80, net.bridge)

    rows = []
    for n in counts:
        ports = [port(i) for i in range(n)]
        new = PortRule("tcp", "", 9000, "198.19.255.2", 80, net.bridge)
        fw = NftFirewall()
        whole, add, delete = [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            fw.apply([net], [*ports, new])
            whole.append(time.perf_counter() - t0)
        fw.apply([net], ports)
        for _ in range(runs):
            t0 = time.perf_counter()
            fw.update_ports([], [new])
            t1 = time.perf_counter()
            fw.update_ports([new], [])
            t2 = time.perf_counter()
            add.append(t1 - t0)
            delete.append(t2 - t1)
        fw.remove()
        rows.append([n, *(statistics.median(x) * 1000 for x in (whole, add, delete))])
    json.dump(rows, sys.stdout)


def docker_rounds(t: Any, scale: int, rounds: int) -> tuple[float, float]:
    """Median ms of ``docker run -d -p`` with none and with ``scale`` ports published."""
    import ports_bench as pb

    def timed(*args: str) -> float:
        t0 = time.perf_counter()
        pb.docker(t, *args)
        return (time.perf_counter() - t0) * 1000

    port = 30000

    def one() -> float:
        nonlocal port
        port += 1
        ms = timed("run", "-d", "--name", f"pc{port}", "-p", f"{port}:80", pb.IMAGE, "sleep", "600")
        pb.docker(t, "rm", "-f", f"pc{port}")
        return ms

    pb.ensure_image(t)
    span = f"40000-{40000 + scale - 1}"
    pb.docker(t, "create", "--name", "pc-many", "-p", f"{span}:{span}", pb.IMAGE, "sleep", "600")
    few: list[float] = []
    lots: list[float] = []
    try:
        for _ in range(rounds):
            few += [one() for _ in range(3)]
            pb.docker(t, "start", "pc-many")
            lots += [one() for _ in range(3)]
            pb.docker(t, "stop", "-t", "0", "pc-many")
    finally:
        pb.docker(t, "rm", "-f", "pc-many", check=False)
    return statistics.median(few), statistics.median(lots)


def docker_main(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ports_bench as pb

    if a.docker_host:
        first, later = docker_rounds(
            pb.Target(a.docker_host, a.netns, a.address), a.scale, a.rounds
        )
    else:
        from tether.lab.lab import Lab

        name = "pc" + secrets.token_hex(3)
        lab = Lab.up(name, ["host1"], daemons=True)
        try:
            h = lab.host("host1")
            t = pb.Target(h.docker_host, h.netns_path, h.address)
            first, later = docker_rounds(t, a.scale, a.rounds)
        finally:
            Lab.destroy(name)
    print(f"| docker run -d -p (median of {3 * a.rounds}, interleaved) | ms |")
    print("|---|---:|")
    print(f"| no other port published | {first:.0f} |")
    print(f"| {a.scale:,} ports already published | {later:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--published", default="1,1000,10000")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--docker", action="store_true", help="time docker run -d -p instead")
    ap.add_argument("--scale", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--docker-host")
    ap.add_argument("--netns")
    ap.add_argument("--address")
    a = ap.parse_args()
    if a.docker:
        if os.geteuid() != 0:
            raise SystemExit("publish_cost --docker needs root (a lab)")
        docker_main(a)
        return
    counts = [int(x) for x in a.published.split(",")]
    if a.child:
        child(counts, a.runs)
        return
    if os.geteuid() != 0:
        raise SystemExit("publish_cost needs root (a network namespace)")
    ns = f"tether-pc-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        cmd = ["nsenter", f"--net=/run/netns/{ns}", "/usr/bin/python3", __file__, "--child"]
        cmd += ["--published", a.published, "--runs", str(a.runs)]
        out = subprocess.run(
            cmd,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
            timeout=600,
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print(
        "| ports already published | whole replace (ms) | publish one (ms) | unpublish one (ms) |"
    )
    print("|---:|---:|---:|---:|")
    for n, whole, add, delete in json.loads(out):
        print(f"| {n:,} | {whole:.1f} | {add:.2f} | {delete:.2f} |")


if __name__ == "__main__":
    main()
