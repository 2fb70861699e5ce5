"""Restart latency: a ``--restart always`` container's exit (kill -9 of its PID from the host)
until it runs again, measured by the engine's own ``start`` event (same clock as the kill).

    python bench/restart_bench.py [-n 10] [--engine NAME=unix:///path.sock ...]

Without ``--engine`` it brings up a one-host tether lab, imports the busybox image and
measures tether there. Give several ``--engine`` options (e.g. a Docker daemon) to measure
them side by side in one run; each engine needs an ``alpine`` image. Each sample uses a
fresh container, so every sample is a first restart (Docker and tether both wait 100 ms
before it). Prints min / median / max in milliseconds per engine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKER = "/usr/local/bin/docker"
REPO = Path(__file__).resolve().parents[1]


def _docker(host: str, *args: str, check: bool = True) -> str:
    env = dict(os.environ, DOCKER_HOST=host)
    r = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def sample(host: str, name: str) -> float:
    """One exit → running-again time, in milliseconds."""
    _docker(host, "run", "-d", "--name", name, "--restart", "always", "alpine", "sleep", "1000")
    try:
        pid = int(_docker(host, "inspect", "-f", "{{.State.Pid}}", name))
        env = dict(os.environ, DOCKER_HOST=host)
        cmd = [DOCKER, "events", "--format", "{{.TimeNano}}"]
        cmd += ["--filter", f"container={name}", "--filter", "event=start"]
        watch = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(0.3)  # the event stream is subscribed
            t0 = time.time_ns()
            os.kill(pid, signal.SIGKILL)
            assert watch.stdout is not None
            line = watch.stdout.readline().strip()
        finally:
            watch.kill()
            watch.wait()
        if not line:
            raise RuntimeError(f"{name}: no start event")
        return (int(line) - t0) / 1e6
    finally:
        _docker(host, "rm", "-f", name, check=False)


def bench(engines: dict[str, str], n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in engines}
    for i in range(n):  # interleaved, so drift hits every engine alike
        for label, host in engines.items():
            out[label].append(sample(host, f"rbench{os.getpid()}_{i}"))
    return out


def report(results: dict[str, list[float]]) -> None:
    print(f"{'engine':<10} {'n':>3}  restart after exit, ms: min / median / max")
    for label, xs in results.items():
        print(
            f"{label:<10} {len(xs):>3}  {min(xs):7.1f} / {statistics.median(xs):7.1f} / "
            f"{max(xs):7.1f}"
        )


def _with_lab(n: int) -> dict[str, list[float]]:
    sys.path.insert(0, str(REPO / "src"))
    from tether.lab.lab import Lab

    name = f"rb{os.getpid() % 100000}"
    lab = Lab.up(name, ["h1"], etcd=False, daemons=True)
    try:
        host = lab.host("h1").docker_host
        with tempfile.TemporaryDirectory() as tmp:
            tar = Path(tmp) / "bb.tar"
            subprocess.run([str(REPO / "scripts/build-busybox-image.sh"), str(tar)], check=True)
            _docker(host, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest")
        return bench({"tether": host}, n)
    finally:
        Lab.destroy(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10, help="samples per engine")
    ap.add_argument("--engine", action="append", default=[], help="NAME=unix:///socket")
    ap.add_argument("--json", action="store_true", help="print raw samples as JSON too")
    args = ap.parse_args()
    if args.engine:
        engines = dict(e.split("=", 1) for e in args.engine)
        results = bench(engines, args.n)
    else:
        results = _with_lab(args.n)
    report(results)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
