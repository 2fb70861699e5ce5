"""Kernel entries only where an overlay has local endpoints (issue 20), in a 3-host lab.

host1 and host2 run containers on the overlay; host3 has none: it has no devices and no FDB
entries for the network, gets them all when its first container joins (containers then ping
across hosts by name), and drops them with its last container.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import docker, wait_until

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def slab(etcd_lab3: Lab) -> Lab:
    return etcd_lab3


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout.strip()


def run(h: LabHost, name: str) -> None:
    ok(docker(h, "run", "-d", "--name", name, "--network", "ovs", "alpine", "sleep", "600"))


def pings(h: LabHost, container: str, target: str) -> bool:
    r = docker(h, "exec", container, "ping", "-c", "1", "-W", "2", target, timeout=20)
    return r.returncode == 0


def fdb(h: LabHost, net_id: str) -> str | None:
    """The FDB entries with a remote VTEP on ``h``'s VXLAN device of the network, or None when
    the network has no devices on ``h`` (neither in its own namespace nor in the host's)."""
    vx = f"tvx-{net_id[:11]}"
    ovns = os.path.join(h.exec_root, "overlay", net_id[:12])
    for ns in (ovns, h.netns_path):
        if not os.path.exists(ns):
            continue
        r = subprocess.run(["nsenter", f"--net={ns}", "bridge", "fdb", "show", "dev", vx],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode == 0:
            return "\n".join(x for x in r.stdout.splitlines() if " dst " in x)
    return None


def mac(h: LabHost, name: str) -> str:
    return ok(docker(h, "inspect", "-f", "{{.NetworkSettings.Networks.ovs.MacAddress}}", name))


def test_a_host_programs_an_overlay_only_while_it_has_endpoints_on_it(slab: Lab) -> None:
    h1, h2, h3 = slab.host("host1"), slab.host("host2"), slab.host("host3")
    ok(docker(h1, "network", "create", "-d", "overlay", "--subnet", "10.79.0.0/24", "ovs"))
    net_id = ok(docker(h1, "network", "inspect", "-f", "{{.Id}}", "ovs"))
    wait_until(lambda: docker(h3, "network", "inspect", "ovs").returncode == 0, 10, what="ovs")
    run(h1, "a1")
    run(h2, "b1")
    macs = {mac(h1, "a1"): h1.address, mac(h2, "b1"): h2.address}
    # host2 (an endpoint here) learns a1; host3 (none) has no devices and no entries at all
    wait_until(lambda: mac(h1, "a1") in (fdb(h2, net_id) or ""), 10, what="a1 on host2")
    assert fdb(h3, net_id) is None
    run(h3, "c1")
    entries = fdb(h3, net_id) or ""
    for m, vtep in macs.items():
        assert f"{m} dst {vtep}" in entries, entries
    for target in ("a1", "b1"):
        assert pings(h3, "c1", target), f"c1 on host3 cannot ping {target} by name"
    wait_until(lambda: pings(h1, "a1", "c1"), 10, what="a1 -> c1 by name")
    ok(docker(h3, "rm", "-f", "c1"))
    assert fdb(h3, net_id) is None  # the last local container took the entries with it
    for h, name in ((h1, "a1"), (h2, "b1")):
        ok(docker(h, "rm", "-f", name))
