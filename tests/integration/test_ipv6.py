"""IPv6 dual-stack networks in a lab, through the real docker CLI (issue 18).

host1 runs the daemon; host2 stands for a server on the underlay. Both get an IPv6 address
on their lab ``eth0`` (lab namespaces only, never the machine's interfaces): host2 has no
route to the containers' subnet, so a reply reaching a container proves NAT66.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import LabFactory, docker, in_host, wait_until
from .portlab import clean_host, curl, import_image, inspect, ok, two_hosts, web

pytestmark = pytest.mark.lab

H1_V6, H2_V6 = "fd99::11", "fd99::12"


@pytest.fixture(scope="module")
def lab(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    lab = two_hosts(module_lab_factory)
    import_image(lab.host("host1"), Path(tmp_path_factory.mktemp("img")))
    for name, addr in (("host1", H1_V6), ("host2", H2_V6)):
        host = lab.host(name)
        in_host(host, "ip", "-6", "addr", "add", f"{addr}/64", "dev", "eth0", "nodad", check=True)
    return lab


@pytest.fixture
def h1(lab: Lab) -> Iterator[LabHost]:
    host = lab.host("host1")
    yield host
    clean_host(host, networks=True)


def sleeper(host: LabHost, name: str, *opts: str) -> str:
    return ok(host, "run", "-d", "--name", name, *opts, "alpine", "sleep", "600")[:12]


def ping6_in(host: LabHost, container: str, target: str) -> bool:
    r = docker(host, "exec", container, "ping", "-6", "-c", "1", "-W", "2", target, timeout=30)
    return r.returncode == 0


def ep_of(host: LabHost, name: str, network: str) -> Any:
    return inspect(host, name)["NetworkSettings"]["Networks"][network]


def test_create_inspect_and_errors(h1: LabHost) -> None:
    ok(h1, "network", "create", "--ipv6", "--subnet", "10.61.0.0/24", "--subnet",
       "fd00:1::/64", "--gateway", "fd00:1::fe", "--ip-range", "fd00:1::100/120", "ds")  # fmt: skip
    net = json.loads(ok(h1, "network", "inspect", "ds"))[0]
    assert net["EnableIPv6"] is True
    assert net["IPAM"]["Config"] == [
        {"Subnet": "10.61.0.0/24", "Gateway": "10.61.0.1"},
        {"Subnet": "fd00:1::/64", "IPRange": "fd00:1::100/120", "Gateway": "fd00:1::fe"},
    ]
    sleeper(h1, "a1", "--network", "ds")
    sleeper(h1, "a2", "--network", "ds", "--ip6", "fd00:1::77")
    ep = ep_of(h1, "a1", "ds")
    assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == (
        "fd00:1::100",
        64,
        "fd00:1::fe",
    )
    assert ep_of(h1, "a2", "ds")["GlobalIPv6Address"] == "fd00:1::77"
    shown = json.loads(ok(h1, "network", "inspect", "ds"))[0]["Containers"]
    assert sorted(c["IPv6Address"] for c in shown.values()) == ["fd00:1::100/64", "fd00:1::77/64"]
    # the kernel has what inspect says: address (no DAD: not tentative), default route
    addr = ok(h1, "exec", "a1", "ip", "-6", "addr", "show", "dev", "eth0")
    assert "fd00:1::100/64" in addr and "tentative" not in addr
    assert "default via fd00:1::fe" in ok(h1, "exec", "a1", "ip", "-6", "route")
    r = docker(h1, "network", "create", "--ipv6", "--subnet", "fd00:1:0:0:8000::/65", "ov")
    assert "Pool overlaps with other one on this address space" in r.stderr
    r = docker(h1, "network", "create", "--ipv6", "nov6")
    assert "could not find an available, non-overlapping IPv6 address pool" in r.stderr
    r = docker(h1, "run", "--rm", "--network", "ds", "--ip6", "fd00:1::77", "alpine", "true")
    assert "Address already in use" in r.stderr
    # an IPv4-only network's containers still have no IPv6 at all (only lo's ::1)
    ok(h1, "network", "create", "v4only")
    sleeper(h1, "b1", "--network", "v4only")
    assert "inet6" not in ok(h1, "exec", "b1", "ip", "-6", "addr", "show", "dev", "eth0")


def test_ping_gateway_peer_and_underlay_through_nat66(lab: Lab, h1: LabHost) -> None:
    ok(h1, "network", "create", "--ipv6", "--subnet", "fd00:2::/64", "ds2")
    sleeper(h1, "c1", "--network", "ds2", "--network-alias", "first")
    sleeper(h1, "c2", "--network", "ds2", "--link", "c1:lnk")
    c1 = ep_of(h1, "c1", "ds2")["GlobalIPv6Address"]
    assert ping6_in(h1, "c2", c1)
    # by name, alias and link over IPv6: AAAA answers from the embedded DNS
    for name in ("c1", "first", "lnk"):
        assert ping6_in(h1, "c2", name), name
    assert c1 in ok(h1, "exec", "c2", "nslookup", "-type=AAAA", "c1", "127.0.0.11")
    assert f"{c1}\t" in ok(h1, "exec", "c1", "cat", "/etc/hosts")
    assert ping6_in(h1, "c2", "fd00:2::1")  # the gateway, on the bridge
    assert ping6_in(h1, "c2", H2_V6)  # host2 has no route back: NAT66 made this work
    # other dual-stack networks are isolated over IPv6 as over IPv4
    ok(h1, "network", "create", "--ipv6", "--subnet", "fd00:3::/64", "ds3")
    sleeper(h1, "d1", "--network", "ds3")
    assert not ping6_in(h1, "d1", c1)


def test_internal_dual_stack_has_no_v6_path_out(h1: LabHost) -> None:
    ok(h1, "network", "create", "--internal", "--ipv6", "--subnet", "fd00:4::/64", "int6")
    sleeper(h1, "i1", "--network", "int6")
    sleeper(h1, "i2", "--network", "int6")
    assert ep_of(h1, "i1", "int6")["IPv6Gateway"] == ""
    assert ping6_in(h1, "i2", ep_of(h1, "i1", "int6")["GlobalIPv6Address"])
    assert not ping6_in(h1, "i1", H2_V6)
    assert not ping6_in(h1, "i1", H1_V6)  # nor the host's other addresses
    # not even with a route added by hand inside the container
    docker(h1, "exec", "i1", "ip", "-6", "route", "add", "default", "via", "fd00:4::1")
    assert not ping6_in(h1, "i1", H2_V6)


def test_ip6_table_repaired_after_deletion(h1: LabHost) -> None:
    ok(h1, "network", "create", "--ipv6", "--subnet", "fd00:5::/64", "ds5")
    sleeper(h1, "e1", "--network", "ds5")
    assert ping6_in(h1, "e1", H2_V6)
    in_host(h1, "nft", "delete", "table", "ip6", "tether", check=True)

    def back() -> bool:
        return in_host(h1, "nft", "list", "table", "ip6", "tether").returncode == 0

    wait_until(back, timeout=20, what="the ip6 tether table re-applied")
    assert ping6_in(h1, "e1", H2_V6)
    clean_host(h1, networks=True)
    assert not back()  # the last dual-stack network gone: so is the table


def test_published_ports_over_ipv6(lab: Lab, h1: LabHost) -> None:
    ok(h1, "network", "create", "--ipv6", "--subnet", "fd00:6::/64", "ds6")
    cid = web(h1, "w1", "--network", "ds6", "-p", "8080:80")
    cid2 = web(h1, "w2", "--network", "ds6", "-p", f"[{H1_V6}]:8082:80")
    shown = ok(h1, "port", "w1", "80/tcp").splitlines()
    assert shown == ["0.0.0.0:8080", "[::]:8080"]  # (this docker CLI brackets IPv6)
    host2 = lab.host("host2")
    # from another host, to host1's IPv6 address (prerouting), and from host1 itself (output)
    assert curl(host2, f"http://[{H1_V6}]:8080/hostname") == cid
    assert curl(h1, f"http://[{H1_V6}]:8080/hostname") == cid
    assert curl(h1, "http://127.0.0.1:8080/hostname") == cid  # IPv4 as before
    assert curl(host2, f"http://{h1.address}:8080/hostname") == cid
    # bound to one IPv6 address: only there
    assert curl(host2, f"http://[{H1_V6}]:8082/hostname") == cid2
    assert curl(host2, f"http://{h1.address}:8082/hostname") is None
    # [::1] is served by the userland proxy (loproxy): an explicit [::1] binding, and the ::
    # twin of a default one (docker-proxy on :: answers on ::1 too)
    cid3 = web(h1, "w3", "--network", "ds6", "-p", "[::1]:8083:80")
    assert curl(h1, "http://[::1]:8083/hostname") == cid3
    assert curl(h1, "http://[::1]:8080/hostname") == cid
    assert curl(h1, f"http://[{H1_V6}]:8083/hostname") is None  # only on ::1
    assert ok(h1, "port", "w3", "80/tcp").splitlines() == ["[::1]:8083"]
    # a second [::1]:8083 is Docker's port clash; udp on [::1] is refused at create
    r = docker(h1, "run", "-d", "--network", "ds6", "-p", "[::1]:8083:80", "alpine", "true")
    assert r.returncode != 0 and "port is already allocated" in r.stderr
    r = docker(h1, "run", "-d", "--network", "ds6", "-p", "[::1]:8085:53/udp", "alpine", "true")
    assert r.returncode != 0 and "TCP only" in r.stderr
    # stop closes the listener (refused: nothing listens), start binds it again
    ok(h1, "stop", "-t", "0", "w3")
    r = in_host(h1, "curl", "-s", "-m", "3", "http://[::1]:8083/hostname")
    assert r.returncode == 7  # curl: "Failed to connect"
    ok(h1, "start", "w3")
    wait_until(lambda: curl(h1, "http://[::1]:8083/hostname") == cid3, timeout=10,
               what="[::1]:8083 served again")  # fmt: skip
    # an IPv6 host address needs a dual-stack network (tether has no userland proxy)
    r = docker(h1, "run", "-d", "-p", f"[{H1_V6}]:8084:80", "alpine", "true")
    assert r.returncode != 0 and "dual-stack" in r.stderr


def test_docker_py_ipv6_network_tests(h1: LabHost) -> None:
    """docker-py's own IPv6 tests (tests/integration/api_network_test.py and
    api_container_test.py), condensed: an IPv6-only IPAM config with host bits, with and
    without EnableIPv6, and ``ipv6_address`` at create and at connect."""
    import docker

    client = docker.DockerClient(base_url=f"unix://{h1.socket}", version="1.41")
    api = client.api
    pool = docker.types.IPAMPool(
        subnet="2001:389::1/64", iprange="2001:389::0/96", gateway="2001:389::ffff"
    )
    ipam = docker.types.IPAMConfig(driver="default", pool_configs=[pool])
    net_id = api.create_network("dpy6", enable_ipv6=True, ipam=ipam)["Id"]
    assert api.inspect_network(net_id)["EnableIPv6"] is True
    api.remove_network(net_id)
    api.create_network("dpy", ipam=ipam)
    ep = api.create_endpoint_config(ipv6_address="2001:389::f00d")
    c = api.create_container(
        "alpine",
        ["sleep", "300"],
        host_config=api.create_host_config(network_mode="dpy"),
        networking_config=api.create_networking_config({"dpy": ep}),
    )
    api.start(c)
    data = api.inspect_container(c)["NetworkSettings"]["Networks"]["dpy"]
    assert data["IPAMConfig"]["IPv6Address"] == "2001:389::f00d"
    api.disconnect_container_from_network(c, "dpy")
    api.connect_container_to_network(c, "dpy", ipv6_address="2001:389::f00d")
    data = api.inspect_container(c)["NetworkSettings"]["Networks"]["dpy"]
    assert data["IPAMConfig"]["IPv6Address"] == "2001:389::f00d"
    client.close()


def test_daemon_restart_keeps_the_ipv6_path(lab: Lab, h1: LabHost) -> None:
    """After a kill -9 and a flushed ip6 table, the restarted daemon re-applies the IPv6
    rules and re-makes the bridge's IPv6 gateway; the running containers keep their path."""
    ok(h1, "network", "create", "--ipv6", "--subnet", "fd00:7::/64", "ds7")
    sleeper(h1, "r1", "--network", "ds7")
    sleeper(h1, "r2", "--network", "ds7")
    assert ping6_in(h1, "r1", H2_V6)
    lab.stop_daemon("host1", kill9=True)
    in_host(h1, "nft", "delete", "table", "ip6", "tether", check=True)
    lab.start_daemon("host1")
    assert ping6_in(h1, "r1", H2_V6)  # NAT66 back
    assert ping6_in(h1, "r1", "r2")  # DNS (AAAA) and the bridge
    # a container started after the restart gets the next address and the same path
    sleeper(h1, "r3", "--network", "ds7")
    assert ep_of(h1, "r3", "ds7")["GlobalIPv6Address"] == "fd00:7::4"
    assert ping6_in(h1, "r3", "r1")


