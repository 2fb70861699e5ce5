"""The real firewall in the kernel, inside network namespaces this test makes.

The nftables netlink socket belongs to the caller's network namespace, so every
firewall call runs in a child ``nsenter --net=/run/netns/NS /usr/bin/python3``
(Debian's python sees ``nftables`` without any .pth). Each test builds its own
namespaces (``tether-nft-<rand>`` …) and removes them, and with them every
table, interface and process it made. Addresses are from 198.18.0.0/15 and
exist only inside those namespaces.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tether.engine.firewall import NetRule, PortRule

pytestmark = pytest.mark.lab

SRC = str(Path(__file__).resolve().parents[2] / "src")
PY = "/usr/bin/python3"
GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden" / "firewall"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nsenter", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool!r}"
    r = subprocess.run([PY, "-c", "import nftables"], capture_output=True)
    if r.returncode != 0:
        return "needs Debian's python3-nftables for /usr/bin/python3"
    return None


_REASON = _why_not()
if _REASON:
    print(f"tests/integration/test_nft.py skipped: {_REASON}", file=sys.stderr)
    pytestmark = [pytest.mark.lab, pytest.mark.skip(reason=_REASON)]  # type: ignore[assignment]


def sh(*args: str, ns: str | None = None, check: bool = True, **kw: Any) -> str:
    cmd = list(args)
    if ns is not None:
        cmd = ["nsenter", f"--net=/run/netns/{ns}", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class Netns:
    """Namespaces made by one test, all removed in ``close``."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []

    def new(self, role: str) -> str:
        name = f"tether-nft-{role}-{secrets.token_hex(3)}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        return name

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(timeout=5)
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@pytest.fixture
def netns() -> Iterator[Netns]:
    n = Netns()
    try:
        yield n
    finally:
        n.close()


_CHILD = r"""
import json, sys
from tether.engine.firewall import NetRule, PortRule, NftFirewall
req = json.load(sys.stdin)
fw = NftFirewall()
if req["op"] == "apply":
    for _ in range(req.get("times", 1)):
        fw.apply([NetRule(**n) for n in req["nets"]], [PortRule(**p) for p in req["ports"]])
elif req["op"] == "remove":
    fw.remove()
elif req["op"] == "batch":
    from tether.linux.nft import LibNft
    LibNft().run(req["batch"])
elif req["op"] == "sysctl":
    from tether.linux.sysctl import ProcSysctl, enable_ip_forward, set_route_localnet
    s = ProcSysctl()
    enable_ip_forward(s)
    for br in req["bridges"]:
        set_route_localnet(s, br)
json.dump({"current": fw.current()}, sys.stdout)
"""


def fw(ns: str, op: str, **req: Any) -> Any:
    out = sh(
        PY,
        "-c",
        _CHILD,
        ns=ns,
        input=json.dumps({"op": op, **req}),
        env={**os.environ, "PYTHONPATH": SRC},
    )
    return json.loads(out)["current"]


def apply(ns: str, nets: list[NetRule], ports: list[PortRule], times: int = 1) -> Any:
    return fw(
        ns,
        "apply",
        nets=[asdict(n) for n in nets],
        ports=[asdict(p) for p in ports],
        times=times,
    )


def tables(ns: str) -> list[tuple[str, str]]:
    out = json.loads(sh("nft", "-j", "list", "tables", ns=ns))
    return sorted(
        (o["table"]["family"], o["table"]["name"]) for o in out["nftables"] if "table" in o
    )


NET = NetRule("a" * 64, "tthbr0", "198.19.77.0/24", "198.19.77.1")
PORTS = [
    PortRule("tcp", "", 8080, "198.19.77.2", 80, NET.bridge),
    PortRule("udp", "127.0.0.1", 5353, "198.19.77.2", 53, NET.bridge),
]


def test_apply_lists_rules_and_is_idempotent(netns: Netns) -> None:
    ns = netns.new("h")
    first = apply(ns, [NET], PORTS)
    again = apply(ns, [NET], PORTS, times=2)
    assert first == again
    text = sh("nft", "list", "table", "ip", "tether", ns=ns)
    assert "tcp . 8080 : 198.19.77.2" in text
    assert "127.0.0.1 . udp . 5353 : 198.19.77.2" in text
    assert "fib daddr type local jump published" in text
    assert 'ip saddr 198.19.77.0/24 oifname != "tthbr0" masquerade' in text
    assert tables(ns) == [("ip", "tether"), ("ip", "tether-user")]
    # a port gone from the desired state is gone from the kernel
    apply(ns, [NET], PORTS[:1])
    assert "5353" not in sh("nft", "list", "table", "ip", "tether", ns=ns)


def test_user_chain_survives_apply_and_remove(netns: Netns) -> None:
    ns = netns.new("h")
    apply(ns, [NET], [])
    sh("nft", "add", "rule", "ip", "tether-user", "tether-user", "ip", "saddr", "192.0.2.9",
       "drop", ns=ns)  # fmt: skip
    apply(ns, [NET], PORTS)
    apply(ns, [], [])
    assert "ip saddr 192.0.2.9 drop" in sh("nft", "list", "table", "ip", "tether-user", ns=ns)
    # someone else's table is untouched too
    sh("nft", "add", "table", "ip", "other", ns=ns)
    assert fw(ns, "remove") is None
    assert tables(ns) == [("ip", "other"), ("ip", "tether-user")]
    assert "ip saddr 192.0.2.9 drop" in sh("nft", "list", "table", "ip", "tether-user", ns=ns)
    fw(ns, "remove")  # removing twice is fine


