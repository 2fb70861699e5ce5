"""Focused scale probe: N ``docker run -d`` on one network against tether alone, then one
``rm -f`` of all of them; per-container times by block of 50 and the flatness figure.

    sudo .venv/bin/python -m bench.scale_probe -n 300 [--keep] [--engine tether|docker] [--phases]
        [--with docker]

``--with ENGINE`` fills a second engine (its own lab host) at the same time, one container of
each in turn, as the full benchmark does (``cases.many_scale``); the figures are still the first
engine's, the other's are logged alongside.

``--phases`` runs tether's daemon with ``--debug`` and prints, per phase of a container start
(netns, lo, join, files, dns, create, start, save; ``tether.engine.phases``), the median of
the first 10 and the last 10 starts, so the phase that grows with N shows.

The lab is ``scaleNNNN``; with ``--keep`` it stays up (containers removed) for py-spy or a
second look. The daemon's pid is printed at start so ``py-spy record -p PID`` can attach.
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

from bench.cases import flatness, log
from bench.engines import ENGINES, Tether
from tether.lab.lab import Lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report_phases(daemon_log: str) -> None:
    """Per-phase medians of the first and last 10 starts, from the daemon's debug lines."""
    from tether.engine.phases import parse

    with open(daemon_log, errors="replace") as f:
        rows = [parse(line) for line in f if "containers: start " in line and "phases:" in line]
    rows = [r for r in rows if r]
    if len(rows) < 20:
        log(f"phases: only {len(rows)} start lines in {daemon_log}")
        return

    def pick(rs: list[dict[str, float]], name: str) -> float:
        # (wire_*: the sandbox's own steps, which overlap the others: not in the total)
        wall = [sum(v for k, v in r.items() if not k.startswith("wire_")) for r in rs]
        vals = wall if name == "total" else [r.get(name, 0.0) for r in rs]
        return statistics.median(vals)

    names = list(dict.fromkeys(n for r in rows for n in r))
    for n in [*names, "total"]:
        a, b = pick(rows[:10], n), pick(rows[-10:], n)
        log(f"  phase {n:8s} first-10 {a:7.1f} ms  last-10 {b:7.1f} ms  ({b - a:+.1f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--engine", default="tether")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument("--no-rm", action="store_true", help="leave the containers running")
    ap.add_argument("--phases", action="store_true", help="tether: per-phase first/last 10")
    ap.add_argument("--with", dest="other", help="fill this engine too, interleaved")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("scale_probe: needs root", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="tether-scale-")
    tarball = os.path.join(tmp, "busybox.tar")
    subprocess.run(["sh", os.path.join(ROOT, "scripts", "build-busybox-image.sh"), tarball],
                   check=True, capture_output=True)  # fmt: skip
    name = f"scale{secrets.token_hex(2)}"
    lab = Lab.up(name, [], daemons=False)
    host = lab.add_host(args.engine, daemon=False)
    eng = ENGINES[args.engine](lab, host)
    other = None
    if args.other:
        other = ENGINES[args.other](lab, lab.add_host(f"w{args.other}"[:8], daemon=False))
    if args.phases and isinstance(eng, Tether):
        eng.debug = True
    try:
        for e in [eng] + ([other] if other else []):
            e.start()
            e.import_image(tarball)
            e.cli("network", "create", "--subnet", "10.60.0.0/16", "--gateway", "10.60.0.1",
                  "benchbig")  # fmt: skip
        log(f"lab {name}; {eng.version}; daemon pid {host.daemon_pid}; load {os.getloadavg()}")
        times: list[float] = []
        others: list[float] = []
        for i in range(args.n):
            if other is not None:
                r = other.cli("run", "-d", *other.run_opts, "--name", f"big{i}", "--network",
                              "benchbig", "alpine", "sleep", "100000")  # fmt: skip
                others.append(r.ms)
            r = eng.cli("run", "-d", *eng.run_opts, "--name", f"big{i}", "--network", "benchbig",
                        "alpine", "sleep", "100000")  # fmt: skip
            times.append(r.ms)
            if (i + 1) % 50 == 0:
                blk = times[-50:]
                side = f", {args.other} {statistics.median(others[-50:]):.0f} ms" if others else ""
                log(f"  {i + 1}: block median {statistics.median(blk):.0f} ms, "
                    f"min {min(blk):.0f}, load {os.getloadavg()[0]:.2f}{side}")  # fmt: skip
        first, last, flat = flatness(times)
        log(f"run x{args.n}: total {sum(times) / 1000:.1f} s, first-10 {first:.0f} ms, "
            f"last-10 {last:.0f} ms, flat {flat:.2f}")  # fmt: skip
        if others:
            o1, o2, of = flatness(others)
            log(f"{args.other} alongside: first-10 {o1:.0f} ms, last-10 {o2:.0f} ms, flat {of:.2f}")
        if args.phases and isinstance(eng, Tether):
            report_phases(host.daemon_log)
        if not args.no_rm:
            ids = eng.cli("ps", "-aq").out.split()
            r = eng.cli("rm", *eng.rm_opts, *ids, timeout=900)
            log(f"rm -f x{len(ids)}: {r.ms / 1000:.1f} s ({r.ms / len(ids):.0f} ms each), "
                f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    except BaseException:
        # keep the daemon's log (its tracebacks) before the lab and its folder go away
        src = getattr(host, "daemon_log", None)
        if src and os.path.exists(src):
            dst = f"/tmp/tether-scale-{name}-daemon.log"
            shutil.copyfile(src, dst)
            log(f"daemon log kept at {dst}")
        raise
    finally:
        if not args.keep:
            try:
                for e in [eng] + ([other] if other else []):
                    try:
                        e.cleanup()
                    finally:
                        e.stop()
            finally:
                Lab.destroy(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
