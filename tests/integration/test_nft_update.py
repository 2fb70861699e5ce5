"""Port updates in the kernel: after any sequence of ``update_ports``, tether's table
equals what a whole ``apply`` of the same state installs; a port published by an
update carries traffic.

Each test makes its own namespaces (``tether-nftu-<rand>``) and removes them; the
firewall runs in a child ``nsenter --net=... /usr/bin/python3`` (Debian's python
sees ``nftables``). Addresses are from 198.18.0.0/15, only inside those namespaces.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tether.engine.firewall import NetRule, PortRule, Snapshot

pytestmark = pytest.mark.lab

SRC = str(Path(__file__).resolve().parents[2] / "src")
PY = "/usr/bin/python3"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nsenter", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool!r}"
    if subprocess.run([PY, "-c", "import nftables"], capture_output=True).returncode != 0:
        return "needs Debian's python3-nftables for /usr/bin/python3"
    return None


_REASON = _why_not()
if _REASON:
    print(f"tests/integration/test_nft_update.py skipped: {_REASON}", file=sys.stderr)
    pytestmark = [pytest.mark.lab, pytest.mark.skip(reason=_REASON)]  # type: ignore[assignment]


def sh(*args: str, ns: str | None = None, **kw: Any) -> str:
    cmd = list(args) if ns is None else ["nsenter", f"--net=/run/netns/{ns}", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


@pytest.fixture
def netns() -> Iterator[list[str]]:
    names: list[str] = []
    try:
        yield names
    finally:
        for name in reversed(names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def new_ns(names: list[str]) -> str:
    name = f"tether-nftu-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", name)
    names.append(name)
    sh("ip", "link", "set", "lo", "up", ns=name)
    return name


# Runs steps: {"apply": [nets, ports]} or {"update": [remove, add]}; after each step it
# records the listing and what ensure() said (True = it saw drift and re-applied).
_CHILD = r"""
import json, sys
from tether.engine.firewall import NetRule, PortRule, NftFirewall
req = json.load(sys.stdin)
fw = NftFirewall()
out = []
for step in req["steps"]:
    if "apply" in step:
        nets, ports = step["apply"]
        fw.apply([NetRule(**n) for n in nets], [PortRule(**p) for p in ports])
    else:
        remove, add = step["update"]
        fw.update_ports([PortRule(**p) for p in remove], [PortRule(**p) for p in add])
    listing = fw.current()
    drift = fw.ensure([NetRule(**n) for n in req["nets"]], []) if req["check"] else None
    out.append({"listing": listing, "drift": drift})
