"""Run every benchmark against tether, dockerd and podman side by side; write docs/benchmarks.md.

    sudo .venv/bin/python -m bench.run [--quick] [--engines tether,docker,podman]
                                      [--out docs/benchmarks.md] [--no-extras]

Builds one lab (``tether.lab``) with a host (network namespace) per engine, starts the engines
there (see bench/engines.py), imports the busybox image into each, runs the cases of
bench/cases.py with the engines interleaved, DNS from inside a container (bench/dns_case.py,
every engine), then the per-area helper scripts (ports, restart: each run as its own process and
its Markdown output kept), then ``--scale`` containers on one network, for tether and Docker each
on its own (RSS, timed removal), then both filling in turn; removes the lab and writes the report
(bench/report.py). Loops are bounded: the full run takes about 21 minutes (more than half of it
the 500 containers), ``--quick`` about 2 (fewer samples,
short DNS case, no helper scripts, no scale case). An engine that is not installed or does not
start is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench import cases, dns_case, floor, ipv6_case
from bench.cases import Results, log
from bench.engines import ENGINES, BenchError, Engine
from bench.report import RAW, write
from tether.lab.lab import Lab, LabError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_PREFIX = "bnch"


@dataclass
class Sizes:
    net: int
    run: int
    cd: int
    many: int
    restart: int
    cli: int
    dns_rounds: int
    dns_seconds: int
    dns_single: int
    scale: int  # 0: no scale case
    scale_limit: float  # seconds for one engine's scale fill (x engines when they fill in turn)


FULL = Sizes(net=10, run=10, cd=10, many=50, restart=5, cli=10, dns_rounds=3, dns_seconds=3,
             dns_single=1000, scale=500, scale_limit=420)  # fmt: skip
QUICK = Sizes(net=4, run=4, cd=4, many=20, restart=3, cli=5, dns_rounds=1, dns_seconds=1,
              dns_single=200, scale=0, scale_limit=0)  # fmt: skip
SCALE_ENGINES = ("tether", "docker")  # podman would add ~2 minutes per 500 containers


@dataclass
class Extra:
    title: str
    script: str
    full: list[str]
    quick: list[str]
    timeout: float


# Standalone helper scripts (they build what they need), run after the lab is gone.
EXTRAS = [
    Extra("Embedded DNS server queries/s (bench/dns_bench.py, loopback, no engine)",
          "bench/dns_bench.py", ["--seconds", "5", "--loop", "asyncio", "--single", "1000"],
          ["--seconds", "2", "--loop", "asyncio", "--single", "300"], 240),
]  # fmt: skip


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + ROOT
    return env


def in_lab_extras(engines: list[Engine], res: Results, extras: list[tuple[str, str]]) -> None:
    """The helper scripts that can drive a given Docker-API socket, run against our engines."""
    api = [e for e in engines if e.docker_host is not None]
    script = os.path.join(ROOT, "bench", "restart_bench.py")
    if os.path.exists(script) and api:
        n = 5
        argv = [sys.executable, script, "-n", str(n), "--json"]
        for e in api:
            argv += ["--engine", f"{e.name}={e.docker_host}"]
        log("extra: restart_bench.py")
        key = "restart_event"
        res.fig(key, "7", "`--restart always`: kill -9 → the engine's `start` event "
                "(ms, bench/restart_bench.py)")  # fmt: skip
        samples, _ = _json_samples(argv, 240)
        _file_samples(res, key, engines, samples)
    throughput(engines, res, extras)


def _json_samples(argv: list[str], timeout: float) -> tuple[dict[str, Any], str]:
    """Run a helper script whose last stdout line is its samples as JSON: (samples, the
    lines before it); ({}, "") when it fails or does not finish."""
    try:
        p = subprocess.run(argv, env=_script_env(), cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)  # fmt: skip
        if p.returncode != 0:
            return {}, ""
        lines = p.stdout.strip().splitlines()
        return json.loads(lines[-1]), "\n".join(lines[:-1]).strip()
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return {}, ""


def _file_samples(res: Results, key: str, engines: list[Engine], by_engine: dict[str, Any]) -> None:
    """Add each Docker-API engine's samples to figure ``key``; say why one has none."""
    for e in engines:
        if e.docker_host is None:
            res.note(key, e.name, "not run (docker API only)")
            continue
        vals = by_engine.get(e.name, [])
        for v in vals:
            res.add(key, e.name, float(v))
        if not vals:
            res.note(key, e.name, "script failed")


