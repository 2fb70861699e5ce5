"""The cluster against an overloaded etcd: request rate, timeouts, lease losses, CPU.

    PYTHONPATH=src .venv/bin/python bench/cluster_overload.py [--hosts 10] [--idle 30]
        [--stop 4] [--run 2] [--pulses 10] [--load 0] [--keep]

Builds a fresh lab (``--hosts`` hosts and one etcd, each daemon with ``web-addr`` so its
``/metrics`` can be read), one overlay network and a container on each of the first two
hosts, and ``--load`` hosts running a loop of global network create + remove (store calls
only). Then three phases, each measured from every daemon's counters and CPU time:

- before: ``--idle`` seconds;
- fault: ``--pulses`` times etcd stopped (SIGSTOP) for ``--stop`` seconds then let run
  (SIGCONT) for ``--run`` seconds: a store slower than the 3 s call timeout, not a dead one
  (``--stop`` above the lease TTL makes it a dead one);
- after: ``--idle`` seconds, then whether a container run on the last host is reachable by
  name from the first (the cluster recovered by itself).

Requests are counted the same way for any version of tether that has the metrics of issue
19: etcd round trips (``tether_cluster_store_round_trip_seconds_count``) plus lease
keep-alives (``tether_cluster_lease_renewals``); "lost" is keep-alives answered "expired"
(each one a lease granted again). Run it with PYTHONPATH pointing at another checkout to
compare versions. Prints a Markdown table. Needs root; all traffic stays inside the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tether.lab.lab import Lab, LabHost

REPO = Path(__file__).resolve().parents[1]
DOCKER = "/usr/local/bin/docker"
WEB = "127.0.0.1:9323"
TICK = os.sysconf("SC_CLK_TCK")


def docker(h: LabHost, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = h.docker_env()
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def counters(h: LabHost) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    r = h.run(["curl", "-sf", f"http://{WEB}/metrics"], capture_output=True, text=True,
              timeout=30)  # fmt: skip
    out = {"requests": 0.0, "expired": 0.0, "failed": 0.0, "timeouts": 0.0}
    for fam in text_string_to_metric_families(r.stdout):
        for s in fam.samples:
            if s.name == "tether_cluster_store_round_trip_seconds_count":
                out["requests"] += s.value
            elif s.name == "tether_cluster_lease_renewals_total":
                if s.labels["outcome"] in ("ok", "expired", "failed"):
                    out["requests"] += s.value
                if s.labels["outcome"] in ("expired", "failed"):
                    out[s.labels["outcome"]] += s.value
            elif s.name == "tether_cluster_store_events_total" and s.labels["kind"] in (
                "timeout",
                "shed",
            ):
                out["timeouts"] += s.value
    return out


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def etcd_pid(lab: Lab) -> int:
    mark = f"--data-dir={lab.dir}/etcd/data".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"etcd") and mark in argv:
                return int(entry)
    raise SystemExit("etcd not found")


class Sample:
    def __init__(self, lab: Lab) -> None:
        self.t = time.monotonic()
        hosts = list(lab.hosts.values())
        self.counts = [counters(h) for h in hosts]
        self.cpu = sum(cpu_seconds(h.daemon_pid) for h in hosts)
        self.etcd_cpu = cpu_seconds(etcd_pid(lab))

    def rate(self, later: Sample, key: str) -> float:
        total = sum(b[key] - a[key] for a, b in zip(self.counts, later.counts, strict=True))
        return total / (later.t - self.t)

    def total(self, later: Sample, key: str) -> float:
        return sum(b[key] - a[key] for a, b in zip(self.counts, later.counts, strict=True))

    def row(self, later: Sample, name: str) -> str:
        secs = later.t - self.t
        return (
            f"| {name} | {secs:.0f} s | {self.rate(later, 'requests'):.1f} | "
            f"{self.total(later, 'timeouts'):.0f} | {self.total(later, 'failed'):.0f} | "
            f"{self.total(later, 'expired'):.0f} | {100 * (later.cpu - self.cpu) / secs:.0f} % | "
            f"{100 * (later.etcd_cpu - self.etcd_cpu) / secs:.0f} % |"
        )


def load_loop(h: LabHost, stop: threading.Event, tag: str) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        net = f"ld{tag}n{i}"
        if docker(h, "network", "create", "-d", "overlay", net).returncode == 0:
            docker(h, "network", "rm", net)
        else:
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--stop", type=float, default=4.0)
    ap.add_argument("--run", type=float, default=2.0)
    ap.add_argument("--pulses", type=int, default=10)
    ap.add_argument("--load", type=int, default=0, help="hosts running a create/rm loop")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    name = f"c2ov{os.getpid() % 10000}"
    names = [f"host{i + 1}" for i in range(args.hosts)]
    t0 = time.monotonic()
    lab = Lab.up(name, names, etcd=True, daemons=False)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for n in names:
            Path(lab.host(n).config_file).write_text(json.dumps({"web-addr": WEB}))
        lab._start_daemons(names, 120 + 2 * args.hosts)  # all at once, as `lab up` does
        built = time.monotonic() - t0
        tar = Path("/tmp") / f"{name}-busybox.tar"
        subprocess.run([str(REPO / "scripts" / "build-busybox-image.sh"), str(tar)], check=True,
                       capture_output=True)  # fmt: skip
        first, last = lab.host(names[0]), lab.host(names[-1])
        for h in {first.name: first, lab.host(names[1]).name: lab.host(names[1]),
                  last.name: last}.values():  # fmt: skip
            docker(h, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest")
        docker(first, "network", "create", "-d", "overlay", "--subnet", "10.76.0.0/16", "ovb")
        time.sleep(2)
        for h, c in ((first, "b1"), (lab.host(names[1]), "b2")):
            docker(h, "run", "-d", "--name", c, "--network", "ovb", "alpine", "sleep", "3600")
        for i in range(min(args.load, args.hosts)):
            t = threading.Thread(target=load_loop, args=(lab.host(names[i]), stop, str(i)))
            t.start()
            threads.append(t)
        time.sleep(5)
        s0 = Sample(lab)
        time.sleep(args.idle)
        s1 = Sample(lab)
        pid = etcd_pid(lab)
        try:
            for _ in range(args.pulses):
                os.kill(pid, signal.SIGSTOP)
                time.sleep(args.stop)
                os.kill(pid, signal.SIGCONT)
                time.sleep(args.run)
        finally:
            os.kill(pid, signal.SIGCONT)
        s2 = Sample(lab)
        time.sleep(args.idle)
        s3 = Sample(lab)
        stop.set()
        docker(last, "run", "-d", "--name", "b3", "--network", "ovb", "alpine", "sleep", "3600")
        t = time.monotonic()
        reached = None
        while time.monotonic() - t < 60:
            r = docker(first, "exec", "b1", "ping", "-c", "1", "-W", "1", "b3")
            if r.returncode == 0:
                reached = time.monotonic() - t
                break
        load = os.getloadavg()[0]
        print(f"\n{args.hosts} hosts (built in {built:.0f} s), etcd stopped {args.stop:g} s / "
              f"running {args.run:g} s × {args.pulses}, {args.load} hosts with a create/rm "
              f"loop; tether from {Path(sys.modules['tether'].__file__ or '').parent}; "
              f"load average {load:.1f}\n")  # fmt: skip
        print("| phase | length | requests/s, all daemons | timeouts | keep-alives failed "
              "| leases lost | CPU, all daemons | etcd CPU |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        print(s0.row(s1, "before"))
        print(s1.row(s2, "fault"))
        print(s2.row(s3, "after"))
        print(f"\nrun on the last host -> pingable by name from the first: "
              f"{f'{reached:.1f} s' if reached is not None else 'no, after 60 s'}")  # fmt: skip
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        if not args.keep:
            Lab.destroy(name)


if __name__ == "__main__":
    main()
