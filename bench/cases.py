"""The measurements. Each case loops a bounded number of times over all engines, rotating
which engine goes first, and records its samples in a ``Results``."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.engines import Engine, proc_mem
from bench.floor import Floor
from bench.netns import wait_tcp
from bench.stats import Samples

HTTPD = ("httpd", "-f", "-p", "80", "-h", "/var/www")
MIB = 1024 * 1024


@dataclass
class Figure:
    section: str
    label: str
    fmt: str = "{:.0f}"
    lower_is_better: bool = True


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    data: dict[str, dict[str, Samples]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    floor_parts: dict[str, list[float]] = field(default_factory=dict)  # bench/floor.py

    def fig(
        self, key: str, section: str, label: str, fmt: str = "{:.0f}", lower: bool = True
    ) -> dict[str, Samples]:
        self.figures.setdefault(key, Figure(section, label, fmt, lower))
        return self.data.setdefault(key, {})

    def add(self, key: str, engine: str, value: float) -> None:
        self.data[key].setdefault(engine, Samples()).add(value)

    def note(self, key: str, engine: str, text: str) -> None:
        self.data[key].setdefault(engine, Samples()).note = text


def rotations(engines: list[Engine], n: int) -> list[tuple[int, list[Engine]]]:
    out = []
    for i in range(n):
        k = i % len(engines)
        out.append((i, engines[k:] + engines[:k]))
    return out


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------- § 1


def network_create_rm(engines: list[Engine], res: Results, n: int) -> None:
    res.fig("net_create", "1", "`network create` (bridge, --subnet/--gateway) (ms)")
    res.fig("net_rm", "1", "`network rm` (ms)")
    for i, order in rotations(engines, n):
        name = f"benchnet{i}"
        args = ("network", "create", "--subnet", f"10.77.{i}.0/24", "--gateway", f"10.77.{i}.1")
        for e in order:
            res.add("net_create", e.name, e.cli(*args, name).ms)
        for e in order:
            res.add("net_rm", e.name, e.cli("network", "rm", name).ms)


# ---------------------------------------------------------------------------------- § 2


def setup_networks(engines: list[Engine]) -> None:
    """bench-run 172.30.0.0/24 (fixed IPs), bench-cd 172.29.0.0/24, bench-50 10.50.0.0/16."""
    for e in engines:
        e.cli("network", "create", "--subnet", "172.30.0.0/24", "--gateway", "172.30.0.1",
              "benchrun")  # fmt: skip
        e.cli("network", "create", "--subnet", "172.29.0.0/24", "--gateway", "172.29.0.1",
              "benchcd")  # fmt: skip
        e.cli("network", "create", "--subnet", "10.50.0.0/16", "--gateway", "10.50.0.1",
              "bench50")  # fmt: skip


def run_reachable(engines: list[Engine], res: Results, n: int, floor: Floor | None = None) -> None:
    """With ``floor`` (bench/floor.py), one sample of the floor after each round of the
    engines: the figure's "limit" column, and each part of it in ``floor_parts``."""
    res.fig("run_ret", "2", "`run -d --network NET --ip IP alpine httpd` returns (ms)")
    res.fig("run_tcp", "2", "from `run` call until a TCP connect from the host to IP:80 works (ms)")
    for i, order in rotations(engines, n):
        if floor is not None:
            try:
                sample = floor.one(i)
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
                log(f"floor: {exc}; no more floor samples")
                res.note("run_tcp", "limit", "floor failed")
                floor.remove(i)
                floor = None
            else:
                floor.remove(i)
                res.add("run_tcp", "limit", sample["total"])
                for part, ms in sample.items():
                    res.floor_parts.setdefault(part, []).append(ms)
        ip = f"172.30.0.{10 + i}"
        for e in order:
            t0 = time.monotonic()
            r = e.cli("run", "-d", *e.run_opts, "--name", f"web{i}", "--network", "benchrun",
                      "--ip", ip, "alpine", *HTTPD)  # fmt: skip
            res.add("run_ret", e.name, r.ms)
            t = wait_tcp(e.host.netns_path, ip, 80)
            if t is None:
                res.note("run_tcp", e.name, "not reachable in 15 s")
            else:
                res.add("run_tcp", e.name, (t - t0) * 1000)


# ---------------------------------------------------------------------------------- § 3


def connect_disconnect(engines: list[Engine], res: Results, n: int) -> None:
    res.fig("connect", "3", "`network connect` of a running container (ms)")
    res.fig("disconnect", "3", "`network disconnect` (ms)")
    for _, order in rotations(engines, n):
        for e in order:
            res.add("connect", e.name, e.cli("network", "connect", "benchcd", "web0").ms)
        for e in order:
            res.add("disconnect", e.name, e.cli("network", "disconnect", "benchcd", "web0").ms)


