"""Isolation in a lab, with real traffic: user networks are separate, icc=false, --internal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import LabFactory, docker
from .portlab import (
    clean_host,
    curl,
    import_image,
    inspect,
    ip_of,
    ok,
    ping_in,
    two_hosts,
    web,
    wget_in,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    lab = two_hosts(module_lab_factory)
    import_image(lab.host("host1"), Path(tmp_path_factory.mktemp("img")))
    return lab


@pytest.fixture
def h1(lab: Lab) -> Iterator[LabHost]:
    host = lab.host("host1")
    yield host
    clean_host(host, networks=True)


def test_user_networks_are_separate(h1: LabHost) -> None:
    ok(h1, "network", "create", "n1")
    ok(h1, "network", "create", "n2")
    a1 = web(h1, "a1", "--network", "n1")
    web(h1, "a2", "--network", "n1")
    b1 = web(h1, "b1", "--network", "n2")
    a1_ip, b1_ip = ip_of(h1, "a1"), ip_of(h1, "b1")
    # same network: yes (by address and by name)
    assert wget_in(h1, "a2", f"http://{a1_ip}/hostname") == a1
    assert wget_in(h1, "a2", "http://a1/hostname") == a1
    assert ping_in(h1, "a2", a1_ip)
    # across networks: no, in both directions
    assert wget_in(h1, "b1", f"http://{a1_ip}/hostname") is None
    assert not ping_in(h1, "b1", a1_ip)
    assert wget_in(h1, "a1", f"http://{b1_ip}/hostname") is None
    # nor with the default bridge
    web(h1, "d1")
    assert wget_in(h1, "d1", f"http://{a1_ip}/hostname") is None
    # connecting b1 to n1 too makes it reachable
    ok(h1, "network", "connect", "n1", "b1")
    b1_on_n1 = ip_of(h1, "b1", "n1")
    assert wget_in(h1, "a1", f"http://{b1_on_n1}/hostname") == b1


def test_icc_false_blocks_the_same_network(lab: Lab, h1: LabHost) -> None:
    ok(h1, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "noicc")
    c1 = web(h1, "c1", "--network", "noicc")
    web(h1, "c2", "--network", "noicc")
    c1_ip = ip_of(h1, "c1")
    assert wget_in(h1, "c2", f"http://{c1_ip}/hostname") is None
    assert not ping_in(h1, "c2", c1_ip)
    # the outside is still reachable, and published ports still work
    assert ping_in(h1, "c2", lab.host("host2").address)
    ok(h1, "network", "create", "icc")
    web(h1, "i1", "--network", "icc")
    web(h1, "i2", "--network", "icc")
    assert wget_in(h1, "i2", f"http://{ip_of(h1, 'i1')}/hostname") is not None
    ok(h1, "rm", "-f", "c1")
    c3 = web(h1, "c3", "--network", "noicc", "-p", "8300:80")
    assert curl(lab.host("host2"), f"http://{h1.address}:8300/hostname") == c3
    assert c1


def test_internal_network(lab: Lab, h1: LabHost) -> None:
    h2 = lab.host("host2")
    ok(h1, "network", "create", "--internal", "intnet")
    ok(h1, "network", "create", "other")
    web(h1, "o1", "--network", "other", "-p", "8400:80")  # a published port on the host
    r = docker(h1, "run", "-d", "--name", "in1", "--network", "intnet", "-p", "8401:80", "alpine",
               "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    assert r.returncode == 0, r.stderr
    web(h1, "in2", "--network", "intnet")
    assert inspect(h1, "in1")["NetworkSettings"]["Networks"]["intnet"]["Gateway"] == ""
    gw = ok(h1, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "intnet")
    other_gw = inspect(h1, "o1")["NetworkSettings"]["Networks"]["other"]["Gateway"]
    # no default route
    routes = ok(h1, "exec", "in1", "ip", "route")
    assert "default" not in routes, routes
    # within the network: fine
    assert wget_in(h1, "in2", f"http://{ip_of(h1, 'in1')}/hostname") is not None
    # its own gateway answers ping (as in Docker)
    assert ping_in(h1, "in1", gw)
    # nothing outside: not another lab host, not the host's own addresses, not other networks
    assert not ping_in(h1, "in1", h2.address)
    assert not ping_in(h1, "in1", h1.address)
    assert wget_in(h1, "in1", f"http://{h1.address}:8400/hostname") is None
    assert not ping_in(h1, "in1", other_gw)
    assert wget_in(h1, "in1", f"http://{ip_of(h1, 'o1')}/hostname") is None
    # and the control: a container on a normal network reaches all of these
    assert ping_in(h1, "o1", h2.address)
    assert wget_in(h1, "o1", f"http://{h1.address}:8400/hostname") is not None
    # internal networks publish nothing
    assert curl(h1, "http://127.0.0.1:8401/hostname") is None
    assert curl(h2, f"http://{h1.address}:8401/hostname") is None
