"""Writes docs/benchmarks.md: machine, versions, how to rerun, the table, targets, findings.

``write`` also saves what it rendered as JSON (``RAW``, beside the machine's temp files), so
``python -m bench.report [--raw FILE] [--out FILE]`` can render the last run again, e.g. after
bench/FINDINGS.md was edited with what the run showed, without measuring again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.cases import Figure, Results
from bench.stats import Samples, ratio

FINDINGS = os.path.join(os.path.dirname(__file__), "FINDINGS.md")
RAW = os.path.join(tempfile.gettempdir(), "tether-bench-last.json")
PEER_LABEL = {"docker": "Docker", "podman": "Podman", "tether": "tether", "limit": "limit"}
LIMIT = "limit"  # a pseudo-engine: the floor of a figure where one is known (bench/floor.py)


@dataclass
class Target:
    keys: tuple[str, ...]  # the first key with a tether median is checked
    text: str
    peer: str | None  # None: an absolute bound on tether's median
    bound: float
    op: str = "<="  # how tether's median (or ratio) compares with the bound: "<=", "<", ">="
    peer_key: str | None = None  # the peer's figure when it is another row (same run)
    also: str | None = None  # another row whose ratio is shown beside (e.g. via the docker CLI)


TARGETS = [
    Target(("net_create",), "network create ≤ 0.5× Docker", "docker", 0.5),
    Target(("net_rm",), "network rm ≤ 0.5× Docker", "docker", 0.5),
    Target(("run_tcp",), "run until reachable ≤ 0.6× Docker", "docker", 0.6),
    Target(("connect",), "connect ≤ 1.0× Docker", "docker", 1.0),
    Target(("disconnect",), "disconnect ≤ 1.0× Docker", "docker", 1.0),
    Target(
        ("big_flat", "many_flat"), "per-container time flat: last-10 / first-10 ≤ 1.15", None, 1.15
    ),
    Target(("dns_qps_name",), "DNS name queries/s ≥ 1.0× Docker", "docker", 1.0, ">="),
    Target(("dns_p99_name",), "DNS name p99 ≤ Docker's", "docker", 1.0),
    Target(
        ("dns_qps_nx",),
        "DNS forwarded name queries/s ≥ 1.5× Podman (issue 21)",
        "podman",
        1.5,
        ">=",
    ),
    Target(("dns_p99_nx",), "DNS forwarded name p99 ≤ Podman's (issue 21)", "podman", 1.0),
    Target(
        ("rss_big", "rss_many"),
        "daemon RSS with N containers below dockerd + containerd",
        "docker",
        1.0,
        "<",
    ),
    Target(("tether_ls",), "`tether network ls` under 100 ms wall", None, 100.0),
    Target(("tp_loop",), "published port on loopback ≥ 1.15× Docker", "docker", 1.15, ">="),
    Target(("tp_c2c",), "container ↔ container ≥ 0.95× Docker", "docker", 0.95, ">="),
    # issue 21: each engine through its own client (tether: bin/tether; Podman: podman); the
    # ratio with tether through the docker CLI is shown beside ("also")
    Target(("net_create_own", "net_create"), "network create ≤ 0.6× Podman",
           "podman", 0.6, also="net_create"),
    Target(("net_rm_own", "net_rm"), "network rm ≤ 0.8× Podman", "podman", 0.8,
           also="net_rm"),
    Target(("run_tcp_own", "run_tcp"), "run until reachable ≤ 0.4× Podman",
           "podman", 0.4, also="run_tcp"),
    Target(("run_tcp_own", "run_tcp"), "run until reachable ≤ 1.5× the floor (bench/floor.py)",
           LIMIT, 1.5, also="run_tcp"),
    Target(("tether_ls",), "`tether network ls` ≤ the docker CLI's (same daemon)", "tether", 1.0,
           peer_key="ls_cli"),
    Target(("tether_ps",), "`tether ps` ≤ the docker CLI's (same daemon)", "tether", 1.0,
           peer_key="ps_cli"),
    Target(("tether_inspect",), "`tether network inspect` ≤ the docker CLI's (same daemon)",
           "tether", 1.0, peer_key="inspect_cli"),
]  # fmt: skip


def compare(value: float, op: str, bound: float) -> bool:
    if op == "<":
        return value < bound
    if op == ">=":
        return value >= bound
    return value <= bound


def machine() -> list[str]:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip() if ":" in line else line
        except OSError:
            pass
        return "?"

    debian = "?"
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass
    cgroup = "v2 (unified)" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1/hybrid"
    mem = first("/proc/meminfo", "MemTotal")
    return [
        f"- CPU: {first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores; memory {mem}",
        f"- Kernel {platform.release()}, Debian {debian}, cgroup {cgroup}",
        f"- Python {platform.python_version()}",
    ]


def _cli_version() -> str:
    p = subprocess.run(["/usr/local/bin/docker", "--version"], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def table(res: Results, engines: Sequence[str]) -> list[str]:
    """The results table; a "limit" column (and tether / limit) when any figure has one."""
    peers = [e for e in engines if e != "tether"]
    has_limit = any(LIMIT in row for row in res.data.values())
    cols = [*engines, *([LIMIT] if has_limit else [])]
    ratios = [*peers, *([LIMIT] if has_limit else [])]
    head = ["§", "What", *[PEER_LABEL.get(e, e) for e in cols]]
    head += [f"tether / {PEER_LABEL.get(p, p)}" for p in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, fig in res.figures.items():
        row = res.data.get(key, {})
        cells = [fig.section, fig.label]
        for e in cols:
            cells.append(row.get(e, Samples()).cell(fig.fmt))
        for p in ratios:
            cells.append(ratio(row.get("tether"), row.get(p)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(res: Results) -> list[str]:
    lines = ["| Target | tether | against | Ratio / value | Met |", "|---|---|---|---|---|"]
    for t in TARGETS:
        key = next((k for k in t.keys if _median(res, k, "tether") is not None), t.keys[0])
        mine = _median(res, key, "tether")
        if mine is None:
            lines.append(f"| {t.text} | n/a | | | not measured |")
            continue
        fmt = res.figures[key].fmt
        text = t.text if len(t.keys) == 1 else f"{t.text} ({res.figures[key].label})"
        if t.also is not None and key == t.keys[0]:
            text = f"{t.text} (each engine through its own client)"
        if t.peer is None:
            met = compare(mine, t.op, t.bound)
            lines.append(f"| {text} | {fmt.format(mine)} | | {fmt.format(mine)} | "
                         f"{'yes' if met else '**no**'} |")  # fmt: skip
            continue
        other = _median(res, t.peer_key or key, t.peer)
        if other is None or other == 0:
            lines.append(f"| {text} | {fmt.format(mine)} | {t.peer}: n/a | | n/a |")
            continue
        r = mine / other
        met = compare(r, t.op, t.bound)
        lines.append(
            f"| {text} | {fmt.format(mine)}{_also(res, t, key)} | {fmt.format(other)} "
            f"| {r:.2f}×{_also(res, t, key, other)} | {'yes' if met else '**no**'} |"
        )
    return lines


def _also(res: Results, t: Target, key: str, other: float | None = None) -> str:
    """`` (docker CLI: X)``: tether's figure (or, with ``other``, its ratio) in the row
    ``t.also``, when the target was checked on another row."""
    if t.also is None or t.also == key:
        return ""
    v = _median(res, t.also, "tether")
    if v is None:
        return ""
    if other is None:
        return f" (docker CLI: {res.figures[t.also].fmt.format(v)})"
    return f" (docker CLI: {v / other:.2f}×)" if other else ""


def _median(res: Results, key: str, engine: str) -> float | None:
    s = res.data.get(key, {}).get(engine)
    return None if s is None else s.median


def write(
    path: str,
    res: Results,
    engines: Sequence[str],
    versions: dict[str, str],
    unavailable: dict[str, str],
    argv: Sequence[str],
    started: str,
    seconds: float,
    extras: Sequence[tuple[str, str]],
    cli: str | None = None,
    raw_path: str | None = None,
) -> None:
    cli = _cli_version() if cli is None else cli
    out = ["# Benchmarks: tether, Docker and Podman side by side", ""]
    out += [
        "Generated by `make bench` (`.venv/bin/python -m bench.run`); do not edit by hand "
        "(the findings section comes from `bench/FINDINGS.md`).",
        "",
        "## How this was measured",
        "",
        f"Run started {started}, took {seconds:.0f} s: `{' '.join(argv)}`.",
        "",
        *machine(),
        f"- Client for Docker and tether: {cli} (`/usr/local/bin/docker`); "
        'podman: its own CLI with `--runtime runc`. The rows marked "each engine through its '
        'own client" (`network create`, `network rm`, `run -d` until reachable) drive tether '
        "with its own CLI (`bin/tether`, whose fast path sends these verbs without click) in "
        "the same rotation as the engines, called the same way (fork, setns, exec); Docker's "
        "and Podman's cells there are their samples of the row above (their own clients "
        "already). Issue 21's targets against Podman and the floor are checked on those rows "
        "(each engine through its own client), with tether's docker-CLI figure beside; the "
        "targets against Docker stay docker CLI against docker CLI.",
    ]
    for e in engines:
        out.append(f"- {PEER_LABEL[e]}: {versions.get(e, '?')}")
    for e, why in unavailable.items():
        out.append(f"- {PEER_LABEL.get(e, e)}: **not measured**: {why}")
    out += [
        "",
        "Each engine runs in its own lab host network namespace (`tether.lab`), so no engine "
        "touches the machine's real network: tether is the lab host's daemon; dockerd is "
        "started with `nsenter --net=/run/netns/<labhost>` and private data/exec roots "
        "(its bridge and iptables rules live in that namespace); every podman command runs in "
        "its namespace with a private `--root`/`--runroot`. Every figure is taken with the "
        "engines interleaved (sample i of each engine before sample i+1, rotating who goes "
        "first), except the 500-container fill: it measures how an engine's start time grows "
        "with its own containers, so each engine fills on its own (after the machine has "
        "settled), then both fill again in turn, one container each, as a second figure (it "
        "adds the other engine's growing load; bench/FINDINGS.md, Scale step 8). The image "
        "is the busybox rootfs of `scripts/build-busybox-image.sh`, imported as "
        "`alpine:latest` into each engine. TCP checks connect from the lab host's namespace "
        "to the container IP, polling every ~2 ms. Cells are min / **median** / max; ratios "
        "are of medians (below 1 means tether takes less). Absolute figures drift between "
        "runs and machines: compare only columns of one run. "
        "Rerun: `sudo make bench` (about 21 minutes) or "
        "`sudo .venv/bin/python -m bench.run --quick` (about 2 minutes).",
        "",
        "## Results",
        "",
        *table(res, engines),
        "",
    ]
    if res.notes:
        out += ["Notes from this run:", ""] + [f"- {n}" for n in res.notes] + [""]
    out += ["## Targets (issues 9 and 21)", "", *targets(res), ""]
    for title, body in extras:
        out += [f"## {title}", "", body.rstrip(), ""]
    if os.path.exists(FINDINGS):
        with open(FINDINGS) as f:
            out += [f.read().rstrip(), ""]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(out))
    raw = dict(engines=list(engines), versions=versions, unavailable=unavailable,
               argv=list(argv), started=started, seconds=seconds, extras=[list(x) for x in extras],
               cli_version=cli, results=dump_results(res))  # fmt: skip
    with open(raw_path or RAW, "w") as f:
        json.dump(raw, f)


def dump_results(res: Results) -> dict[str, Any]:
    return {
        "figures": {k: asdict(f) for k, f in res.figures.items()},
        "data": {k: {e: asdict(s) for e, s in row.items()} for k, row in res.data.items()},
        "notes": res.notes,
    }


def load_results(raw: dict[str, Any]) -> Results:
    res = Results(notes=list(raw["notes"]))
    for k, f in raw["figures"].items():
        res.figures[k] = Figure(**f)
    for k, row in raw["data"].items():
        res.data[k] = {e: Samples(list(s["values"]), s["note"]) for e, s in row.items()}
    return res


def rerender(raw_path: str, out: str) -> None:
    """Render a saved run again (with the current bench/FINDINGS.md)."""
    with open(raw_path) as f:
        raw = json.load(f)
    write(out, load_results(raw["results"]), raw["engines"], raw["versions"],
          raw["unavailable"], raw["argv"], raw["started"], raw["seconds"],
          [(t, b) for t, b in raw["extras"]], cli=raw["cli_version"],
          raw_path=raw_path)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description="render the last bench run again")
    ap.add_argument("--raw", default=RAW)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "docs", "benchmarks.md"))
    a = ap.parse_args()
    rerender(a.raw, a.out)


if __name__ == "__main__":
    main()