json.dump(out, sys.stdout)
"""


def run_steps(ns: str, steps: list[dict[str, Any]], nets: list[NetRule], check: bool) -> Any:
    req = {"steps": steps, "nets": [asdict(n) for n in nets], "check": check}
    out = sh(PY, "-c", _CHILD, ns=ns, input=json.dumps(req), env={**os.environ, "PYTHONPATH": SRC})
    return json.loads(out)


def _d(rules: list[PortRule]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rules]


A = NetRule("a" * 64, "tthua", "198.19.10.0/24", "198.19.10.1")
B = NetRule("b" * 64, "tthub", "198.19.11.0/24", "198.19.11.1", host_binding_ipv4="127.0.0.1")
I = NetRule("c" * 64, "tthui", "198.19.12.0/24", "198.19.12.1", internal=True)  # noqa: E741
NETS = [A, B, I]


def test_updates_leave_exactly_the_whole_render_in_the_kernel(netns: list[str]) -> None:
    rng = random.Random(5)
    containers: dict[str, list[PortRule]] = {}
    port = 20000
    for i in range(30):
        net = NETS[i % 3]
        ip = net.subnet.rsplit(".", 1)[0] + f".{10 + i}"
        rules = []
        for _ in range(rng.randint(1, 3)):
            port += 1
            host_ip = rng.choice(["", "127.0.0.1", "198.18.77.1"])
            rules.append(PortRule(rng.choice(["tcp", "udp"]), host_ip, port, ip, 80, net.bridge))
        containers[f"c{i}"] = rules
    running: set[str] = {f"c{i}" for i in range(0, 30, 2)}

    def state() -> list[PortRule]:
        return [r for cid in sorted(running) for r in containers[cid]]

    steps: list[dict[str, Any]] = [{"apply": [[asdict(n) for n in NETS], _d(state())]}]
    states = [state()]
    for _ in range(25):
        cid = rng.choice(sorted(containers))
        if cid in running:
            running.discard(cid)
            steps.append({"update": [_d(containers[cid]), []]})
        else:
            running.add(cid)
            steps.append({"update": [[], _d(containers[cid])]})
        states.append(state())
    # a restart with a new address: same keys, other data, one batch
    cid = sorted(running)[0]
    moved = [PortRule(r.proto, r.host_ip, r.host_port, r.container_ip[:-1] + "9", 81, r.bridge)
             for r in containers[cid]]  # fmt: skip
    steps.append({"update": [_d(containers[cid]), _d(moved)]})
    containers[cid] = moved
    states.append(state())

    got_ns, want_ns = new_ns(netns), new_ns(netns)
    got = run_steps(got_ns, steps, NETS, check=True)
    want = run_steps(want_ns, [{"apply": [[asdict(n) for n in NETS], _d(s)]} for s in states],
                     NETS, check=False)  # fmt: skip
    assert len(got) == len(want) == len(states)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert Snapshot.of(g["listing"]["nftables"]) == Snapshot.of(w["listing"]["nftables"]), i
        # the drift check took its snapshot after the apply and kept it right through every
        # update: it never saw drift (so the kernel lists elements exactly as tether patches them)
        assert g["drift"] is False, i
    text = sh("nft", "list", "map", "ip", "tether", "dnat_ip_addr", ns=got_ns)
    assert any(f"198.18.77.1 . {r.proto} . {r.host_port}" in text for r in state() if r.host_ip)


_SERVER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(8); s.settimeout(60)
print("ready", flush=True)
for _ in range(5):
    c, peer = s.accept(); c.sendall(b"hello\n"); c.close()
"""

_CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print(c.recv(100).decode().strip())
except OSError as e:
    print("ERR", type(e).__name__)
"""


def test_a_port_published_by_an_update_carries_traffic(netns: list[str]) -> None:
    host, ctr = new_ns(netns), new_ns(netns)
    sh("ip", "link", "add", A.bridge, "type", "bridge", ns=host)
    sh("ip", "addr", "add", "198.19.10.1/24", "dev", A.bridge, ns=host)
    sh("ip", "link", "set", A.bridge, "up", ns=host)
    sh("ip", "link", "add", "tthuv0", "type", "veth", "peer", "name", "eth0", "netns", ctr, ns=host)
    sh("ip", "link", "set", "tthuv0", "master", A.bridge, "up", ns=host)
    sh("ip", "addr", "add", "198.19.10.2/24", "dev", "eth0", ns=ctr)
    sh("ip", "link", "set", "eth0", "up", ns=ctr)
    sh("ip", "route", "add", "default", "via", "198.19.10.1", ns=ctr)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=host)
    sh("sysctl", "-qw", f"net.ipv4.conf.{A.bridge}.route_localnet=1", ns=host)
    server = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{ctr}", PY, "-c", _SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        p = PortRule("tcp", "", 8080, "198.19.10.2", 80, A.bridge)
        run_steps(host, [{"apply": [[asdict(A)], []]}], [A], check=False)

        def connect() -> str:
            return sh(PY, "-c", _CLIENT, "127.0.0.1", "8080", ns=host).strip()

        assert connect().startswith("ERR")
        # a fresh NftFirewall has no prior apply: apply the empty state, then update
        steps = [{"apply": [[asdict(A)], []]}, {"update": [[], _d([p])]}]
        run_steps(host, steps, [A], check=False)
        assert connect() == "hello"
        steps = [{"apply": [[asdict(A)], _d([p])]}, {"update": [_d([p]), []]}]
        run_steps(host, steps, [A], check=False)
        assert connect().startswith("ERR")
    finally:
        server.kill()
        server.wait(timeout=5)