def test_default_bridge_with_fixed_cidr_v6(lab: Lab, h1: LabHost) -> None:
    """daemon.json ``ipv6`` + ``fixed-cidr-v6``: the default bridge is dual-stack, with
    Docker's MAC-derived container addresses; removing them makes it IPv4-only again."""
    conf = Path(h1.config_file)
    conf.write_text(json.dumps({"ipv6": True, "fixed-cidr-v6": "fd00:d0cc::/64"}))
    try:
        lab.restart_daemon("host1")
        net = json.loads(ok(h1, "network", "inspect", "bridge"))[0]
        assert net["EnableIPv6"] is True
        assert net["IPAM"]["Config"][1] == {"Subnet": "fd00:d0cc::/64", "Gateway": "fd00:d0cc::1"}
        sleeper(h1, "f1")
        ep = ep_of(h1, "f1", "bridge")
        mac = ep["MacAddress"].replace(":", "")
        want = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00:d0cc::")) | int(mac, 16))
        assert ep["GlobalIPv6Address"] == str(want)
        assert inspect(h1, "f1")["NetworkSettings"]["GlobalIPv6Address"] == ep["GlobalIPv6Address"]
        assert ping6_in(h1, "f1", "fd00:d0cc::1")
        assert ping6_in(h1, "f1", H2_V6)
        clean_host(h1)
    finally:
        conf.unlink()
        lab.restart_daemon("host1")
    assert json.loads(ok(h1, "network", "inspect", "bridge"))[0]["EnableIPv6"] is False


