"""Published-port and container-to-container throughput (iperf3), and publish cost at scale.

    PYTHONPATH=src .venv/bin/python bench/ports_bench.py [--seconds 5] [--runs 3]
        [--lab NAME --host HOST]              # an existing lab host (default: a fresh lab)
        [--docker-host unix://... --netns /run/netns/X --address IP]   # any engine
        [--engine NAME=DOCKER_HOST,NETNS,ADDRESS ...] [--json]         # several, interleaved
        [--scale 1000]                        # time to publish a port with N already published

Cases (each the median of ``--runs`` iperf3 runs of ``--seconds``, TCP, one stream):

- host → 127.0.0.1:PUBLISHED   (the host's loopback; Docker uses its userland proxy here)
- host → HOSTADDR:PUBLISHED    (the host's own underlay address)
- container → container        (two containers on one user network, by container IP)

The iperf3 server runs in the server container's network namespace (``nsenter --net=`` on its
``SandboxKey``) and the container client likewise, so the image needs no iperf3 and every engine
is measured the same way: point ``--docker-host``/``--netns`` at dockerd running in a lab host to
compare. The image is the busybox one (``scripts/build-busybox-image.sh``), imported when missing.
Results print as a Markdown table in Gbit/s. Needs root; traffic stays inside the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKER = "/usr/local/bin/docker"
IMAGE = "alpine:latest"
PORT = 5201  # inside the container
PUBLISHED = 15201  # on the host


@dataclass
class Target:
    docker_host: str
    netns: str  # the engine host's network namespace (a path)
    address: str  # the host's own (non-loopback) address


def docker(t: Target, *args: str, check: bool = True) -> str:
    env = dict(os.environ, DOCKER_HOST=t.docker_host)
    r = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["nsenter", f"--net={ns}", *cmd]


def ensure_image(t: Target) -> None:
    if docker(t, "images", "-q", IMAGE, check=False):
        return
    with tempfile.TemporaryDirectory() as d:
        tar = Path(d) / "busybox.tar"
        subprocess.run([str(REPO / "scripts/build-busybox-image.sh"), str(tar)], check=True)
        docker(t, "import", "-c", 'CMD ["/bin/sh"]', str(tar), IMAGE)


def sandbox(t: Target, name: str) -> str:
    return docker(t, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name)


def iperf(server_ns: str, client_ns: str, address: str, port: int, seconds: int) -> float:
    """One iperf3 run; Gbit/s received."""
    server = subprocess.Popen(
        in_ns(server_ns, "iperf3", "-s", "-1", "-p", str(PORT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # iperf3 -s -1 serves exactly one client: probe the container port, not through NAT
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _listening(server_ns, PORT):
            time.sleep(0.05)
        r = subprocess.run(
            in_ns(client_ns, "iperf3", "-J", "-c", address, "-p", str(port), "-t", str(seconds)),
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        data = json.loads(r.stdout or "{}")
        if "error" in data or r.returncode != 0:
            raise SystemExit(f"iperf3 to {address}:{port}: {data.get('error') or r.stderr}")
        return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _listening(ns: str, port: int) -> bool:
    r = subprocess.run(in_ns(ns, "ss", "-Hltn", f"sport = :{port}"), capture_output=True, text=True)
    return bool(r.stdout.strip())


def publish_scaling(t: Target, scale: int, runs: int) -> tuple[float, float]:
    """Median ms of ``docker run -d -p P:80`` with none, then ``scale`` ports, published."""

    def one(port: int) -> float:
        name = f"pb-s{port}"
        t0 = time.perf_counter()
        docker(t, "run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, "sleep", "600")
        ms = (time.perf_counter() - t0) * 1000
        docker(t, "rm", "-f", name)
        return ms

    first = statistics.median(one(30000 + i) for i in range(runs))
    lo = 40000
    span = f"{lo}-{lo + scale - 1}"
    docker(t, "run", "-d", "--name", "pb-many", "-p", f"{span}:{span}", IMAGE, "sleep", "600")
    try:
        later = statistics.median(one(31000 + i) for i in range(runs))
    finally:
        docker(t, "rm", "-f", "pb-many", check=False)
    return first, later


CASES = (
    ("tp_loop", "host → 127.0.0.1:published"),
    ("tp_addr", "host → host address:published"),
    ("tp_c2c", "container → container"),
)


@dataclass
class Setup:
    """One engine's pair of containers for the throughput cases."""

    target: Target
    net: str
    names: tuple[str, str]
    rows: dict[str, tuple[str, str, str, int]]  # case -> (server ns, client ns, address, port)


