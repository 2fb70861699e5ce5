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


def _bridge(host: str, name: str, gw_cidr: str) -> None:
    sh("ip", "link", "add", name, "type", "bridge", ns=host)
    sh("ip", "addr", "add", gw_cidr, "dev", name, ns=host)
    sh("ip", "link", "set", name, "up", ns=host)


def _container(netns: Netns, host: str, bridge: str, port: str, cidr: str, gw: str) -> str:
    ctr = netns.new("c")
    sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ctr, ns=host)
    sh("ip", "link", "set", port, "master", bridge, "up", ns=host)
    sh("ip", "addr", "add", cidr, "dev", "eth0", ns=ctr)
    sh("ip", "link", "set", "eth0", "up", ns=ctr)
    sh("ip", "route", "add", "default", "via", gw, ns=ctr)
    server = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{ctr}", PY, "-c", _SERVER], stdout=subprocess.PIPE, text=True
    )
    netns.procs.append(server)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return ctr


_UDP_RECV = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999)); s.settimeout(1.5)
print("ready", flush=True)
try:
    s.recv(100); print("got")
except OSError:
    print("none")
"""

_UDP_SEND = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"x", ("127.0.0.1", 9999))
"""


def udp_to_host_loopback(host: str, sender: str) -> str:
    """Does a datagram the container sends to 127.0.0.1 reach a host socket?"""
    recv = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{host}", PY, "-c", _UDP_RECV],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        sh(PY, "-c", _UDP_SEND, ns=sender)
        return recv.stdout.readline().strip()
    finally:
        recv.kill()
        recv.wait(timeout=5)


def test_isolation_internal_and_icc(netns: Netns) -> None:
    """Two bridges are isolated; an internal network reaches only its gateway;
    icc=false stops traffic between containers of one network; a published port
    is reachable from another network through a host address."""
    host = netns.new("h")
    # a host address that is not on any bridge
    sh("ip", "addr", "add", "198.18.201.1/32", "dev", "lo", ns=host)
    a_net = NetRule("a" * 64, "tthA", "198.19.1.0/24", "198.19.1.1")
    b_net = NetRule("b" * 64, "tthB", "198.19.2.0/24", "198.19.2.1", icc=False)
    i_net = NetRule("c" * 64, "tthI", "198.19.3.0/24", "198.19.3.1", internal=True)
    _bridge(host, "tthA", "198.19.1.1/24")
    _bridge(host, "tthB", "198.19.2.1/24")
    _bridge(host, "tthI", "198.19.3.1/24")
    fw(host, "sysctl", bridges=["tthA", "tthB", "tthI"])
    a1 = _container(netns, host, "tthA", "tthA1", "198.19.1.2/24", "198.19.1.1")
    a2 = _container(netns, host, "tthA", "tthA2", "198.19.1.3/24", "198.19.1.1")
    b1 = _container(netns, host, "tthB", "tthB1", "198.19.2.2/24", "198.19.2.1")
    _container(netns, host, "tthB", "tthB2", "198.19.2.3/24", "198.19.2.1")
    i1 = _container(netns, host, "tthI", "tthI1", "198.19.3.2/24", "198.19.3.1")
    # a server on the host, on every host address
    hostsrv = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{host}", PY, "-c", _SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    netns.procs.append(hostsrv)
    assert hostsrv.stdout is not None and hostsrv.stdout.readline().strip() == "ready"

    published = [PortRule("tcp", "", 8080, "198.19.1.2", 80, "tthA")]
    apply(host, [a_net, b_net, i_net], published)

    # within one icc network: allowed
    assert connect(a2, "198.19.1.2", 80) == "hello 198.19.1.3"
    # icc=false: container to container dropped, the gateway (host) still reachable
    assert connect(b1, "198.19.2.3", 80, timeout=1.0).startswith("ERR")
    assert connect(b1, "198.19.2.1", 80) == "hello 198.19.2.2"
    # two networks are isolated both ways
    assert connect(b1, "198.19.1.2", 80, timeout=1.0).startswith("ERR")
    assert connect(a1, "198.19.2.2", 80, timeout=1.0).startswith("ERR")
    # a published port is public: reachable from the other network through a host address
    # (masqueraded to the target bridge's gateway, as the network's traffic leaving its bridge)
    assert connect(b1, "198.18.201.1", 8080) == "hello 198.19.1.1"
    # internal: its gateway yes; other host addresses, other networks, published ports no
    assert connect(i1, "198.19.3.1", 80) == "hello 198.19.3.2"
    assert connect(i1, "198.18.201.1", 80, timeout=1.0).startswith("ERR")
    assert connect(i1, "198.19.1.2", 80, timeout=1.0).startswith("ERR")
    assert connect(i1, "198.18.201.1", 8080, timeout=1.0).startswith("ERR")
    # and nothing gets into it
    assert connect(a1, "198.19.3.2", 80, timeout=1.0).startswith("ERR")
    # containers cannot use route_localnet to reach the host's loopback services: make a1
    # send 127.0.0.1 to its gateway instead of its own loopback
    sh("sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet", ns=a1)
    sh("ip", "route", "del", "table", "local", "127.0.0.0/8", ns=a1)
    sh("ip", "route", "del", "table", "local", "127.0.0.1", ns=a1)
    sh("ip", "route", "add", "127.0.0.0/8", "via", "198.19.1.1", "src", "198.19.1.2", ns=a1)
    assert udp_to_host_loopback(host, a1) == "none"
    # the rules do the dropping: without tether's table the same paths work
    fw(host, "remove")
    assert connect(b1, "198.19.1.2", 80) == "hello 198.19.2.2"
    assert connect(i1, "198.18.201.1", 80) == "hello 198.19.3.2"
    assert udp_to_host_loopback(host, a1) == "got"
