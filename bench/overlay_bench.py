"""Overlay against macvlan across two lab hosts, and the cluster's propagation delays.

    PYTHONPATH=src .venv/bin/python bench/overlay_bench.py [--seconds 5] [--runs 3]
        [--streams 1] [--link-rate 10gbit] [--keep]

Builds a fresh lab (host1, host2 and one etcd, each host with its own tether daemon), then:

- throughput: iperf3 (TCP, ``--streams`` parallel streams, median of ``--runs`` runs of
  ``--seconds``, overlay and macvlan runs interleaved, the ratio is the median of the
  paired runs' ratios) from a container on host1 to a container on host2, once over an overlay
  network and once over a macvlan network whose parent is each host's ``eth0``. Both ride
  the same underlay (the lab's veth pairs and bridge, MTU 1500), so the ratio compares the
  encapsulation alone. The iperf3 server and client run in the containers' network
  namespaces (``nsenter --net=SandboxKey``), so the busybox image needs no iperf3;
- the kernel's floor for the overlay (issue 20): the same transfer over a VXLAN path built
  by hand with ``ip`` on the same lab wire, as Tether builds its own: per host a namespace
  holding a bridge and a VXLAN device (made in the host's namespace, so its UDP socket is
  on the underlay, then moved there; learning off, ARP proxy on, br_netfilter off), a
  "container" namespace whose ``eth0`` (MTU 1450) is a veth to that bridge, and static FDB
  and neighbour entries for the other side. Every run prints Tether's overlay as a ratio to
  it (target >= 0.95) and to macvlan, with the machine's load average at the start and the
  end beside the figures (``--no-hand`` skips it);
- with ``--link-rate RATE`` (a ``tc`` rate such as ``10gbit``; ``0`` to skip) the throughput is
  measured a second time over a wire with a line rate: a ``tbf`` qdisc on the underlay bridge's
  port towards each host (in the lab's underlay namespace), as a NIC would be. The lab's veth
  wire has no rate of its own, so unshaped both cases run until the CPU is the limit and their
  ratio compares CPU cost per byte; shaped, it compares what a host with that NIC would get;
- create -> listed: time from ``POST /networks/create`` returning on host1 until
  ``GET /networks/NAME`` answers 200 on host2 (median of ``--runs``), read over the API
  socket directly so no CLI start-up is counted;
- new endpoint reachable: time from ``POST /containers/ID/start`` returning on host2 until
  a container on host1 gets an ICMP echo reply from the new one's address (median of
  ``--runs``; an echo every 5 ms, sent by a small prober started in the probing container's
  namespace after the start returned, so its ~30 ms start-up is included).

Prints a Markdown table. Needs root; all traffic stays inside the lab's namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))  # bench.labapi, when run as bench/overlay_bench.py

from bench.labapi import api  # noqa: E402
from tether.lab.lab import Lab, LabHost  # noqa: E402

DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
IMAGE = "alpine:latest"
PORT = 5201
OV_SUBNET = "10.77.0.0/24"
MV_SUBNET = "198.18.100.0/24"  # on the lab underlay only (the lab's benchmark range)


# ---- plumbing -------------------------------------------------------------------------------
def docker(h: LabHost, *args: str, check: bool = True) -> str:
    env = dict(os.environ, DOCKER_HOST=h.docker_host)
    r = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise SystemExit(f"{h.name}: docker {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["nsenter", f"--net={ns}", *cmd]


def sandbox(h: LabHost, name: str) -> str:
    return docker(h, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name)


def listening(ns: str) -> bool:
    r = subprocess.run(in_ns(ns, "ss", "-Hltn", f"sport = :{PORT}"), capture_output=True, text=True)
    return bool(r.stdout.strip())


def iperf(server_ns: str, client_ns: str, address: str, seconds: int, streams: int) -> float:
    """One iperf3 run; Gbit/s received."""
    flags = ["-t", str(seconds), "-P", str(streams)]
    server = subprocess.Popen(
        in_ns(server_ns, "iperf3", "-s", "-1", "-p", str(PORT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not listening(server_ns):
            time.sleep(0.05)
        r = subprocess.run(
            in_ns(client_ns, "iperf3", "-J", "-c", address, "-p", str(PORT), *flags),
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        data = json.loads(r.stdout or "{}")
        if "error" in data or r.returncode != 0:
            raise SystemExit(f"iperf3 to {address}: {data.get('error') or r.stderr}")
        return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# Runs inside the probing container's namespace (the host has no ping binary): sends an ICMP
# echo to argv[1] every 5 ms and prints CLOCK_MONOTONIC at the first reply (the clock is
# system-wide, so the parent compares it with its own time.monotonic()).
PROBER = r"""
import os, select, socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack(f"!{len(b)//2}H", b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
print("ready", flush=True)
seq = 0
end = time.monotonic() + 30
while time.monotonic() < end:
    seq = (seq + 1) & 0xFFFF
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr), ident, seq), (dst, 0))
    stop = time.monotonic() + 0.005
    while (left := stop - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            break
        pkt, addr = s.recvfrom(2048)
        ihl = (pkt[0] & 0x0F) * 4
        typ, _c, _k, pid = struct.unpack("!BBHH", pkt[ihl:ihl + 6])
        if addr[0] == dst and typ == 0 and pid == ident:
            print(time.monotonic(), flush=True)
            sys.exit(0)
sys.exit(1)
"""


def start_prober(ns: str, address: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        in_ns(ns, sys.executable, "-c", PROBER, address), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("the ICMP prober did not start")
    return proc


# ---- the hand-built VXLAN path --------------------------------------------------------------
HAND_SUBNET = "10.99.0"
HAND_VNI = 4242
HAND_PORT = 4790  # not Tether's 4789: both devices live on the same underlay address


def ip_in(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True)


class HandVxlan:
    """The VXLAN path of two lab hosts built with ``ip`` (see the module docstring); its own
    namespaces are ``<lab>hbo<N>`` (bridge, VXLAN) and ``<lab>hbc<N>`` (the container), all
    deleted by :meth:`close`."""

    def __init__(self, lab: Lab, hosts: list[LabHost]) -> None:
        self.lab = lab
        self.hosts = hosts
        self.made: list[str] = []
        self.macs = {h.name: f"02:42:0a:63:00:{10 + i:02x}" for i, h in enumerate(hosts)}

    def ns(self, kind: str, i: int) -> str:
        return f"{self.lab.name}hb{kind}{i}"

    def address(self, i: int) -> str:
        return f"{HAND_SUBNET}.{10 + i}"

    def build(self) -> None:
        for i, h in enumerate(self.hosts):
            ovs, ctr = self.ns("o", i), self.ns("c", i)
            for n in (ovs, ctr):
                subprocess.run(["ip", "netns", "add", n], check=True, capture_output=True)
                self.made.append(n)
            for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
                subprocess.run(
                    ["ip", "netns", "exec", ovs, "sysctl", "-qw", f"net.bridge.{key}=0"],
                    capture_output=True,
                )  # no such key without br_netfilter: nothing to turn off
            ip_in(ovs, "link", "set", "lo", "up")
            ip_in(ovs, "link", "add", "hbbr", "mtu", "1450", "type", "bridge")
            hns = h.netns
            ip_in(hns, "link", "add", "hbvx", "mtu", "1450", "type", "vxlan", "id", str(HAND_VNI),
                  "local", h.address, "dstport", str(HAND_PORT), "nolearning", "proxy")  # fmt: skip
            ip_in(hns, "link", "set", "hbvx", "netns", ovs)
            ip_in(ovs, "link", "set", "hbvx", "master", "hbbr", "up")
            ip_in(ovs, "link", "add", "hbv", "mtu", "1450", "master", "hbbr", "type", "veth",
                  "peer", "name", "eth0", "netns", ctr, "mtu", "1450",
                  "address", self.macs[h.name])  # fmt: skip
            ip_in(ovs, "link", "set", "hbv", "up")
            ip_in(ovs, "link", "set", "hbbr", "up")
            ip_in(ctr, "link", "set", "lo", "up")
            ip_in(ctr, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip_in(ctr, "link", "set", "eth0", "up")
        for i in range(len(self.hosts)):  # static entries for the other side
            for j, other in enumerate(self.hosts):
                if i == j:
                    continue
                mac = self.macs[other.name]
                ip_in(self.ns("o", i), "neigh", "replace", self.address(j), "lladdr", mac,
                      "dev", "hbvx", "nud", "permanent")  # fmt: skip
                subprocess.run(["bridge", "-n", self.ns("o", i), "fdb", "replace", mac, "dev",
                                "hbvx", "dst", other.address, "self", "permanent"],
                               check=True, capture_output=True)  # fmt: skip

    def case(self) -> tuple[str, str, str]:
        """(server ns, client ns, server address): host 1's container to host 2's."""
        return (f"/run/netns/{self.ns('c', 1)}", f"/run/netns/{self.ns('c', 0)}", self.address(1))

    def close(self) -> None:
        for n in reversed(self.made):
            subprocess.run(["ip", "netns", "delete", n], capture_output=True)
        self.made.clear()


# ---- measurements -----------------------------------------------------------------------------
def throughput(
    h1: LabHost,
    h2: LabHost,
    cases: dict[str, tuple[str, str]],
    seconds: int,
    runs: int,
    streams: int,
    ready: dict[str, tuple[str, str, str]] | None = None,
) -> dict[str, list[float]]:
    """Per network, the Gbit/s of each run; the cases' runs are interleaved, so that a
    change in the machine's load (other work on its cores) hits every case alike. ``ready``:
    more cases whose namespaces exist already (server ns, client ns, server address)."""
    tag = secrets.token_hex(2)
    made: list[tuple[LabHost, str]] = []
    ns: dict[str, tuple[str, str, str]] = {}
    try:
        for name, where in (ready or {}).items():
            ns[name] = where
            iperf(*where, 1, streams)  # warm-up
        for net, (ip1, ip2) in cases.items():
            cli, srv = f"tp-c-{net}-{tag}", f"tp-s-{net}-{tag}"
            docker(h1, "run", "-d", "--name", cli, "--network", net, "--ip", ip1,
                   IMAGE, "sleep", "3600")  # fmt: skip
            made.append((h1, cli))
            docker(h2, "run", "-d", "--name", srv, "--network", net, "--ip", ip2,
                   IMAGE, "sleep", "3600")  # fmt: skip
            made.append((h2, srv))
            ns[net] = (sandbox(h2, srv), sandbox(h1, cli), ip2)
            iperf(*ns[net], 1, streams)  # warm-up (ARP, caches)
        out: dict[str, list[float]] = {net: [] for net in ns}
        for _ in range(runs):
            for net in ns:
                out[net].append(iperf(*ns[net], seconds, streams))
        return out
    finally:
        for h, name in made:
            docker(h, "rm", "-f", name, check=False)


def create_to_listed(h1: LabHost, h2: LabHost, runs: int) -> float:
    out = []
    for i in range(runs):
        name = f"lat-{secrets.token_hex(3)}"
        status, body = api(
            h1, "POST", "/networks/create",
            {"Name": name, "Driver": "overlay",
             "IPAM": {"Config": [{"Subnet": f"10.78.{i}.0/24"}]}},
        )  # fmt: skip
        t0 = time.perf_counter()
        if status != 201:
            raise SystemExit(f"network create: {status} {body}")
        deadline = t0 + 10
        while api(h2, "GET", f"/networks/{name}")[0] != 200:
            if time.perf_counter() > deadline:
                raise SystemExit(f"{name} never listed on {h2.name}")
        out.append((time.perf_counter() - t0) * 1000)
        api(h1, "DELETE", f"/networks/{name}")
    return statistics.median(out)


def endpoint_reachable(h1: LabHost, h2: LabHost, runs: int) -> float:
    probe = f"probe-{secrets.token_hex(2)}"
    docker(h1, "run", "-d", "--name", probe, "--network", "ov", IMAGE, "sleep", "3600")
    pns = sandbox(h1, probe)
    out = []
    try:
        for i in range(runs):
            ip = f"10.77.0.{100 + i}"
            name = f"new-{secrets.token_hex(3)}"
            cid = docker(h2, "create", "--name", name, "--network", "ov", "--ip", ip,
                         IMAGE, "sleep", "600")  # fmt: skip
            try:
                status, body = api(h2, "POST", f"/containers/{cid}/start")
                t0 = time.monotonic()
                if status not in (204, 304):
                    raise SystemExit(f"start {name}: {status} {body}")
                # probing only now: an ARP request sent before the neighbour entry exists
                # leaves the prober's kernel re-trying once a second, which would measure
                # ARP's retry timer, not tether. Includes the prober's start-up (~30 ms).
                prober = start_prober(pns, ip)
                stdout, _ = prober.communicate(timeout=60)
                if prober.returncode != 0:
                    raise SystemExit(f"{ip} never reachable from {h1.name}")
                out.append((float(stdout.strip()) - t0) * 1000)
            finally:
                docker(h2, "rm", "-f", name, check=False)
    finally:
        docker(h1, "rm", "-f", probe, check=False)
    return statistics.median(out)


def shape(lab: Lab, rate: str | None) -> None:
    """Give the underlay bridge's port towards each host a line rate (None: remove it)."""
    ul = lab.underlay_netns
    for h in lab.hosts.values():
        if rate is None:
            cmd = ["tc", "qdisc", "del", "dev", h.underlay_port, "root"]
        else:
            # a burst of 1 MB holds several 64 KB GSO packets, so tbf never segments them
            cmd = ["tc", "qdisc", "replace", "dev", h.underlay_port, "root", "tbf", "rate", rate,
                   "burst", "1mb", "latency", "20ms"]  # fmt: skip
        subprocess.run(["ip", "netns", "exec", ul, *cmd], check=rate is not None,
                       capture_output=True)  # fmt: skip


def build_lab(name: str) -> Lab:
    lab = Lab.up(name, ["host1", "host2"], etcd=True)
    with tempfile.TemporaryDirectory() as d:
        tar = Path(d) / "busybox.tar"
        subprocess.run([str(REPO / "scripts/build-busybox-image.sh"), str(tar)], check=True,
                       capture_output=True)  # fmt: skip
        for h in lab.hosts.values():
            docker(h, "import", "-c", 'CMD ["/bin/sh"]', str(tar), IMAGE)
    return lab


def paired(got: dict[str, list[float]], a: str, b: str) -> float:
    """The median of the runs' ratios ``a``/``b`` (runs were interleaved, so paired)."""
    return statistics.median(x / y for x, y in zip(got[a], got[b], strict=True))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(got: dict[str, list[float]], wire: str) -> None:
    """Rows for one set of runs: each case's median, then the ratios."""
    names = {"ov": "overlay (tether)", "hand": "hand-built VXLAN (ip)", "mv": "macvlan"}
    for case, label in names.items():
        if case in got:
            print(f"| {label} host1 -> host2{wire} | {statistics.median(got[case]):.2f} Gbit/s |")
    print(
        f"| overlay / macvlan{wire} (median of the paired runs) | {paired(got, 'ov', 'mv'):.2f} |"
    )
    if "hand" in got:
        r = paired(got, "ov", "hand")
        verdict = "at the floor" if r >= 0.95 else "BELOW the 0.95 target"
        print(f"| overlay / hand-built VXLAN{wire} (target >= 0.95) | {r:.2f} ({verdict}) |")
        print(f"| hand-built VXLAN / macvlan{wire} | {paired(got, 'hand', 'mv'):.2f} |")
    runs = " · ".join("/".join(f"{got[c][i]:.1f}" for c in names if c in got)
                      for i in range(len(got["ov"])))  # fmt: skip
    order = "/".join(c for c in names if c in got)
    print(f"| paired runs {order}{wire}, Gbit/s | {runs} |")


def setup_networks(h1: LabHost, h2: LabHost) -> None:
    docker(h1, "network", "create", "-d", "overlay", "--subnet", OV_SUBNET, "ov")
    deadline = time.monotonic() + 10
    while api(h2, "GET", "/networks/ov")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    for h in (h1, h2):
        docker(h, "network", "create", "-d", "macvlan", "--subnet", MV_SUBNET,
               "--gateway", "198.18.100.1", "-o", "parent=eth0", "mv")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--lab", default=f"ovb{secrets.token_hex(2)}")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--no-hand", action="store_true", help="skip the hand-built VXLAN path")
    ap.add_argument("--link-rate", default="10gbit",
                    help="also measure over a wire with this tc rate (0: skip)")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("overlay_bench needs root (it builds a lab of network namespaces)")
    lab = build_lab(args.lab)
    h1, h2 = lab.host("host1"), lab.host("host2")
    hand = HandVxlan(lab, [h1, h2])
    try:
        setup_networks(h1, h2)
        ready = {}
        if not args.no_hand:
            hand.build()
            ready["hand"] = hand.case()
        s, r, p = args.seconds, args.runs, args.streams
        cases = {"ov": ("10.77.0.11", "10.77.0.12"), "mv": ("198.18.100.11", "198.18.100.12")}
        load_start = load()
        got = throughput(h1, h2, cases, s, r, p, ready)
        shaped: dict[str, list[float]] = {}
        if args.link_rate not in ("", "0"):
            shape(lab, args.link_rate)
            try:
                shaped = throughput(h1, h2, cases, s, r, p, ready)
            finally:
                shape(lab, None)
        load_end = load()
        listed = create_to_listed(h1, h2, max(r, 5))
        reach = endpoint_reachable(h1, h2, max(r, 5))
        print(f"| case (lab {lab.name}, {p} stream(s), median of {r}) | result |")
        print("|---|---|")
        print(f"| load average (1, 5, 15 min) at the start / end of the transfers | "
              f"{load_start} / {load_end} ({os.cpu_count()} cores) |")  # fmt: skip
        report(got, "")
        if shaped:
            report(shaped, f", {args.link_rate} wire")
        print(f"| network create on host1 -> listed on host2 | {listed:.1f} ms |")
        print(f"| container started on host2 -> reachable from host1 | {reach:.1f} ms |")
    finally:
        hand.close()
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    main()
