"""Focused scale probe: N ``docker run -d`` on one network against tether alone, then one
``rm -f`` of all of them; per-container times by block of 50 and the flatness figure.

    sudo .venv/bin/python -m bench.scale_probe -n 300 [--keep] [--engine tether|docker]

The lab is ``scaleNNNN``; with ``--keep`` it stays up (containers removed) for py-spy or a
second look. The daemon's pid is printed at start so ``py-spy record -p PID`` can attach.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

from bench.cases import flatness, log
from bench.engines import ENGINES
from tether.lab.lab import Lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--engine", default="tether")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument("--no-rm", action="store_true", help="leave the containers running")
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
    try:
        eng.start()
        eng.import_image(tarball)
        log(f"lab {name}; {eng.version}; daemon pid {host.daemon_pid}; load {os.getloadavg()}")
        eng.cli("network", "create", "--subnet", "10.60.0.0/16", "--gateway", "10.60.0.1",
                "benchbig")  # fmt: skip
        times: list[float] = []
        for i in range(args.n):
            r = eng.cli("run", "-d", *eng.run_opts, "--name", f"big{i}", "--network", "benchbig",
                        "alpine", "sleep", "100000")  # fmt: skip
            times.append(r.ms)
            if (i + 1) % 50 == 0:
                blk = times[-50:]
                log(f"  {i + 1}: block median {statistics.median(blk):.0f} ms, "
                    f"min {min(blk):.0f}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
        first, last, flat = flatness(times)
        log(f"run x{args.n}: total {sum(times) / 1000:.1f} s, first-10 {first:.0f} ms, "
            f"last-10 {last:.0f} ms, flat {flat:.2f}")  # fmt: skip
        if not args.no_rm:
            ids = eng.cli("ps", "-aq").out.split()
            r = eng.cli("rm", *eng.rm_opts, *ids, timeout=900)
            log(f"rm -f x{len(ids)}: {r.ms / 1000:.1f} s ({r.ms / len(ids):.0f} ms each), "
                f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    finally:
        if not args.keep:
            try:
                eng.cleanup()
            finally:
                eng.stop()
                Lab.destroy(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
