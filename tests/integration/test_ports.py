"""Published ports in a lab, with real traffic: loopback, underlay, another host, hairpin, UDP,
ranges, random ports, conflicts, and the nftables table coming back after someone flushes it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import LabFactory, docker, in_host, wait_until
from .portlab import (
    clean_host,
    count_rules,
    curl,
    import_image,
    inspect,
    ip_of,
    map_elements,
    nft_text,
    ok,
    two_hosts,
    udp_ask,
    udp_echo_in_sandbox,
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
    clean_host(host)


def test_published_port_from_loopback_underlay_and_another_host(lab: Lab, h1: LabHost) -> None:
    h2 = lab.host("host2")
    cid = web(h1, "w1", "-p", "8080:80")
    assert curl(h1, "http://127.0.0.1:8080/hostname") == cid
    assert curl(h1, f"http://{h1.address}:8080/hostname") == cid
    assert curl(h2, f"http://{h1.address}:8080/hostname") == cid
    # a port nobody published answers nothing (the probes can fail)
    assert curl(h1, "http://127.0.0.1:8081/hostname") is None
    assert curl(h2, f"http://{h1.address}:8081/hostname") is None
    # after the container stops, its port is gone from the kernel
    ok(h1, "stop", "-t", "1", "w1")
    assert curl(h2, f"http://{h1.address}:8080/hostname") is None
    ok(h1, "start", "w1")
    wait_until(lambda: curl(h2, f"http://{h1.address}:8080/hostname") == cid, what="restart")


def test_specific_host_ip(lab: Lab, h1: LabHost) -> None:
    cid = web(h1, "w1", "-p", f"{h1.address}:8500:8500/tcp", port=8500)
    assert curl(lab.host("host2"), f"http://{h1.address}:8500/hostname") == cid
    assert curl(h1, "http://127.0.0.1:8500/hostname") is None  # bound to that address only
    assert ok(h1, "port", "w1") == f"8500/tcp -> {h1.address}:8500"


def test_host_ip_must_be_a_host_address(h1: LabHost) -> None:
    r = docker(h1, "run", "-d", "--name", "w9", "-p", "10.0.0.101:8500:8500/tcp", "alpine",
               "sleep", "60")  # fmt: skip
    assert r.returncode != 0
    assert re.search(
        r"driver failed programming external connectivity on endpoint w9 \([0-9a-f]{64}\): "
        r"listen tcp4 10\.0\.0\.101:8500: bind: cannot assign requested address",
        r.stderr,
    ), r.stderr
    # Docker: created, not started, nothing published
    assert inspect(h1, "w9")["State"]["Status"] == "created"
    assert ok(h1, "port", "w9") == ""


def test_udp(lab: Lab, h1: LabHost) -> None:
    ok(h1, "run", "-d", "--name", "u1", "-p", "5454:5454/udp", "alpine", "sleep", "300")
    echo = udp_echo_in_sandbox(h1, "u1", 5454)
    try:
        assert udp_ask(h1, "127.0.0.1", 5454) == "echo:hello"
        assert udp_ask(lab.host("host2"), h1.address, 5454) == "echo:hello"
        assert udp_ask(h1, "127.0.0.1", 5455) is None
    finally:
        echo.kill()
        echo.wait()
    assert ok(h1, "port", "u1") == "5454/udp -> 0.0.0.0:5454"


def test_ranges_random_and_publish_all(h1: LabHost) -> None:
    ok(h1, "run", "-d", "--name", "r1", "-p", "8000-8002:80-82", "-p", "80", "--expose", "7000",
       "-P", "alpine", "httpd", "-f", "-p", "81", "-h", "/etc")  # fmt: skip
    lines = ok(h1, "port", "r1").splitlines()
    assert "80/tcp -> 0.0.0.0:8000" in lines
    assert "81/tcp -> 0.0.0.0:8001" in lines
    assert "82/tcp -> 0.0.0.0:8002" in lines
    random_ports = [ln for ln in lines if ln.startswith(("80/tcp", "7000/tcp"))]
    assert len(random_ports) == 3, lines  # 80 twice (8000 and a random one), 7000 random
    for ln in random_ports:
        if not ln.endswith(":8000"):
            assert 49153 <= int(ln.rsplit(":", 1)[1]) <= 65535
    cid = inspect(h1, "r1")["Id"][:12]
    assert curl(h1, "http://127.0.0.1:8001/hostname") == cid
    # inspect: HostPort is a string, HostIp 0.0.0.0
    ports = inspect(h1, "r1")["NetworkSettings"]["Ports"]
    assert ports["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8001"}]
    assert all(isinstance(b["HostPort"], str) for v in ports.values() for b in v or [])
    ps = ok(h1, "ps", "--format", "{{.Ports}}", "--filter", "name=r1")
    assert "0.0.0.0:8001->81/tcp" in ps and "0.0.0.0:8002->82/tcp" in ps, ps


def test_conflict_at_start_and_port_freed_at_stop(h1: LabHost) -> None:
    """Docker's model: host ports are taken at start and given back at stop. A clash fails
    the start (Docker's text) and leaves a created container, without any rule."""
    web(h1, "w1", "-p", "8080:80")
    before_rules = nft_text(h1, "table", "ip", "tether")
    r = docker(h1, "run", "-d", "--name", "w2", "-p", "8080:80", "alpine", "sleep", "60")
    assert r.returncode == 125
    assert re.search(
        r"docker: Error response from daemon: driver failed programming external connectivity "
        r"on endpoint w2 \([0-9a-f]{64}\): Bind for 0\.0\.0\.0:8080 failed: port is already "
        r"allocated",
        r.stderr,
    ), r.stderr
    assert inspect(h1, "w2")["State"]["Status"] == "created"
    assert nft_text(h1, "table", "ip", "tether") == before_rules
    ok(h1, "rm", "w2")
    # the other ports it asked for are free
    ok(h1, "run", "-d", "--name", "w2", "-p", "8090:80", "alpine", "sleep", "60")
    # a specific address collides with 0.0.0.0 as well, at start
    ok(h1, "create", "--name", "w3", "-p", f"{h1.address}:8080:80", "alpine", "sleep", "60")
    r = docker(h1, "start", "w3")
    assert "Bind for " in r.stderr and "port is already allocated" in r.stderr
    # a stopped container's port is free for another
    ok(h1, "stop", "-t", "0", "w1")
    assert ok(h1, "port", "w1") == ""
    ok(h1, "start", "w3")
    assert ok(h1, "port", "w3").strip() == f"80/tcp -> {h1.address}:8080"
    r = docker(h1, "start", "w1")
    assert r.returncode != 0 and "port is already allocated" in r.stderr


def test_host_network_discards_ports_with_the_warning(h1: LabHost) -> None:
    r = docker(h1, "run", "-d", "--name", "hn", "--network", "host", "-p", "9999:80", "alpine",
               "sleep", "60")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "WARNING: Published ports are discarded when using host network mode" in r.stderr
    assert ok(h1, "port", "hn") == ""
    assert inspect(h1, "hn")["NetworkSettings"]["Ports"] == {}


def test_hairpin_own_and_neighbour(h1: LabHost) -> None:
    a = web(h1, "ha", "-p", "8100:80")
    b = web(h1, "hb", "-p", "8101:80")
    assert wget_in(h1, "ha", f"http://{h1.address}:8100/hostname") == a  # its own port
    assert wget_in(h1, "ha", f"http://{h1.address}:8101/hostname") == b  # a neighbour's
    assert wget_in(h1, "ha", f"http://{h1.address}:8102/hostname") is None
    # on another user network too (through the host, as from outside)
    ok(h1, "network", "create", "pn1")
    c = web(h1, "hc", "--network", "pn1", "-p", "8103:80")
    assert wget_in(h1, "hc", f"http://{h1.address}:8103/hostname") == c
    assert wget_in(h1, "hc", f"http://{h1.address}:8100/hostname") == a
    ok(h1, "rm", "-f", "hc")
    ok(h1, "network", "rm", "pn1")


def test_flushed_ruleset_is_restored_periodically_and_on_restart(lab: Lab, h1: LabHost) -> None:
    cid = web(h1, "w1", "-p", "8080:80")
    want = nft_text(h1, "table", "ip", "tether")
    # someone else's table must survive everything tether does
    in_host(h1, "nft", "add table ip other; add chain ip other c; add rule ip other c accept",
            check=True)  # fmt: skip
    other = nft_text(h1, "table", "ip", "other")

    in_host(h1, "nft", "flush", "ruleset", check=True)
    assert curl(h1, f"http://{h1.address}:8080/hostname") is None
    in_host(h1, "nft", "add table ip other; add chain ip other c; add rule ip other c accept",
            check=True)  # fmt: skip
    wait_until(
        lambda: curl(h1, f"http://{h1.address}:8080/hostname") == cid,
        timeout=20,
        what="periodic re-apply after nft flush ruleset",
    )
    assert nft_text(h1, "table", "ip", "tether") == want
    assert "tether-user" in in_host(h1, "nft", "list", "tables", check=True).stdout
    assert nft_text(h1, "table", "ip", "other") == other

    # a deleted table, with the daemon down: the restart puts it back
    lab.stop_daemon("host1")
    in_host(h1, "nft", "delete", "table", "ip", "tether", check=True)
    lab.start_daemon("host1")
    assert nft_text(h1, "table", "ip", "tether") == want
    assert curl(h1, f"http://{h1.address}:8080/hostname") == cid
    assert nft_text(h1, "table", "ip", "other") == other
    in_host(h1, "nft", "delete", "table", "ip", "other", check=True)


def test_a_thousand_ports_are_map_elements_not_rules(h1: LabHost) -> None:
    cid = web(h1, "one", "-p", "8080:80")
    rules_one = count_rules(h1)
    assert map_elements(h1, "dnat_any_port") == 1
    ok(h1, "run", "-d", "--name", "many", "-p", "20000-20999:1000-1999", "alpine", "httpd", "-f",
       "-p", "1500", "-h", "/etc")  # fmt: skip
    assert map_elements(h1, "dnat_any_port") == 1001
    assert count_rules(h1) == rules_one
    many = inspect(h1, "many")["Id"][:12]
    assert curl(h1, "http://127.0.0.1:20500/hostname") == many
    assert curl(h1, "http://127.0.0.1:8080/hostname") == cid
    assert len(ok(h1, "port", "many").splitlines()) == 1000
    assert ip_of(h1, "many")
