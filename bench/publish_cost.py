"""The firewall step of publishing one port, with N ports already published.

    PYTHONPATH=src .venv/bin/python bench/publish_cost.py [--published 1,1000,10000] [--runs 15]

In a network namespace it makes (and removes), with libnftables in the kernel: for each N,
the median over ``--runs`` of

- whole replace: ``NftFirewall.apply`` of every network and N+1 ports (render + one batch
  replacing tether's table: what every publish cost before port updates),
- publish / unpublish: ``NftFirewall.update_ports`` adding / deleting that one port (what a
  container start / stop costs now).

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--published", default="1,1000,10000")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
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
