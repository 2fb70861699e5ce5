"""The cluster at scale (issue 20): H lab hosts with etcd, one overlay, M containers per host.

    sudo PYTHONPATH=src .venv/bin/python -m bench.scale_cluster --hosts 10,30,60,100 \\
        [--per-host 2] [--clients 16] [--pairs 20] [--idle-seconds 10] [--out docs/benchmarks.md]
    sudo PYTHONPATH=src .venv/bin/python -m bench.scale_cluster --hosts 20 --per-host 100

For each host count: builds a lab (``c3s<random>``: H hosts, one etcd, a daemon each), imports
the busybox image, creates one overlay on host 1, then

- build: ``Lab.up`` until every daemon answers (the image import is not counted);
- RSS per daemon: median ``VmRSS`` of the daemons, idle, after the containers started;
- create -> listed everywhere: a second overlay created on host 1 (``POST /networks/create``)
  until ``GET /networks/NAME`` answers 200 on every host (polled over the API sockets);
- the storm: M containers per host (``docker run -d``) by P parallel docker clients
  (``--clients``; host 1's containers first); every failure is counted and its text kept;
- CPU per learnt endpoint: host 1's daemon CPU time (``/proc/PID/stat``) from just before the
  other hosts' containers start until its overlay namespace holds an FDB entry for each of
  them, less its idle rate over the same time, divided by the endpoints learnt; with
  ``--bare``, one more host without any container, measured over the same start + 2 s (the
  "only networks with local endpoints" rule: it keeps the records and programs nothing).
  CPU time comes in 10 ms ticks: the figure means something from ~100 endpoints learnt;
- run -> pingable by name from host 1: a container started on a random other host until a
  container on host 1 pings it by name (``docker exec ... ping -c1 -W1``, retried; median of 3);
- 20 random cross-host pairs ping by name (``--pairs``);
- idle CPU of all daemons together, % of one core, over ``--idle-seconds``;
- lease re-grants and etcd timeouts during the run: lines of the daemons' logs from the lab's
  start (``LeaseKeeper``'s "granting a new one"; "timed out", "unreachable" or "deadline
  exceeded" on a line of the cluster's loggers or naming etcd or the cluster store).

The table goes to ``--out`` (default bench/FINDINGS.md, which ``make bench`` copies into
docs/benchmarks.md, and docs/benchmarks.md itself) between the markers below: a row per
case, replaced when the same case runs again, other rows kept. Needs root; lab traffic only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):  # PYTHONPATH=/other/src: that tree's daemons (before/after)
    sys.path.insert(0, str(REPO / "src"))

from bench.labapi import api  # noqa: E402
from tether.lab.lab import Lab, LabHost  # noqa: E402

DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
IMAGE = "alpine:latest"
BEGIN = "<!-- scale_cluster:begin -->"
END = "<!-- scale_cluster:end -->"
COLUMNS = (
    "case", "build", "RSS per daemon", "create → listed everywhere",
    "run → pingable by name from host 1", "cross-host pairs by name", "idle CPU, all daemons",
    "docker run failures", "lease re-grants / etcd timeouts", "CPU per learnt endpoint",
    "load avg",
)  # fmt: skip
REGRANT = re.compile(r"granting a new one")
TIMEOUT = re.compile(r"timed out|deadline exceeded|is unreachable", re.I)
CLUSTER_LINE = re.compile(r" tether\.(store|cluster)|etcd|cluster store")  # not DNS forwarding
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- plumbing ------------------------------------------------------------------------------
def docker(h: LabHost, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKER_HOST=h.docker_host)
    for k in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(k, None)
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pid_of(h: LabHost) -> int:
    pid = h.daemon_pid
    if pid is None:
        raise SystemExit(f"{h.name}: no daemon")
    return pid


def overlay_fdb_count(h: LabHost, net_id: str) -> int:
    """FDB entries with a remote VTEP on the overlay's VXLAN device of ``h`` (0: not wired)."""
    ns = os.path.join(h.exec_root, "overlay", net_id[:12])
    if not os.path.exists(ns):
        return 0
    r = subprocess.run(["nsenter", f"--net={ns}", "bridge", "fdb", "show",
                        "dev", f"tvx-{net_id[:11]}"], capture_output=True, text=True)  # fmt: skip
    return sum(1 for line in r.stdout.splitlines() if " dst " in line)