def throughput(engines: list[Engine], res: Results, extras: list[tuple[str, str]]) -> None:
    """bench/ports_bench.py with every Docker-API engine at once, interleaved run by run."""
    api = [e for e in engines if e.docker_host is not None]
    script = os.path.join(ROOT, "bench", "ports_bench.py")
    if not os.path.exists(script) or not api:
        return
    labels = {
        "tp_loop": "throughput host → 127.0.0.1:published port (Gbit/s, iperf3)",
        "tp_addr": "throughput host → host address:published port (Gbit/s)",
        "tp_c2c": "throughput container → container, one network (Gbit/s)",
    }
    for key, label in labels.items():
        res.fig(key, "5", label, "{:.1f}", lower=False)
    common = ["--seconds", "3", "--runs", "5", "--scale", "0", "--json"]
    argv = [sys.executable, script, *common]
    for e in api:
        argv += ["--engine", f"{e.name}={e.docker_host},{e.host.netns_path},{e.host.address}"]
    log(f"extra: ports_bench.py ({', '.join(e.name for e in api)}, interleaved)")
    samples, tables = _json_samples(argv, 400)
    for key in labels:
        _file_samples(res, key, engines, samples.get(key, {}))
    cmd = f"python bench/ports_bench.py {' '.join(common)} --engine NAME=... (each engine)"
    extras.append(("Throughput, per engine (bench/ports_bench.py, iperf3)",
                   f"`{cmd}`, engines interleaved run by run, in the same lab and run as the "
                   f"table above:\n\n{tables or '(failed)'}"))  # fmt: skip


def run_extra(x: Extra, quick: bool) -> tuple[str, str] | None:
    path = os.path.join(ROOT, x.script)
    if not os.path.exists(path):
        return None
    argv = [sys.executable, path, *(x.quick if quick else x.full)]
    log(f"extra: {' '.join(argv[1:])}")
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, env=_script_env(), cwd=ROOT, capture_output=True, text=True,
                           timeout=x.timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return x.title, f"(did not finish within {x.timeout:.0f} s)"
    took = time.monotonic() - t0
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        return x.title, f"(failed with status {p.returncode}:)\n\n```\n{tail}\n```"
    cmd = " ".join(["python", x.script, *(x.quick if quick else x.full)])
    return x.title, f"`{cmd}` ({took:.0f} s):\n\n{p.stdout.strip()}"


def start_floor(lab: Lab, tarball: str) -> floor.Floor | None:
    """bench/floor.py's by-hand container start, in a lab host of its own (None: it failed)."""
    try:
        host = lab.add_host("floor", daemon=False)
        work = tempfile.mkdtemp(prefix="tether-floor-", dir="/run")
        return floor.Floor(work, tarball, host.netns_path)
    except (OSError, LabError, subprocess.SubprocessError) as exc:
        log(f"floor: not measured: {exc}")
        return None


def floor_section(res: Results, extras: list[tuple[str, str]]) -> None:
    if not res.floor_parts:
        return
    samples = [dict(zip(res.floor_parts, v, strict=True))
               for v in zip(*res.floor_parts.values(), strict=True)]  # fmt: skip
    extras.append(("The floor of run → reachable (bench/floor.py)",
                   "The same work as `run -d ... httpd` by hand, one sample after each round of "
                   "§2 in the same lab (a host of its own): its total is the `limit` column of "
                   f"`run_tcp`. Its parts (ms):\n\n{floor.summary(samples)}"))  # fmt: skip