def many_containers(engines: list[Engine], res: Results, n: int) -> None:
    res.fig("many_total", "3", f"{n} containers in sequence on one network: total (s)", "{:.1f}")
    res.fig("many_one", "3", f"one `run -d ... sleep 1000` within those {n} (ms, n={n})")
    res.fig("many_first", "3", "per-container median, first 10 (ms)")
    res.fig("many_last", "3", "per-container median, last 10 (ms)")
    res.fig("many_flat", "3", "last-10 / first-10 median", "{:.2f}")
    per: dict[str, list[float]] = {e.name: [] for e in engines}
    for i, order in rotations(engines, n):
        for e in order:
            r = e.cli("run", "-d", *e.run_opts, "--name", f"many{i}", "--network", "bench50",
                      "alpine", "sleep", "1000")  # fmt: skip
            per[e.name].append(r.ms)
            res.add("many_one", e.name, r.ms)
        if (i + 1) % 10 == 0:
            log(f"  {i + 1}/{n} containers per engine")
    for name, v in per.items():
        res.add("many_total", name, sum(v) / 1000)
        first, last, flat = flatness(v)
        res.add("many_first", name, first)
        res.add("many_last", name, last)
        res.add("many_flat", name, flat)


def flatness(v: list[float], k: int = 10) -> tuple[float, float, float]:
    """(median of the first k, median of the last k, last / first) of per-container times."""
    k = max(1, min(k, len(v) // 2))
    first, last = statistics.median(v[:k]), statistics.median(v[-k:])
    return first, last, last / first


def many_scale(
    engines: list[Engine], res: Results, n: int, limit_s: float, prefix: str = "big"
) -> None:
    """``n`` containers per engine on a fresh network ``bench<prefix>`` (a /16), bounded.

    With one engine this is that engine's own fill (how the main table's ``big_*`` figures are
    taken: the machine holds only its containers); with several, they fill in turn, one
    container each (``prefix`` "mix": a figure of the two engines' combined load, see
    bench/FINDINGS.md "Scale" step 8). Stops adding after ``limit_s`` seconds (all engines
    together) and says how many each got. The containers are left running: the caller
    measures memory, then removes them (timed).
    """
    both = " (engines filling in turn)" if prefix != "big" else ""
    res.fig(f"{prefix}_total", "3", f"{n} containers in sequence on one network{both}: "
            "total (s)", "{:.1f}")  # fmt: skip
    res.fig(f"{prefix}_first", "3", f"per-container median, first 10 of {n}{both} (ms)")
    res.fig(f"{prefix}_last", "3", f"per-container median, last 10 of {n}{both} (ms)")
    res.fig(f"{prefix}_flat", "3", f"last-10 / first-10 median, {n} containers{both}", "{:.2f}")
    # its own name and subnet: dockerd can hold a network for a while after a large removal
    net, sub = f"bench{prefix}", "10.60" if prefix == "big" else "10.61"
    for e in engines:
        e.cli("network", "create", "--subnet", f"{sub}.0.0/16", "--gateway", f"{sub}.0.1",
              net)  # fmt: skip
    per: dict[str, list[float]] = {e.name: [] for e in engines}
    deadline = time.monotonic() + limit_s
    for i, order in rotations(engines, n):
        if time.monotonic() > deadline:
            log(f"  stopped at {i} containers per engine (limit {limit_s:.0f} s)")
            break
        for e in order:
            r = e.cli("run", "-d", *e.run_opts, "--name", f"{prefix}{i}", "--network", net,
                      "alpine", "sleep", "100000", check=False)  # fmt: skip
            if r.rc == 0:
                per[e.name].append(r.ms)
        if (i + 1) % 50 == 0:
            log(f"  {i + 1}/{n} containers per engine")
    for name, v in per.items():
        if len(v) < 2:
            res.note(f"{prefix}_total", name, "failed")
            continue
        res.add(f"{prefix}_total", name, sum(v) / 1000)
        if len(v) < n:
            res.note(f"{prefix}_total", name, f"only {len(v)} in the time limit")
        first, last, flat = flatness(v)
        log(f"  {name}: first-10 {first:.0f} ms, last-10 {last:.0f} ms, flat {flat:.2f}")
        res.add(f"{prefix}_first", name, first)
        res.add(f"{prefix}_last", name, last)
        res.add(f"{prefix}_flat", name, flat)


def settle(idle: float = 0.9, window_s: float = 2.0, limit_s: float = 120.0) -> float:
    """Wait until the machine is idle (``idle`` of its CPU time over ``window_s``) or
    ``limit_s`` passed, e.g. after the previous case's teardown; returns the seconds waited.

    The scale case runs after a removal of hundreds of containers; their exits and the
    kernel's namespace cleanup go on for tens of seconds after the CLI returns, and would
    slow the next fill's first containers (so flatter its ratio than the truth)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        a = _cpu_times()
        time.sleep(window_s)
        b = _cpu_times()
        total = sum(b) - sum(a)
        if total > 0 and (b[3] + b[4] - a[3] - a[4]) / total >= idle:
            break
    return time.monotonic() - t0


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def remove_all(engines: list[Engine], res: Results, key: str, label: str) -> None:
    """Time one ``rm -f`` of every container of each engine (the CLI call, in seconds)."""
    res.fig(key, "3", label, "{:.1f}")
    for e in engines:
        ids = e.cli("ps", "-aq", check=False).out.split()
        if not ids:
            continue
        r = e.cli("rm", *e.rm_opts, *ids, check=False, timeout=600)
        res.add(key, e.name, r.ms / 1000)
        if r.rc != 0:
            res.note(key, e.name, f"rm failed ({r.rc})")
        log(f"  {e.name}: removed {len(ids)} containers in {r.ms / 1000:.1f} s")


# ---------------------------------------------------------------------------------- § 6


def memory(engines: list[Engine], res: Results, key: str, label: str) -> None:
    res.fig(key, "6", label, "{:.1f}")
    for e in engines:
        mem = e.daemon_memory()
        if not mem:
            res.note(key, e.name, "no daemon")
            continue
        res.add(key, e.name, sum(r for r, _ in mem.values()) / MIB)
        if len(mem) > 1:
            parts = ", ".join(f"{k} {r / MIB:.1f}" for k, (r, _) in mem.items())
            res.note(key, e.name, parts)


def monitor_memory(engines: list[Engine], res: Results) -> None:
    res.fig("mon_rss", "6", "per-container monitor RSS (MiB, median)", "{:.1f}")
    res.fig("mon_pss", "6", "per-container monitor PSS (MiB, median)", "{:.2f}")
    for e in engines:
        pids = e.monitor_pids()
        if not pids:
            res.note("mon_pss", e.name, "no monitor found")
            continue
        mems = [proc_mem(p) for p in pids]
        res.add("mon_rss", e.name, statistics.median(r for r, _ in mems) / MIB)
        res.add("mon_pss", e.name, statistics.median(p for _, p in mems) / MIB)
        res.note("mon_pss", e.name, f"{len(pids)} × {e.monitor_comm}")


# ---------------------------------------------------------------------------------- § 7


def _pid_gone(pid: int, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.001)


def restart_latency(engines: list[Engine], res: Results, n: int) -> None:
    res.fig("restart", "7", "`--restart always`: PID 1 killed → serving TCP again (ms)")
    for i, order in rotations(engines, n):
        ip = f"172.30.0.{100 + i}"
        for e in order:
            e.cli("run", "-d", *e.run_opts, "--restart", "always", "--name", f"rs{i}",
                  "--network", "benchrun", "--ip", ip, "alpine", *HTTPD)  # fmt: skip
            if wait_tcp(e.host.netns_path, ip, 80) is None:
                res.note("restart", e.name, "first start not reachable")
                continue
            pid = int(e.cli("inspect", "-f", "{{.State.Pid}}", f"rs{i}").out.strip())
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            _pid_gone(pid)  # a zombie has closed its listening socket already
            t = wait_tcp(e.host.netns_path, ip, 80, limit=20)
            if t is None:
                res.note("restart", e.name, "did not come back within 20 s")
            else:
                res.add("restart", e.name, (t - t0) * 1000)
            e.cli("rm", *e.rm_opts, f"rs{i}", check=False)


# ---------------------------------------------------------------------------------- CLI


def cli_wall(engines: list[Engine], res: Results, n: int, tether_cli: list[str]) -> None:
    """``network ls``, ``ps`` and ``network inspect`` through each engine's client, and
    through tether's own CLI (``tether_cli``) against the same daemon."""
    verbs = {"ls": ("network", "ls"), "ps": ("ps",), "inspect": ("network", "inspect", "benchrun")}
    for key, words in verbs.items():
        verb = " ".join(words[:2])
        res.fig(f"{key}_cli", "8", f"`{verb}` through the engine's usual client (ms)")
        res.fig(f"tether_{key}", "8", f"`tether {verb}` (tether's own CLI) wall (ms)")
    tether = next((e for e in engines if e.name == "tether"), None)
    for _, order in rotations(engines, n):
        for key, words in verbs.items():
            for e in order:
                res.add(f"{key}_cli", e.name, e.cli(*words).ms)
            if tether is not None:
                t0 = time.perf_counter()
                subprocess.run([*tether_cli, *words], env=tether.env(),
                               capture_output=True, check=True)  # fmt: skip
                res.add(f"tether_{key}", "tether", (time.perf_counter() - t0) * 1000)


Case = Callable[..., None]