def test_failed_apply_raises_and_keeps_the_old_table(netns: Netns) -> None:
    ns = netns.new("h")
    apply(ns, [NET], PORTS)
    before = sh("nft", "list", "table", "ip", "tether", ns=ns)
    bad = json.dumps({"op": "batch", "batch": {"nftables": [
        {"add": {"table": {"family": "ip", "name": "tether"}}},
        {"delete": {"table": {"family": "ip", "name": "tether"}}},
        {"add": {"chain": {"family": "ip", "table": "tether", "name": "x", "type": "nat",
                           "hook": "nope", "prio": 0, "policy": "accept"}}},
    ]}})  # fmt: skip
    r = subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", PY, "-c", _CHILD],
        input=bad,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert r.returncode != 0 and "NftError" in r.stderr
    assert sh("nft", "list", "table", "ip", "tether", ns=ns) == before


@pytest.mark.parametrize("golden", sorted(p.name for p in GOLDEN.glob("*.json")))
def test_golden_batches_are_accepted_by_the_kernel(netns: Netns, golden: str) -> None:
    ns = netns.new("h")
    batch = json.loads((GOLDEN / golden).read_text())
    fw(ns, "batch", batch=batch)
    fw(ns, "batch", batch=batch)
    assert ("ip", "tether") in tables(ns)


# ---------------------------------------------------------------- real traffic

_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(8); s.settimeout(60)
print("ready", flush=True)
for _ in range(20):
    c, peer = s.accept()
    c.sendall(f"hello {peer[0]}\n".encode()); c.close()
"""

_CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.recv(100).decode().strip())
except OSError as e:
    print("ERR", type(e).__name__)
"""


def connect(ns: str, addr: str, port: int, timeout: float = 3.0) -> str:
    return sh(PY, "-c", _CLIENT, addr, str(port), str(timeout), ns=ns).strip()


def test_published_port_traffic(netns: Netns) -> None:
    """host → 127.0.0.1:8080 and → its own address:8080 reach the container's :80;
    an outside client reaches it through the host; unpublished paths are dropped."""
    host, ctr, client = netns.new("h"), netns.new("c"), netns.new("x")
    # the bridge and a "container" on it
    sh("ip", "link", "add", "tthbr0", "type", "bridge", ns=host)
    sh("ip", "addr", "add", "198.19.77.1/24", "dev", "tthbr0", ns=host)
    sh("ip", "link", "set", "tthbr0", "up", ns=host)
    sh("ip", "link", "add", "tthv0", "type", "veth", "peer", "name", "eth0", "netns", ctr, ns=host)
    sh("ip", "link", "set", "tthv0", "master", "tthbr0", "up", ns=host)
    # with br_netfilter (bridge-nf-call-iptables=1, built in here) a packet DNAT'ed back to
    # the container it came from is bridged back out of its own port: that needs hairpin
    # mode on the port (Docker sets it too when it runs without the userland proxy)
    sh("ip", "link", "set", "tthv0", "type", "bridge_slave", "hairpin", "on", ns=host)
    sh("ip", "addr", "add", "198.19.77.2/24", "dev", "eth0", ns=ctr)
    sh("ip", "link", "set", "eth0", "up", ns=ctr)
    sh("ip", "route", "add", "default", "via", "198.19.77.1", ns=ctr)
    # an uplink to an outside client: host 198.18.200.1, client 198.18.200.2
    sh("ip", "link", "add", "tthup0", "type", "veth", "peer", "name", "eth0", "netns", client,
       ns=host)  # fmt: skip
    sh("ip", "addr", "add", "198.18.200.1/24", "dev", "tthup0", ns=host)
    sh("ip", "link", "set", "tthup0", "up", ns=host)
    sh("ip", "addr", "add", "198.18.200.2/24", "dev", "eth0", ns=client)
    sh("ip", "link", "set", "eth0", "up", ns=client)
    sh("ip", "route", "add", "198.19.77.0/24", "via", "198.18.200.1", ns=client)

    fw(host, "sysctl", bridges=["tthbr0"])
    assert sh("cat", "/proc/sys/net/ipv4/conf/tthbr0/route_localnet", ns=host).strip() == "1"
    apply(host, [NET], [PortRule("tcp", "", 8080, "198.19.77.2", 80, NET.bridge)])

    server = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{ctr}", PY, "-c", _SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    netns.procs.append(server)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    # loopback (output hook + route_localnet + masquerade of 127.0.0.0/8)
    assert connect(host, "127.0.0.1", 8080) == "hello 198.19.77.1"
    # the host's own address (output hook)
    assert connect(host, "198.18.200.1", 8080) == "hello 198.18.200.1"
    # an outside client through the host (prerouting hook + forward ct status dnat)
    assert connect(client, "198.18.200.1", 8080) == "hello 198.18.200.2"
    # a container reaching its own published port through a host address (hairpin)
    assert connect(ctr, "198.18.200.1", 8080) == "hello 198.19.77.1"
    # the container itself, unpublished, is not reachable from outside
    assert connect(client, "198.19.77.2", 80, timeout=1.0).startswith("ERR")
    # a port that is not published is not forwarded
    assert connect(host, "127.0.0.1", 8081, timeout=1.0).startswith("ERR")

    # unpublishing takes effect at once for new connections
    apply(host, [NET], [])
    assert connect(host, "127.0.0.1", 8080, timeout=1.0).startswith("ERR")