def compile_for_launcher() -> None:
    """Byte-compile tether's sources for bin/tether's interpreter (its shebang), as an
    installed package is: with ``PYTHONDONTWRITEBYTECODE`` set, a source newer than its
    ``.pyc`` would be compiled again on every CLI call (~2 ms per changed module)."""
    launcher = os.path.join(ROOT, "bin", "tether")
    with open(launcher) as f:
        interpreter = f.readline()[2:].split()[0]
    subprocess.run([interpreter, "-m", "compileall", "-q", os.path.join(ROOT, "src", "tether")],
                   check=False, capture_output=True)  # fmt: skip


def remove_stale_labs() -> None:
    for name in Lab.list():
        if name.startswith(LAB_PREFIX):
            log(f"removing lab {name} left by an earlier bench run")
            try:
                Lab.destroy(name)
            except LabError as exc:
                log(f"  could not: {exc}")


def start_engines(lab: Lab, wanted: list[str], unavailable: dict[str, str]) -> list[Engine]:
    engines: list[Engine] = []
    for name in wanted:
        host = lab.add_host(name, daemon=False)
        eng = ENGINES[name](lab, host)
        try:
            eng.start()
        except (BenchError, LabError, OSError, subprocess.SubprocessError) as exc:
            unavailable[name] = str(exc).splitlines()[0][:300]
            log(f"{name}: not measured: {unavailable[name]}")
            eng.stop()
            continue
        log(f"{name}: {eng.version}")
        engines.append(eng)
    return engines