def test_macvlan_across_hosts_over_ipv6(lab: Lab, h1: LabHost, tmp_path: Path) -> None:
    """Two lab hosts' ``eth0`` (the underlay) as macvlan parents: one LAN, static --ip6."""
    h2 = lab.host("host2")
    if docker(h2, "image", "inspect", "alpine").returncode != 0:
        import_image(h2, tmp_path)
    try:
        for h, n in ((h1, 11), (h2, 12)):
            ok(h, "network", "create", "-d", "macvlan", "--ipv6", "--subnet", "198.18.101.0/24",
               "--subnet", "fd00:77::/64", "-o", "parent=eth0", "mv6")  # fmt: skip
            sleeper(h, f"m{n}", "--network", "mv6", "--ip", f"198.18.101.{n}", "--ip6",
                    f"fd00:77::{n}")  # fmt: skip
        assert ep_of(h1, "m11", "mv6")["GlobalIPv6Address"] == "fd00:77::11"
        assert ping6_in(h1, "m11", "fd00:77::12")
        assert ping6_in(h2, "m12", "fd00:77::11")
        addr = ok(h1, "exec", "m11", "ip", "-6", "addr", "show", "dev", "eth0")
        assert "fd00:77::11/64" in addr and "tentative" not in addr
    finally:
        clean_host(h2, networks=True)


