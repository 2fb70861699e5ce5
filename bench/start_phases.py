"""Tether's container start against its floor, phase by phase (issue 21).

    sudo PYTHONPATH=$PWD/src .venv/bin/python -m bench.start_phases [-n 20] [--nets 10]

One lab (name ``run<hex>``) with two hosts: ``tether`` (this checkout's daemon, ``--debug``)
and ``floor`` (bench/floor.py's by-hand start, no daemon). Samples are interleaved: one floor
start, then one ``docker run -d --network benchrun --ip IP alpine httpd`` (the bench's §2
case), each until a TCP connect from the host's namespace to IP:80 works. The daemon's debug
lines (``start <id> phases:``, ``network create <name> phases:``) give where tether's time
went; the table puts them beside the floor's parts. With ``--nets N``, ``network create`` and
``network rm`` are timed N times each too (CLI wall time and the daemon's phases). The lab is
removed at the end; the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import floor
from bench.engines import Tether
from bench.netns import wait_tcp
from tether.engine.phases import parse
from tether.lab.lab import Lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/var/www"]
# tether's phases beside the floor part they stand against
PAIRS = [
    ("netns", ("netns",), ("netns",)),
    # the sandbox's network is wired alongside files, bundle and runc create (``wired``: its
    # own time); ``join`` is what the start still waited for after create (older trees: lo,
    # then join, in line)
    ("lo + join", ("lo", "join"), ("veth", "inside")),
    ("files + dns + bundle", ("files", "dns", "bundle"), ("files",)),
    ("create (conmon + runc create)", ("create",), ("create",)),
    ("start (runc start)", ("start",), ("start",)),
    ("save", ("save",), ()),
]


def log(msg: str) -> None:
    print(f"[start_phases] {msg}", flush=True)


def med(v: list[float]) -> float:
    return statistics.median(v) if v else float("nan")


def wall(s: dict[str, float]) -> float:
    return sum(v for k, v in s.items() if not k.startswith("wire"))  # (wire_*: overlapped)


def phase_lines(path: str, marker: str) -> list[dict[str, float]]:
    with open(path, errors="replace") as f:
        return [parse(line) for line in f if marker in line and "phases:" in line]


def table(tether: list[dict[str, float]], fl: list[dict[str, float]]) -> str:
    rows = ["| phase | tether ms | floor ms | difference |", "|---|---:|---:|---:|"]
    for label, mine, theirs in PAIRS:
        t = med([sum(s.get(p, 0.0) for p in mine) for s in tether])
        f = med([sum(s.get(p, 0.0) for p in theirs) for s in fl]) if theirs else 0.0
        rows.append(f"| {label} | {t:.1f} | {f:.1f} | {t - f:+.1f} |")
    for p in sorted({k for s in tether for k in s} - {p for _, m, _ in PAIRS for p in m}):
        rows.append(f"| {p} | {med([s.get(p, 0.0) for s in tether]):.1f} | | |")
    return "\n".join(rows)


def run_samples(eng: Tether, fl: floor.Floor, n: int) -> tuple[list[float], list[float], list]:
    runs: list[float] = []
    reach: list[float] = []
    floors: list[dict[str, float]] = []
    for i in range(n):
        try:
            floors.append(fl.one(i))
        finally:
            fl.remove(i)
        ip = f"172.30.0.{10 + i}"
        t0 = time.monotonic()
        r = eng.cli("run", "-d", "--name", f"web{i}", "--network", "benchrun", "--ip", ip,
                    "alpine", *HTTPD)  # fmt: skip
        runs.append(r.ms)
        t = wait_tcp(eng.host.netns_path, ip, 80)
        if t is None:
            raise RuntimeError(f"{ip}:80 not reachable in 15 s")
        reach.append((t - t0) * 1000)
    return runs, reach, floors


def net_samples(eng: Tether, n: int) -> tuple[list[float], list[float]]:
    create: list[float] = []
    rm: list[float] = []
    for i in range(n):
        create.append(eng.cli("network", "create", f"benchnet{i}").ms)
        rm.append(eng.cli("network", "rm", f"benchnet{i}").ms)
    return create, rm


def medians(rows: list[dict[str, float]]) -> str:
    names = sorted({k for s in rows for k in s}, key=lambda k: min(
        list(s).index(k) for s in rows if k in s))  # fmt: skip
    return ", ".join(f"{p} {med([s.get(p, 0.0) for s in rows]):.1f}" for p in names) or "-"


def report(
    daemon_log: str,
    floors: list[dict[str, float]],
    reach: list[float],
    runs: list[float],
    creates: list[float],
    rms: list[float],
) -> None:
    starts = phase_lines(daemon_log, "containers: start ")
    if starts:
        print(table(starts, floors))
    print(f"tether's start phases: {medians(starts)}")
    print(f"floor's parts: {medians(floors)}")
    print(f"create request's phases: {medians(phase_lines(daemon_log, 'containers: create '))}")
    tot = med([s["total"] for s in floors])
    print(f"\nrun → reachable: tether {med(reach):.1f} ms (CLI returned {med(runs):.1f}), "
          f"floor {tot:.1f} ms: {med(reach) / tot:.2f}× the floor; "
          f"start request's phases sum {med([wall(s) for s in starts]):.1f} ms")  # fmt: skip
    if creates:
        nc = phase_lines(daemon_log, "engine: network create ")
        print(f"network create: CLI {med(creates):.1f} ms, rm {med(rms):.1f} ms; "
              f"in the daemon: {medians(nc)}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="run samples (and floor samples)")
    ap.add_argument("--nets", type=int, default=10, help="network create/rm samples")
    ap.add_argument("--keep-log", help="copy the daemon's log here")
    ap.add_argument(
        "--no-debug",
        action="store_true",
        help="the daemon without --debug (as bench.run): no phases, only the totals",
    )
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("start_phases: needs root", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="tether-phases-")
    tarball = os.path.join(tmp, "busybox.tar")
    subprocess.run(["sh", os.path.join(ROOT, "scripts", "build-busybox-image.sh"), tarball],
                   check=True, capture_output=True)  # fmt: skip
    name = f"run{secrets.token_hex(2)}"
    lab = Lab.up(name, [], daemons=False)
    fl = None
    try:
        eng = Tether(lab, lab.add_host("tether", daemon=False))
        eng.debug = not a.no_debug
        eng.start()
        eng.import_image(tarball)
        eng.cli("network", "create", "--subnet", "172.30.0.0/16", "benchrun")
        fl = floor.Floor(tempfile.mkdtemp(prefix="tether-floor-", dir="/run"), tarball,
                         lab.add_host("floor", daemon=False).netns_path)  # fmt: skip
        load0 = os.getloadavg()
        log(f"lab {name}; load {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
        runs, reach, floors = run_samples(eng, fl, a.n)
        creates, rms = net_samples(eng, a.nets)
        load1 = os.getloadavg()
        if a.keep_log:
            shutil.copyfile(eng.host.daemon_log, a.keep_log)
        report(eng.host.daemon_log, floors, reach, runs, creates, rms)
        print(f"load average: {load0[0]:.2f} at the start, {load1[0]:.2f} at the end "
              f"(n={a.n}, nets={a.nets})")  # fmt: skip
    finally:
        if fl is not None:
            fl.close()
        lab.down()
        subprocess.run(["rm", "-rf", tmp], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