def log_counts(lab: Lab, offsets: dict[str, int]) -> tuple[int, int]:
    regrants = timeouts = 0
    for h in lab.hosts.values():
        try:
            with open(h.daemon_log, errors="replace") as f:
                f.seek(offsets.get(h.name, 0))
                for line in f:
                    regrants += bool(REGRANT.search(line))
                    timeouts += bool(TIMEOUT.search(line) and CLUSTER_LINE.search(line))
        except OSError:
            continue
    return regrants, timeouts


# ---- phases ----------------------------------------------------------------------------------
@dataclass
class Case:
    hosts: int
    per_host: int
    clients: int
    label: str
    row: dict[str, str] = field(default_factory=dict)


def build(name: str, n: int) -> tuple[Lab, float]:
    names = [f"h{i:03d}" for i in range(1, n + 1)]
    t0 = time.monotonic()
    # 100 daemons importing at once on 2 cores: ~1.5 s of CPU each
    lab = Lab.up(name, names, etcd=True, daemon_timeout=max(30.0, n * 2.0))
    took = time.monotonic() - t0
    with tempfile.TemporaryDirectory() as d:
        tar = Path(d) / "busybox.tar"
        subprocess.run([str(REPO / "scripts/build-busybox-image.sh"), str(tar)], check=True,
                       capture_output=True)  # fmt: skip
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for r in pool.map(lambda h: docker(h, "import", "-c", 'CMD ["/bin/sh"]', str(tar),
                                               IMAGE), lab.hosts.values()):  # fmt: skip
                if r.returncode != 0:
                    raise SystemExit(f"import: {r.stderr}")
    return lab, took


def listed_everywhere(lab: Lab, hosts: list[LabHost], name: str, subnet: str) -> float:
    body = {"Name": name, "Driver": "overlay", "IPAM": {"Config": [{"Subnet": subnet}]}}
    status, got = api(hosts[0], "POST", "/networks/create", body)
    t0 = time.perf_counter()
    if status != 201:
        raise SystemExit(f"network create {name}: {status} {got}")
    pending = list(hosts)
    while pending:
        pending = [h for h in pending if api(h, "GET", f"/networks/{name}")[0] != 200]
        if pending and time.perf_counter() - t0 > 60:
            log(f"  {name} not listed on {len(pending)} hosts after 60 s")
            return float("inf")
    return (time.perf_counter() - t0) * 1000


def start_all(jobs: list[tuple[LabHost, str]], clients: int) -> list[str]:
    """``docker run -d`` for each (host, name) by ``clients`` parallel clients; the errors."""

    def one(job: tuple[LabHost, str]) -> str:
        h, name = job
        r = docker(h, "run", "-d", "--name", name, "--network", "ov", IMAGE, "sleep", "1d")
        return "" if r.returncode == 0 else f"{h.name}/{name}: {r.stderr.strip()[:200]}"

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return [e for e in pool.map(one, jobs) if e]


def pings(h: LabHost, container: str, target: str) -> bool:
    try:
        r = docker(h, "exec", container, "ping", "-c", "1", "-W", "1", target, timeout=30)
    except subprocess.TimeoutExpired:  # an overloaded daemon: a failed ping, not a failed run
        return False
    return r.returncode == 0