def test_overlay_across_hosts_over_ipv6(
    module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A dual-stack overlay network (etcd) across two lab hosts: IPv6 addresses held in the
    cluster store, neighbour entries for the remote IPv6 endpoints (the VXLAN proxy answers
    NDP from them), AAAA answers for the remote container's name."""
    olab = module_lab_factory(["host1", "host2"], etcd=True)
    tmp = Path(tmp_path_factory.mktemp("oimg"))
    o1, o2 = olab.host("host1"), olab.host("host2")
    for h in (o1, o2):
        import_image(h, tmp)
    ok(o1, "network", "create", "-d", "overlay", "--ipv6", "--subnet", "10.78.0.0/24",
       "--subnet", "fd00:88::/64", "ov6")  # fmt: skip
    wait_until(lambda: docker(o2, "network", "inspect", "ov6").returncode == 0, what="ov6 seen")
    sleeper(o1, "x1", "--network", "ov6")
    sleeper(o2, "x2", "--network", "ov6")
    x1 = ep_of(o1, "x1", "ov6")["GlobalIPv6Address"]
    x2 = ep_of(o2, "x2", "ov6")["GlobalIPv6Address"]
    assert x1 and x2 and x1 != x2  # held in etcd: two hosts never pick the same one
    wait_until(lambda: ping6_in(o1, "x1", x2), timeout=15, what="IPv6 across the overlay")
    assert ping6_in(o2, "x2", x1)
    assert ping6_in(o1, "x1", "x2")  # the remote name's AAAA