def setup(t: Target) -> Setup:
    ensure_image(t)
    tag = secrets.token_hex(3)
    net, srv, cli = f"pb-net-{tag}", f"pb-srv-{tag}", f"pb-cli-{tag}"
    docker(t, "network", "create", net)
    made = Setup(t, net, (srv, cli), {})
    try:
        docker(t, "run", "-d", "--name", srv, "--network", net, "-p", f"{PUBLISHED}:{PORT}",
               IMAGE, "sleep", "3600")  # fmt: skip
        docker(t, "run", "-d", "--name", cli, "--network", net, IMAGE, "sleep", "3600")
        srv_ns, cli_ns = sandbox(t, srv), sandbox(t, cli)
        fmt = "{{(index .NetworkSettings.Networks " + json.dumps(net) + ").IPAddress}}"
        srv_ip = docker(t, "inspect", "-f", fmt, srv)
    except BaseException:
        teardown(made)
        raise
    made.rows = {
        "tp_loop": (srv_ns, t.netns, "127.0.0.1", PUBLISHED),
        "tp_addr": (srv_ns, t.netns, t.address, PUBLISHED),
        "tp_c2c": (srv_ns, cli_ns, srv_ip, PORT),
    }
    return made


def teardown(s: Setup) -> None:
    docker(s.target, "rm", "-f", *s.names, check=False)
    docker(s.target, "network", "rm", s.net, check=False)


def run(
    targets: dict[str, Target], seconds: int, runs: int, scale: int, as_json: bool = False
) -> None:
    """Every case on every engine, the engines interleaved run by run (who goes first
    rotates), so that a change in the machine's load hits them alike."""
    setups: dict[str, Setup] = {}
    samples: dict[str, dict[str, list[float]]] = {k: {n: [] for n in targets} for k, _ in CASES}
    try:
        for name, t in targets.items():
            setups[name] = setup(t)
        order = list(targets)
        for r in range(runs):
            for key, _label in CASES:
                for name in order[r % len(order) :] + order[: r % len(order)]:
                    srv_ns, cli_ns, addr, port = setups[name].rows[key]
                    samples[key][name].append(iperf(srv_ns, cli_ns, addr, port, seconds))
    finally:
        for s in setups.values():
            teardown(s)
    for name in targets:
        if len(targets) > 1:
            print(f"**{name}**:\n")
        print(f"| case ({seconds}s × {runs}, median) | Gbit/s |")
        print("|---|---:|")
        for key, label in CASES:
            print(f"| {label} | {statistics.median(samples[key][name]):.2f} |")
        print()
    if scale:
        for name, t in targets.items():
            first, later = publish_scaling(t, scale, runs)
            print(f"| {name}: docker run -d -p (median ms) | ms |")
            print("|---|---:|")
            print(f"| first published port | {first:.0f} |")
            print(f"| with {scale} ports already published | {later:.0f} |")
            print()
    if as_json:
        print(json.dumps(samples))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1000, help="0 to skip the publish-cost case")
    ap.add_argument("--lab")
    ap.add_argument("--host", default="host1")
    ap.add_argument("--docker-host")
    ap.add_argument("--netns")
    ap.add_argument("--address")
    ap.add_argument("--engine", action="append", default=[],
                    help="NAME=DOCKER_HOST,NETNS,ADDRESS (repeat: interleaved)")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="last line: the samples as JSON")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("ports_bench needs root (namespaces, nsenter)")
    targets: dict[str, Target] = {}
    for spec in a.engine:
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        if not name or len(parts) != 3:
            raise SystemExit(f"--engine {spec!r}: expected NAME=DOCKER_HOST,NETNS,ADDRESS")
        targets[name] = Target(*parts)
    if a.docker_host:
        if not (a.netns and a.address):
            raise SystemExit("--docker-host needs --netns and --address")
        targets["engine"] = Target(a.docker_host, a.netns, a.address)
    if targets:
        run(targets, a.seconds, a.runs, a.scale, a.json)
        return
    from tether.lab.lab import Lab

    if a.lab:
        h = Lab.load(a.lab).host(a.host)
        run({"tether": Target(h.docker_host, h.netns_path, h.address)}, a.seconds, a.runs,
            a.scale, a.json)  # fmt: skip
        return
    name = "pb" + secrets.token_hex(3)
    lab = Lab.up(name, [a.host], daemons=True)
    try:
        h = lab.host(a.host)
        run({"tether": Target(h.docker_host, h.netns_path, h.address)}, a.seconds, a.runs,
            a.scale, a.json)  # fmt: skip
    finally:
        Lab.destroy(name)


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    main()