def learnt_cpu(h: LabHost, net_id: str, want: int, start_cpu: float, t0: float,
               idle_rate: float, wait_fdb: bool) -> str:  # fmt: skip
    """ms of CPU per endpoint learnt by ``h`` since ``t0`` (``want`` endpoints)."""
    deadline = time.monotonic() + 120
    if wait_fdb:
        while overlay_fdb_count(h, net_id) < want and time.monotonic() < deadline:
            time.sleep(0.05)
        got = overlay_fdb_count(h, net_id)
        if got < want:
            return f"{got}/{want} learnt"
    else:  # a host without endpoints: records only, wait for the watch to quiet down
        time.sleep(2.0)
    spent = cpu_seconds(pid_of(h)) - start_cpu - idle_rate * (time.monotonic() - t0)
    return f"{max(spent, 0.0) * 1000 / max(want, 1):.2f} ms"


def storm(case: Case, hosts: list[LabHost], bare: LabHost | None, net_id: str) -> None:
    """Host 1's containers, then everyone else's by ``case.clients`` parallel clients; the
    CPU per endpoint learnt by host 1 (and by ``bare``, which has no endpoint on the overlay)."""
    row, h1 = case.row, hosts[0]
    mine = [(h1, f"c{h1.index}x{i}") for i in range(case.per_host)]
    errors = start_all(mine, case.clients)  # first: host 1's overlay is wired before the rest
    others = [(h, f"c{h.index}x{i}") for h in hosts[1:] for i in range(case.per_host)]
    watched = [h1] + ([bare] if bare is not None else [])
    pids = [pid_of(h) for h in watched]
    c0, ta = [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(3.0)
    rates = [(cpu_seconds(p) - c) / (time.monotonic() - ta) for p, c in zip(pids, c0, strict=True)]
    c1, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    errors += start_all(others, case.clients)
    log(f"  {len(mine) + len(others)} runs, {len(errors)} failed; load {os.getloadavg()[0]:.2f}")
    ok = len(others) - sum(1 for e in errors if not e.startswith(h1.name + "/"))
    cpu = learnt_cpu(h1, net_id, ok, c1[0], t0, rates[0], True)
    if bare is not None:
        cpu += (
            f" (host without endpoints: {learnt_cpu(bare, net_id, ok, c1[1], t0, rates[1], False)})"
        )
    row["CPU per learnt endpoint"] = cpu
    row["docker run failures"] = f"{len(errors)}/{len(mine) + len(others)}"
    for e in errors[:5]:
        log(f"  failed: {e}")


def idle_figures(case: Case, lab: Lab, offsets: dict[str, int], seconds: float) -> None:
    row = case.row
    pids = [pid_of(h) for h in lab.hosts.values()]
    row["RSS per daemon"] = f"{statistics.median(rss_mb(p) for p in pids):.0f} MB"
    before, t = sum(cpu_seconds(p) for p in pids), time.monotonic()
    time.sleep(seconds)
    idle = (sum(cpu_seconds(p) for p in pids) - before) / (time.monotonic() - t)
    row["idle CPU, all daemons"] = f"{idle * 100:.0f} % of a core"
    regrants, timeouts = log_counts(lab, offsets)
    row["lease re-grants / etcd timeouts"] = f"{regrants} / {timeouts}"
    row["load avg"] = " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_case(case: Case, args: argparse.Namespace) -> None:
    name = f"c3s{secrets.token_hex(2)}"
    log(f"case {case.label}: lab {name}, load {os.getloadavg()[0]:.2f}")
    lab, took = build(name, case.hosts + (1 if args.bare else 0))
    case.row.update({"case": case.label, "build": f"{took:.0f} s"})
    try:
        everyone = list(lab.hosts.values())
        hosts = everyone[: case.hosts]  # with --bare, the last one stays without containers
        bare = everyone[-1] if args.bare else None
        offsets = {h.name: os.path.getsize(h.daemon_log) for h in everyone}
        if listed_everywhere(lab, everyone, "ov", "10.80.0.0/16") == float("inf"):
            raise SystemExit("the overlay never reached every host")
        net_id = str(docker(hosts[0], "network", "inspect", "-f", "{{.Id}}", "ov").stdout.strip())
        storm(case, hosts, bare, net_id)
        listed = listed_everywhere(lab, everyone, "lat", "10.81.0.0/24")
        case.row["create → listed everywhere"] = f"{listed:.0f} ms"
        case.row["run → pingable by name from host 1"] = pingable(hosts, f"c{hosts[0].index}x0")
        case.row["cross-host pairs by name"] = pairs(hosts, case.per_host, args.pairs)
        time.sleep(2.0)
        idle_figures(case, lab, offsets, args.idle_seconds)
    finally:
        if not args.keep:
            t = time.monotonic()
            lab.down()
            log(f"  lab down in {time.monotonic() - t:.0f} s")


def pingable(hosts: list[LabHost], probe: str) -> str:
    """Median of 3: ``docker run -d`` on a random other host returned -> host 1's ``probe``
    pings the new container by name."""
    out = []
    rnd = random.Random(7)
    for i in range(3):
        h = rnd.choice(hosts[1:])
        name = f"new{i}"
        r = docker(h, "run", "-d", "--name", name, "--network", "ov", IMAGE, "sleep", "1d")
        t0 = time.monotonic()
        if r.returncode != 0:
            return f"run failed: {r.stderr.strip()[:80]}"
        while not pings(hosts[0], probe, name):
            if time.monotonic() - t0 > 120:
                return "no ping in 120 s"
        out.append((time.monotonic() - t0) * 1000)
    return f"{statistics.median(out):.0f} ms"


def pairs(hosts: list[LabHost], per_host: int, n: int) -> str:
    rnd = random.Random(11)
    good = 0
    for _ in range(n):
        a, b = rnd.sample(hosts, 2)
        src = f"c{a.index}x{rnd.randrange(per_host)}"
        dst = f"c{b.index}x{rnd.randrange(per_host)}"
        good += pings(a, src, dst) or pings(a, src, dst)
    return f"{good}/{n}"


# ---- the table -----------------------------------------------------------------------------
def write_table(path: Path, rows: list[dict[str, str]]) -> None:
    text = path.read_text() if path.exists() else ""
    old: dict[str, list[str]] = {}
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        body, tail = rest.split(END, 1)
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == len(COLUMNS) and cells[0] not in ("case", "---"):
                old[cells[0]] = cells
    else:
        head, tail = (
            text.rstrip() + "\n\n## The cluster at scale (issue 20; `bench/scale_cluster.py`)\n\n",
            "\n",
        )
    for r in rows:
        old[r["case"]] = [r.get(c, "").replace("|", "/").replace("\n", " ") for c in COLUMNS]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in old.values()]
    path.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="10", help="comma-separated host counts")
    ap.add_argument("--per-host", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    # bench/FINDINGS.md is what `make bench` copies into docs/benchmarks.md; both get the rows
    ap.add_argument("--out", action="append",
                    help="file(s) with the table's markers (default: bench/FINDINGS.md and "
                    "docs/benchmarks.md)")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument("--bare", action="store_true",
                    help="one more host without containers (its CPU per endpoint)")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("scale_cluster needs root (it builds a lab of network namespaces)")
    rows = []
    for n in (int(x) for x in args.hosts.split(",")):
        if n < 2:
            raise SystemExit("--hosts: at least 2")
        label = f"{n} hosts × {args.per_host}, {args.clients} clients"
        label += " (+1 without containers)" if args.bare else ""
        case = Case(n, args.per_host, args.clients, label)
        try:
            run_case(case, args)
        except (SystemExit, Exception) as exc:  # the next host count still runs
            log(f"case {label} failed: {exc}")
            case.row.setdefault("case", label)
            case.row["docker run failures"] = f"case failed: {str(exc)[:80]}"
        rows.append(case.row)
        print(json.dumps(case.row, ensure_ascii=False), flush=True)
        for out in args.out or [REPO / "bench" / "FINDINGS.md", REPO / "docs" / "benchmarks.md"]:
            write_table(Path(out), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
