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
from typing import TypeVar

from bench.engines import BenchError, CliResult, Engine, proc_mem
from bench.floor import Floor
from bench.netns import preexec, wait_tcp
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


T = TypeVar("T")


def rotations(engines: list[T], n: int) -> list[tuple[int, list[T]]]:
    out = []
    for i in range(n):
        k = i % len(engines)
        out.append((i, engines[k:] + engines[:k]))
    return out


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


OWN = "tether-own"  # tether through its own CLI, a client of the rotation beside the engines


def own_cli(e: Engine, tether_cli: list[str], *args: str, timeout: float = 120.0) -> CliResult:
    """``args`` through tether's own CLI (``tether_cli``, bin/tether) against engine ``e``'s
    daemon, called exactly as :meth:`Engine.cli` calls the docker CLI (fork, setns into the
    engine's namespace, exec, the same environment)."""
    t0 = time.perf_counter()
    p = subprocess.run([*tether_cli, *args], env=e.env(), capture_output=True, text=True,
                       timeout=timeout, preexec_fn=preexec(e.host.netns_path))  # fmt: skip
    ms = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise BenchError(f"tether CLI: {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return CliResult(ms, p.returncode, p.stdout, p.stderr)


Client = tuple[str, Engine]  # (the name samples go under, the engine whose daemon answers)


def clients(engines: list[Engine], tether_cli: list[str] | None) -> list[Client]:
    """Each engine through its usual client, and tether through its own CLI (``OWN``) too
    when ``tether_cli`` is given: the members of a rotation."""
    out = [(e.name, e) for e in engines]
    tether = next((e for e in engines if e.name == "tether"), None)
    if tether_cli is not None and tether is not None:
        out.append((OWN, tether))
    return out


def call(client: Client, tether_cli: list[str] | None, *args: str) -> CliResult:
    name, e = client
    if name == OWN:
        assert tether_cli is not None
        return own_cli(e, tether_cli, *args)
    return e.cli(*args)


def own_rows(res: Results, pairs: dict[str, str]) -> None:
    """Fill the own-client rows ``pairs`` (own key -> usual key): tether's samples through
    its own CLI, and every other engine's (and the limit's) samples of the usual row,
    whose client is already its own (the docker CLI for Docker, podman for Podman)."""
    for own_key, key in pairs.items():
        row = res.data.get(own_key, {})
        mine = row.pop(OWN, None)
        for engine, samples in res.data.get(key, {}).items():
            if engine != "tether":
                row[engine] = samples
        if mine is not None:
            row["tether"] = mine
        res.data[own_key] = row


# ---------------------------------------------------------------------------------- § 1


def network_create_rm(
    engines: list[Engine], res: Results, n: int, tether_cli: list[str] | None = None
) -> None:
    """With ``tether_cli`` (bin/tether), tether is also driven by its own CLI, as one more
    client in the rotation (its own networks: benchown*, 10.78.i.0/24): the rows
    ``net_create_own``/``net_rm_own``, where each engine goes through its own client."""
    res.fig("net_create", "1", "`network create` (bridge, --subnet/--gateway) (ms)")
    res.fig("net_rm", "1", "`network rm` (ms)")
    if tether_cli is not None:
        res.fig("net_create_own", "1", OWN_LABEL.format("`network create`"))
        res.fig("net_rm_own", "1", OWN_LABEL.format("`network rm`"))
    members = clients(engines, tether_cli)
    for i, order in rotations(members, n):
        names: dict[str, str] = {}
        for c in order:
            own = c[0] == OWN
            names[c[0]] = name = f"benchown{i}" if own else f"benchnet{i}"
            net = f"10.{78 if own else 77}.{i}"
            args = ("network", "create", "--subnet", f"{net}.0/24", "--gateway", f"{net}.1")
            res.add("net_create_own" if own else "net_create", c[0],
                    call(c, tether_cli, *args, name).ms)  # fmt: skip
        for c in order:
            own = c[0] == OWN
            res.add("net_rm_own" if own else "net_rm", c[0],
                    call(c, tether_cli, "network", "rm", names[c[0]]).ms)  # fmt: skip
    if tether_cli is not None:
        own_rows(res, {"net_create_own": "net_create", "net_rm_own": "net_rm"})


OWN_LABEL = (
    "{}, each engine through its own client: tether `tether` (bin/tether), "
    "Docker the docker CLI, Podman podman (their samples: the row above) (ms)"
)


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


def run_reachable(
    engines: list[Engine],
    res: Results,
    n: int,
    floor: Floor | None = None,
    tether_cli: list[str] | None = None,
) -> None:
    """With ``floor`` (bench/floor.py), one sample of the floor after each round of the
    engines: the figure's "limit" column, and each part of it in ``floor_parts``. With
    ``tether_cli`` (bin/tether), tether is also driven by its own CLI, one more client in the
    rotation (its containers webown*, 172.30.0.60+i): the rows ``run_ret_own`` and
    ``run_tcp_own``, each engine through its own client (the floor beside them too)."""
    res.fig("run_ret", "2", "`run -d --network NET --ip IP alpine httpd` returns (ms)")
    res.fig("run_tcp", "2", "from `run` call until a TCP connect from the host to IP:80 works (ms)")
    if tether_cli is not None:
        res.fig("run_ret_own", "2", OWN_LABEL.format("`run -d` returns"))
        res.fig("run_tcp_own", "2", OWN_LABEL.format("`run -d` call until TCP reachable"))
    for i, order in rotations(clients(engines, tether_cli), n):
        if floor is not None:
            floor = _floor_sample(floor, res, i)
        for c in order:
            own = c[0] == OWN
            name = f"webown{i}" if own else f"web{i}"
            ip = f"172.30.0.{(60 if own else 10) + i}"
            e = c[1]
            opts = [] if own else e.run_opts
            t0 = time.monotonic()
            r = call(c, tether_cli, "run", "-d", *opts, "--name", name, "--network", "benchrun",
                     "--ip", ip, "alpine", *HTTPD)  # fmt: skip
            res.add("run_ret_own" if own else "run_ret", c[0], r.ms)
            t = wait_tcp(e.host.netns_path, ip, 80)
            key = "run_tcp_own" if own else "run_tcp"
            if t is None:
                res.note(key, c[0], "not reachable in 15 s")
            else:
                res.add(key, c[0], (t - t0) * 1000)
    if tether_cli is not None:
        own_rows(res, {"run_ret_own": "run_ret", "run_tcp_own": "run_tcp"})


def _floor_sample(floor: Floor, res: Results, i: int) -> Floor | None:
    """One sample of the floor into ``run_tcp``'s limit column; None when it failed."""
    try:
        sample = floor.one(i)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        log(f"floor: {exc}; no more floor samples")
        res.note("run_tcp", "limit", "floor failed")
        floor.remove(i)
        return None
    floor.remove(i)
    res.add("run_tcp", "limit", sample["total"])
    for part, ms in sample.items():
        res.floor_parts.setdefault(part, []).append(ms)
    return floor


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
    through tether's own CLI (``tether_cli``) against the same daemon, called the same way
    (:func:`own_cli`: fork, setns, exec)."""
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
                res.add(f"tether_{key}", "tether", own_cli(tether, tether_cli, *words).ms)


Case = Callable[..., None]