def scale_case(engines: list[Engine], res: Results, sizes: Sizes, turns: bool) -> None:
    """``sizes.scale`` containers: each engine's own fill (the flatness target's figure, with
    its RSS and one timed ``rm -f``), then, unless ``turns`` is false, both engines filling in
    turn, one container each, for the record: that figure adds the other engine's growing load
    to each one's own scaling (bench/FINDINGS.md "Scale" steps 7-8)."""
    n = sizes.scale
    big = [e for e in engines if e.name in SCALE_ENGINES]
    for e in big:
        log(f"§3 {n} containers, {e.name} alone (settled after {cases.settle():.0f} s)")
        cases.many_scale([e], res, n, sizes.scale_limit)
        time.sleep(1)
        cases.memory([e], res, "rss_big", f"daemon RSS with {n} containers running (MiB)")
        cases.remove_all([e], res, "big_rm", f"remove those {n}: one `rm -f` with every id (s)")
        e.cleanup()
    if turns and len(big) > 1:
        names = ", ".join(e.name for e in big)
        log(f"§3 {n} containers, {names} in turn (settled after {cases.settle():.0f} s)")
        cases.many_scale(big, res, n, sizes.scale_limit * len(big), prefix="mix")
        for e in big:
            e.cleanup()
    for e in engines:
        if e not in big:
            for key in ("big_total", "rss_big", "big_rm"):
                res.note(key, e.name, "not run (time)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples: about 2 minutes")
    ap.add_argument("--engines", default="tether,docker,podman")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--no-extras", action="store_true", help="skip the per-area helper scripts")
    ap.add_argument("--no-scale-turns", action="store_true", help="skip the scale case's "
                    "fill by both engines in turn (each one's own fill still runs)")  # fmt: skip
    ap.add_argument("--scale", type=int, help="containers of the scale case (0: skip; "
                    "default 500, 0 with --quick)")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (it builds network namespaces and runs engines)", file=sys.stderr)
        return 2
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "tether" not in wanted or any(e not in ENGINES for e in wanted):
        ap.error(f"--engines: a subset of {','.join(ENGINES)} that includes tether")
    sizes = QUICK if args.quick else FULL
    if args.scale is not None:
        sizes.scale, sizes.scale_limit = args.scale, sizes.scale_limit or FULL.scale_limit
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.monotonic()
    res = Results()
    unavailable: dict[str, str] = {}
    versions: dict[str, str] = {}
    load0 = os.getloadavg()
    compile_for_launcher()
    remove_stale_labs()
    tmp = tempfile.mkdtemp(prefix="tether-bench-")
    tarball = os.path.join(tmp, "busybox.tar")
    subprocess.run(["sh", os.path.join(ROOT, "scripts", "build-busybox-image.sh"), tarball],
                   check=True)  # fmt: skip
    name = f"{LAB_PREFIX}{secrets.token_hex(3)}"
    log(f"lab {name}")
    lab = Lab.up(name, [], daemons=False)
    engines: list[Engine] = []
    extras: list[tuple[str, str]] = []
    try:
        engines = start_engines(lab, wanted, unavailable)
        versions = {e.name: e.version for e in engines}
        for e in engines:
            e.import_image(tarball)
        time.sleep(1)
        cases.memory(engines, res, "rss_idle", "daemon RSS, idle after start and import (MiB)")
        cases.setup_networks(engines)
        # bin/tether: the launcher `make setup` installs as .venv/bin/tether; each engine
        # through its own client is the comparison of issue 21's targets against Podman
        tether_cli = [os.path.join(ROOT, "bin", "tether")]
        log("§1 network create / rm (tether also through its own CLI)")
        cases.network_create_rm(engines, res, sizes.net, tether_cli)
        log("§2 run until reachable (and its floor, bench/floor.py)")
        fl = start_floor(lab, tarball)
        try:
            cases.run_reachable(engines, res, sizes.run, fl, tether_cli)
        finally:
            if fl is not None:
                fl.close()
        floor_section(res, extras)
        log("§3 connect / disconnect")
        cases.connect_disconnect(engines, res, sizes.cd)
        log("§8 CLI wall time")
        cases.cli_wall(engines, res, sizes.cli, tether_cli)
        for e in engines:
            e.cleanup()
        cases.setup_networks(engines)
        log(f"§3 {sizes.many} containers")
        cases.many_containers(engines, res, sizes.many)
        time.sleep(1)
        cases.memory(engines, res, "rss_many",
                     f"daemon RSS with {sizes.many} containers running (MiB)")  # fmt: skip
        cases.monitor_memory(engines, res)
        t0 = time.monotonic()
        for e in engines:
            t = time.monotonic()
            e.cleanup()
            log(f"  {e.name}: removed {sizes.many} containers in {time.monotonic() - t:.1f} s")
        cases.setup_networks(engines)
        log("§7 restart latency")
        cases.restart_latency(engines, res, sizes.restart)
        for e in engines:
            e.cleanup()
        log(f"  cleanup took {time.monotonic() - t0:.0f} s")
        log("§4 DNS from inside a container")
        dns_case.dns(engines, res, sizes.dns_rounds, sizes.dns_seconds, sizes.dns_single)
        if not args.no_extras and not args.quick:
            in_lab_extras(engines, res, extras)
        log("§5 IPv6: container ↔ container, published port, DNS AAAA")
        ipv6_case.ipv6(engines, res, 1 if args.quick else 5, 1 if args.quick else 3)
        if sizes.scale:
            for e in engines:
                e.cleanup()
            try:
                scale_case(engines, res, sizes, turns=not args.no_scale_turns)
            except BenchError as exc:  # keep what was measured before it
                log(f"scale case: {exc}")
                res.notes.append(f"the scale case stopped: {str(exc).splitlines()[0][:300]}")
    finally:
        for e in engines:
            try:
                e.cleanup()
            except Exception as exc:  # keep tearing down
                log(f"{e.name}: cleanup: {exc}")
            e.stop()
        try:
            lab.down()
        except LabError as exc:
            log(f"lab teardown: {exc}")
    if not args.no_extras and not args.quick:
        for x in EXTRAS:
            got = run_extra(x, args.quick)
            if got is not None:
                extras.append(got)
    load1 = os.getloadavg()
    res.notes.append(
        f"load average (1/5/15 min) at the start {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, "
        f"at the end {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f} on {os.cpu_count()} cores: "
        "other work on the machine slows every column alike, so compare ratios."
    )
    names = [e for e in wanted if e in versions] + [e for e in wanted if e in unavailable]
    argv = [".venv/bin/python", "-m", "bench.run", *sys.argv[1:]]
    write(args.out, res, [n for n in names if n not in unavailable], versions, unavailable,
          argv, started, time.monotonic() - t_start, extras)  # fmt: skip
    log(f"wrote {args.out} ({time.monotonic() - t_start:.0f} s); raw results in {RAW} "
        "(render again: python -m bench.report)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
