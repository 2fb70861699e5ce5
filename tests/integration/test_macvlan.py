"""macvlan across lab hosts (issue 7): each lab host's ``eth0`` (its underlay veth) is the parent.

The lab underlay is a bridge, so macvlan containers on two hosts share one LAN: give them
static addresses from one subnet and they ping each other. The kernel rule that a host
cannot reach its own macvlan containers through the parent is checked too (it is why
the usual "shim" interface exists; see ``tether.drivers.macvlan``).
"""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import LabFactory, docker, in_host, wait_until
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

SUBNET = "198.18.100.0/24"  # inside the lab's benchmark range, on the lab underlay only


@pytest.fixture(scope="module")
def mlab(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    if importlib.util.find_spec("tether.__main__") is None:
        pytest.skip("no `python -m tether` yet: cannot start a daemon")
    lab = module_lab_factory(["host1", "host2"])
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    for h in lab.hosts.values():
        import_alpine(h, tar)
        r = docker(
            h,
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            SUBNET,
            "--gateway",
            "198.18.100.1",
            "-o",
            "parent=eth0",
            "mv",
        )
        assert r.returncode == 0, r.stderr
        # the hosts themselves get an address on the macvlan subnet (on the lab LAN)
        ok(in_host(h, "ip", "addr", "add", f"198.18.100.{200 + h.index}/24", "dev", "eth0"))
    return lab


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def link_details(h: LabHost, container: str) -> str:
    """``ip -d link show eth0`` inside the container (busybox's ip has no ``-d``)."""
    pid = ok(docker(h, "inspect", "-f", "{{.State.Pid}}", container)).strip()
    r = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "-d", "link", "show", "eth0"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return ok(r)


def test_containers_on_two_hosts_ping_each_other(mlab: Lab) -> None:
    h1, h2 = mlab.host("host1"), mlab.host("host2")
    ok(docker(h1, "run", "-d", "--name", "m1", "--network", "mv", "--ip", "198.18.100.11",
              "alpine", "sleep", "600"))  # fmt: skip
    ok(docker(h2, "run", "-d", "--name", "m2", "--network", "mv", "--ip", "198.18.100.12",
              "alpine", "sleep", "600"))  # fmt: skip
    assert "macvlan mode bridge" in link_details(h1, "m1")
    # made in the host's namespace, moved into the container's: IPv6 off there too
    assert "inet6" not in ok(docker(h1, "exec", "m1", "ip", "addr", "show", "eth0"))
    wait_until(
        lambda: (
            docker(h1, "exec", "m1", "ping", "-c", "1", "-W", "1", "198.18.100.12").returncode == 0
        ),
        10,
        what="m1 -> m2 across hosts",
    )
    assert ok(docker(h2, "exec", "m2", "ping", "-c", "1", "-W", "2", "198.18.100.11"))


def test_duplicate_static_ip_is_refused_at_create(mlab: Lab) -> None:
    h1 = mlab.host("host1")
    r = docker(h1, "create", "--network", "mv", "--ip", "198.18.100.11", "alpine")
    assert r.returncode != 0
    assert "Address already in use" in r.stderr


def test_host_cannot_reach_its_own_macvlan_container(mlab: Lab) -> None:
    """The kernel drops frames between a macvlan and its lower device (documented rule).

    Both hosts have an address on the macvlan subnet; host2 reaches m1,
    host1 (m1's own host) does not.
    """
    h1, h2 = mlab.host("host1"), mlab.host("host2")
    assert in_host(h2, "busybox", "ping", "-c", "1", "-W", "2", "198.18.100.11").returncode == 0
    r = in_host(h1, "busybox", "ping", "-c", "1", "-W", "1", "198.18.100.11")
    assert r.returncode != 0


def second_lan(h: LabHost, name: str) -> str:
    """Another parent on the host (eth0 is mv's): a veth pair, both ends up."""
    ok(in_host(h, "ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"))
    ok(in_host(h, "ip", "link", "set", name + "p", "up"))
    ok(in_host(h, "ip", "link", "set", name, "up"))
    return name


def test_one_network_per_parent_no_loopback_no_overlap(mlab: Lab) -> None:
    """libnetwork's rules: a parent serves one macvlan network; lo is no parent; a macvlan
    subnet may not overlap another network's (one local address space)."""
    h1 = mlab.host("host1")
    mv_id = ok(docker(h1, "network", "inspect", "-f", "{{.Id}}", "mv")).strip()
    before = ok(in_host(h1, "ip", "-br", "link"))
    r = docker(h1, "network", "create", "-d", "macvlan", "--subnet", "198.18.102.0/24",
               "-o", "parent=eth0", "mv2")  # fmt: skip
    assert r.returncode != 0
    assert f"network dm-{mv_id[:12]} is already using parent interface eth0" in r.stderr
    r = docker(h1, "network", "create", "-d", "macvlan", "-o", "parent=lo", "mvlo")
    assert r.returncode != 0 and "loopback interface is not a valid macvlan parent link" in r.stderr
    lan = second_lan(h1, "lan9")
    r = docker(h1, "network", "create", "-d", "macvlan", "--subnet", "198.18.100.128/25",
               "-o", f"parent={lan}", "mv3")  # fmt: skip
    assert r.returncode != 0 and "Pool overlaps with other one on this address space" in r.stderr
    names = ok(docker(h1, "network", "ls", "--format", "{{.Name}}")).split()
    assert not {"mv2", "mvlo", "mv3"} & set(names)
    assert ok(in_host(h1, "ip", "-br", "link")).count("\n") == before.count("\n") + 2  # lan9 pair
    ok(in_host(h1, "ip", "link", "del", lan))


def test_modes_and_bad_mode(mlab: Lab) -> None:
    h1 = mlab.host("host1")
    lan = second_lan(h1, "lan1")
    ok(docker(h1, "network", "create", "-d", "macvlan", "--subnet", "198.18.101.0/24",
              "-o", f"parent={lan}", "-o", "macvlan_mode=private", "mvp"))  # fmt: skip
    ok(docker(h1, "run", "-d", "--name", "mp", "--network", "mvp", "alpine", "sleep", "600"))
    assert "macvlan mode private" in link_details(h1, "mp")
    r = docker(h1, "network", "create", "-d", "macvlan", "-o", "macvlan_mode=nope", "mvbad")
    assert r.returncode != 0 and "macvlan mode 'nope' is not valid" in r.stderr
    ok(docker(h1, "rm", "-f", "mp"))
    ok(docker(h1, "network", "rm", "mvp"))
    ok(in_host(h1, "ip", "link", "del", lan))


def test_no_parent_is_an_internal_network(mlab: Lab) -> None:
    h1 = mlab.host("host1")
    ok(docker(h1, "network", "create", "-d", "macvlan", "--subnet", "10.90.0.0/24", "mvi"))
    info = ok(docker(h1, "network", "inspect", "-f", "{{.Internal}}", "mvi"))
    assert info.strip() == "true"
    ok(docker(h1, "run", "-d", "--name", "i1", "--network", "mvi", "alpine", "sleep", "600"))
    ok(docker(h1, "run", "-d", "--name", "i2", "--network", "mvi", "alpine", "sleep", "600"))
    assert ok(docker(h1, "exec", "i1", "ping", "-c", "1", "-W", "2", "i2"))


def test_vlan_parent_needs_8021q(mlab: Lab) -> None:
    """``parent=eth0.10`` needs the kernel's vlan link type; this kernel lacks it."""
    h1 = mlab.host("host1")
    r = docker(h1, "network", "create", "-d", "macvlan", "-o", "parent=eth0.10", "mvlan")
    if r.returncode == 0:
        assert "eth0.10" in in_host(h1, "ip", "-br", "link").stdout
        ok(docker(h1, "network", "rm", "mvlan"))
        return
    assert "802.1Q" in r.stderr, r.stderr
    pytest.skip("this kernel has no 802.1Q (vlan) link type: VLAN sub-interface parents untested")


def test_ipvlan_refused_clearly_without_kernel_support(mlab: Lab) -> None:
    r = docker(mlab.host("host1"), "network", "create", "-d", "ipvlan", "-o", "parent=eth0", "iv")
    assert r.returncode != 0 and "no ipvlan support" in r.stderr


def test_host_shim_lets_the_host_reach_its_own_containers(mlab: Lab) -> None:
    """``-o tether.host_shim=IP`` (reserved with --aux-address): the usual fix, made and removed
    with the network."""
    h1 = mlab.host("host1")
    subnet, shim, cip = "198.18.101.0/24", "198.18.101.250", "198.18.101.5"
    lan = second_lan(h1, "lan2")
    base = ["network", "create", "-d", "macvlan", "--subnet", subnet, "--gateway", "198.18.101.1",
            "-o", f"parent={lan}"]  # fmt: skip
    # the address must be reserved, and belong to the network
    r = docker(h1, *base, "-o", f"tether.host_shim={shim}", "mvbad")
    assert r.returncode != 0 and "must be reserved with --aux-address" in r.stderr
    r = docker(h1, *base, "--aux-address", f"host={shim}", "-o", "tether.host_shim=10.1.2.3",
               "mvbad")  # fmt: skip
    assert r.returncode != 0 and "is not in a subnet of the network" in r.stderr
    assert "mvbad" not in ok(docker(h1, "network", "ls", "--format", "{{.Name}}"))
    ok(docker(h1, *base, "--ip-range", "198.18.101.0/28", "--aux-address", f"host={shim}",
              "-o", f"tether.host_shim={shim}", "mvs"))  # fmt: skip
    net_id = ok(docker(h1, "network", "inspect", "-f", "{{.Id}}", "mvs")).strip()
    shim_if = "tms-" + net_id[:11]
    assert f"{shim}/32" in ok(in_host(h1, "ip", "-o", "addr", "show", "dev", shim_if))
    assert shim_if in ok(in_host(h1, "ip", "route", "show", "198.18.101.0/28"))
    ok(docker(h1, "run", "-d", "--name", "ms1", "--network", "mvs", "--ip", cip, "alpine",
              "sleep", "600"))  # fmt: skip
    wait_until(
        lambda: in_host(h1, "busybox", "ping", "-c", "1", "-W", "1", cip).returncode == 0,
        10,
        what="host1 -> its own macvlan container through the shim",
    )
    ok(docker(h1, "rm", "-f", "ms1"))
    ok(docker(h1, "network", "rm", "mvs"))
    assert shim_if not in ok(in_host(h1, "ip", "-o", "link", "show"))
    ok(in_host(h1, "ip", "link", "del", lan))
    assert ok(in_host(h1, "ip", "route", "show", "198.18.101.0/28")).strip() == ""


def test_connect_then_disconnect_removes_the_sub_interface(mlab: Lab) -> None:
    """``network disconnect`` from macvlan takes the sub-interface out of the running container
    (it lives in the sandbox, so only the container's end exists to delete) and frees the
    address: the same ``--ip`` connects again."""
    h1, h2 = mlab.host("host1"), mlab.host("host2")
    cip = "198.18.100.41"
    ok(docker(h1, "run", "-d", "--name", "mc", "alpine", "sleep", "600"))
    ok(docker(h1, "network", "connect", "--ip", cip, "mv", "mc"))
    assert cip in ok(docker(h1, "exec", "mc", "ip", "-o", "addr", "show", "eth1"))
    wait_until(
        lambda: in_host(h2, "busybox", "ping", "-c", "1", "-W", "1", cip).returncode == 0,
        10,
        what="host2 -> mc on the macvlan LAN",
    )
    ok(docker(h1, "network", "disconnect", "mv", "mc"))
    r = docker(h1, "exec", "mc", "ip", "-o", "link", "show")
    assert "eth1" not in ok(r) and "eth0" in r.stdout
    assert in_host(h2, "busybox", "ping", "-c", "1", "-W", "1", cip).returncode != 0
    ok(docker(h1, "network", "connect", "--ip", cip, "mv", "mc"))
    assert cip in ok(docker(h1, "exec", "mc", "ip", "-o", "addr", "show", "eth1"))
    ok(docker(h1, "rm", "-f", "mc"))
