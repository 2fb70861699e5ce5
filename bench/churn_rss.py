"""Daemon memory under churn: the daemon's RSS before and after N ``docker run --rm`` and
M ``docker network create``/``rm`` cycles (issue 16: RSS must not grow with churn).

    python bench/churn_rss.py [-n 300] [-m 200] [--warmup 30] [--trace FILE]
    python bench/churn_rss.py --engine unix:///var/run/docker.sock --pid PID   # e.g. dockerd

Without ``--engine`` it brings up a one-host tether lab (lab-only: nothing outside the lab's
namespaces is touched), imports the busybox image as ``alpine`` and measures that lab's
daemon; the lab is removed at the end. ``--warmup`` cycles run first, so pools, caches
and lazily imported modules are in place before the first sample. ``--trace FILE`` runs
the lab daemon with ``TETHER_TRACEMALLOC=FILE`` (slow) and has it dump the allocation
sites that grew between the two samples (see src/tether/memdebug.py).
Prints VmRSS (from /proc/PID/status) before, after, and the growth per 100 cycles.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKER = "/usr/local/bin/docker"
REPO = Path(__file__).resolve().parents[1]


def _docker(host: str, *args: str) -> str:
    env = dict(os.environ, DOCKER_HOST=host)
    r = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def smaps(pid: int) -> dict[str, int]:
    """RSS (KiB) per mapping: ``start-end name``."""
    out: dict[str, int] = {}
    key = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            key = f"{head[0]} {head[5] if len(head) > 5 else '[anon]'}"
        elif line.startswith("Rss:"):
            out[key] = int(head[1])
    return out


def smaps_growth(before: dict[str, int], after: dict[str, int], top: int = 12) -> list[str]:
    grew = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)
    return [f"  +{d} KiB  {k}" for d, k in grew[:top] if d > 0]


def churn(host: str, runs: int, nets: int, tag: str) -> None:
    for i in range(max(runs, nets)):
        if i < runs:
            _docker(host, "run", "--rm", "alpine", "true")
        if i < nets:
            name = f"churn{tag}{i}"
            _docker(host, "network", "create", name)
            _docker(host, "network", "rm", name)


def measure(host: str, pid: int, args: argparse.Namespace, trace: bool) -> tuple[int, int, float]:
    churn(host, args.warmup, args.warmup, "w")
    time.sleep(1.0)
    if trace:
        _dump(pid, args.trace)
    before, maps = rss_kib(pid), smaps(pid)
    t0 = time.monotonic()
    churn(host, args.n, args.m, "m")
    took = time.monotonic() - t0
    time.sleep(1.0)
    after = rss_kib(pid)
    if args.smaps:
        print("mappings that grew:", *smaps_growth(maps, smaps(pid)), sep="\n")
    if trace:
        _dump(pid, args.trace)
    return before, after, took


def _dump(pid: int, path: str) -> None:
    """Have the traced daemon append a report to ``path``; wait (bounded) until it did."""
    f = Path(path)
    size = f.stat().st_size if f.exists() else 0
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if f.exists() and f.stat().st_size > size and f.read_text().endswith("\n"):
            time.sleep(2.0)  # the report is written in one go; let it land
            return
    print(f"no tracemalloc report in {path} after 300 s", file=sys.stderr)


def _with_lab(args: argparse.Namespace) -> tuple[int, int, float]:
    sys.path.insert(0, str(REPO / "src"))
    from tether.lab.lab import Lab

    if args.trace:
        os.environ["TETHER_TRACEMALLOC"] = str(Path(args.trace).resolve())
    name = f"cr{os.getpid() % 100000}"
    try:
        lab = Lab.up(name, ["h1"], etcd=False, daemons=True)
        host = lab.host("h1")
        with tempfile.TemporaryDirectory() as tmp:
            tar = Path(tmp) / "bb.tar"
            subprocess.run([str(REPO / "scripts/build-busybox-image.sh"), str(tar)], check=True)
            _docker(host.docker_host, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine")
        pid = host.daemon_pid
        assert pid is not None, "the lab daemon is not running"
        return measure(host.docker_host, pid, args, bool(args.trace))
    finally:
        Lab.destroy(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300, help="`docker run --rm` cycles (max 2000)")
    ap.add_argument("-m", type=int, default=200, help="network create/rm cycles (max 2000)")
    ap.add_argument("--warmup", type=int, default=30, help="cycles of each kind first")
    ap.add_argument("--trace", help="lab daemon under tracemalloc; growth report to this file")
    ap.add_argument("--smaps", action="store_true", help="print the mappings that grew")
    ap.add_argument("--engine", help="unix:///socket of a running engine (instead of a lab)")
    ap.add_argument("--pid", type=int, help="that engine's daemon pid (with --engine)")
    args = ap.parse_args()
    if max(args.n, args.m, args.warmup) > 2000:
        ap.error("counts are bounded to 2000")
    if args.engine:
        if args.pid is None:
            ap.error("--engine needs --pid")
        before, after, took = measure(args.engine, args.pid, args, False)
    else:
        before, after, took = _with_lab(args)
    cycles = args.n + args.m
    per100 = (after - before) / max(cycles, 1) * 100
    print(f"cycles: {args.n} run --rm + {args.m} network create/rm in {took:.0f} s")
    print(f"RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB, ", end="")
    print(f"growth {(after - before) / 1024:+.1f} MiB ({per100 / 1024:+.2f} MiB per 100 cycles)")


if __name__ == "__main__":
    main()
