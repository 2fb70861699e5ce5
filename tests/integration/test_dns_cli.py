"""Embedded DNS end to end: the real docker CLI against a lab host's daemon.

busybox ``nslookup``/``ping`` inside containers for what users see, and ``dnsclient.py`` run
in a container's network namespace for wire details (TCP, PTR, AAAA, truncation). Every
upstream is a fake one inside the lab (see ``dnslab.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .dnslab import ALT, HOST_OPTIONS, STUB, DnsLab, dns_lab
from .helpers import LabFactory


@pytest.fixture(scope="module")
def d(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    yield from dns_lab(module_lab_factory, tmp_path_factory.mktemp("dnscli"))


@pytest.fixture(scope="module")
def net(d: DnsLab) -> str:
    """User network ``n1`` with ``web`` (alias ``www``) and the asker ``cli`` on it."""
    d.docker("network", "create", "n1")
    d.run("web", "--network", "n1", "--network-alias", "www")
    d.run("cli", "--network", "n1")
    return "n1"


def test_resolv_conf_on_user_network(d: DnsLab, net: str) -> None:
    r = d.exec("cli", "cat", "/etc/resolv.conf")
    assert r.stdout == f"nameserver 127.0.0.11\noptions {HOST_OPTIONS} ndots:0\n"


def test_resolv_conf_on_default_bridge_drops_loopback(d: DnsLab) -> None:
    d.run("bb1")
    r = d.exec("bb1", "cat", "/etc/resolv.conf")
    assert STUB not in r.stdout
    assert r.stdout == f"nameserver {d.host.address}\noptions {HOST_OPTIONS}\n"


def test_resolv_conf_dns_flags_on_default_bridge(d: DnsLab) -> None:
    d.run("bb2", "--dns", "192.0.2.53", "--dns-search", "lab.test", "--dns-option", "ndots:2")
    r = d.exec("bb2", "cat", "/etc/resolv.conf")
    assert r.stdout == "nameserver 192.0.2.53\nsearch lab.test\noptions ndots:2\n"


def test_container_name_alias_and_short_id(d: DnsLab, net: str) -> None:
    web_ip = d.ip("web", net)
    web_id = d.docker("inspect", "-f", "{{.Id}}", "web").stdout.strip()
    for name in ("web", "www", web_id[:12], "WEB", f"web.{net}"):
        assert d.a("cli", name) == [web_ip], name
    r = d.exec("cli", "nslookup", "web")
    assert r.returncode == 0, r.stderr
    assert "Server:\t\t127.0.0.11" in r.stdout
    assert f"Name:\tweb\nAddress: {web_ip}" in r.stdout
    r = d.exec("cli", "ping", "-c1", "-W2", "www")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"PING www ({web_ip})" in r.stdout


def test_default_bridge_has_no_embedded_dns(d: DnsLab, net: str) -> None:
    d.run("bb3")
    r = d.exec("bb3", "ping", "-c1", "-W1", "web")
    assert r.returncode != 0
    assert "ping: bad address 'web'" in r.stderr
    # the question went to the (lab) host resolver, which does not know it
    assert d.upstream_saw("udp web. A")


def test_names_only_on_shared_networks_and_connect_alias(d: DnsLab, net: str) -> None:
    d.docker("network", "create", "n2")
    d.run("other", "--network", "n2")
    assert d.query("cli", "other")["rcode"] == "NXDOMAIN"  # forwarded, unknown upstream
    assert d.a("other", "web") == []
    d.docker("network", "connect", "--alias", "extra", net, "other")
    other_ip = d.ip("other", net)
    assert d.a("cli", "other") == [other_ip]
    assert d.a("cli", "extra") == [other_ip]
    assert d.a("other", "web") == [d.ip("web", net)]  # other now sees n1's names
    d.docker("network", "disconnect", net, "other")
    assert d.query("cli", "extra")["rcode"] == "NXDOMAIN"


def test_new_name_answers_when_run_returns_and_stops_at_rm(d: DnsLab, net: str) -> None:
    d.run("fresh", "--network", net)
    assert d.a("cli", "fresh") == [d.ip("fresh", net)]
    d.docker("rm", "-f", "fresh")
    res = d.query("cli", "fresh")
    assert res["rcode"] == "NXDOMAIN" and res["answers"] == []


def test_ptr_aaaa_tcp(d: DnsLab, net: str) -> None:
    web_ip = d.ip("web", net)
    rev = ".".join(reversed(web_ip.split("."))) + ".in-addr.arpa"
    res = d.query("cli", rev, "PTR")
    assert res["rcode"] == "NOERROR"
    assert res["answers"] == [[rev + ".", "PTR", f"web.{net}."]]
    res = d.query("cli", "web", "AAAA")
    assert (res["rcode"], res["answers"]) == ("NOERROR", [])
    res = d.query("cli", "web", "A", "--tcp")
    assert res["id_ok"] and res["answers"] == [["web.", "A", web_ip]]


def test_forwarding_through_host_loopback_upstream(d: DnsLab, net: str) -> None:
    # 127.0.0.53 is the lab host's loopback: the container cannot reach it, the daemon can.
    r = d.exec("cli", "nslookup", "fwd1.lab.test")
    assert r.returncode == 0, r.stderr
    assert "Address: 192.0.2.10" in r.stdout
    assert d.upstream_saw("udp fwd1.lab.test. A")
    res = d.query("cli", "fwd2.lab.test", "A", "--tcp")
    assert res["answers"] == [["fwd2.lab.test.", "A", "192.0.2.10"]]
    assert d.upstream_saw("tcp fwd2.lab.test. A")


def test_dns_flag_sets_embedded_upstream(d: DnsLab, net: str) -> None:
    d.run("altc", "--network", net, "--dns", ALT)
    r = d.exec("altc", "cat", "/etc/resolv.conf")
    assert r.stdout.startswith("nameserver 127.0.0.11\n")
    assert d.a("altc", "alt1.lab.test") == ["192.0.2.10"]
    assert d.upstream_saw("udp alt1.lab.test. A", alt=True)
    assert not d.upstream_saw("udp alt1.lab.test. A")
    assert d.a("altc", "web") == [d.ip("web", net)]  # names still answered locally


def test_truncated_upstream_answer_falls_back_to_tcp(d: DnsLab, net: str) -> None:
    res = d.query("cli", "tc.lab.test")
    assert not res["tc"]
    assert res["answers"] == [["tc.lab.test.", "A", "192.0.2.20"]]
    assert d.upstream_saw("udp tc.lab.test. A") and d.upstream_saw("tcp tc.lab.test. A")
    # too big for the client's 512 bytes even after the TCP retry: TC goes to the client...
    res = d.query("cli", "big.lab.test")
    assert res["tc"] and res["answers"] == []
    # ...which then gets everything over TCP
    res = d.query("cli", "big.lab.test", "A", "--tcp")
    assert len(res["answers"]) == 40 and not res["tc"]
    # and with EDNS (1232 bytes) it fits: the daemon relays the TCP answer over UDP
    res = d.query("cli", "big.lab.test", "A", "--edns", "1232")
    assert len(res["answers"]) == 40 and not res["tc"]


def test_default_bridge_container_connected_to_user_network(d: DnsLab, net: str) -> None:
    d.run("bb4")
    assert d.exec("bb4", "cat", "/etc/resolv.conf").stdout.startswith(
        f"nameserver {d.host.address}\n"
    )
    d.docker("network", "connect", net, "bb4")
    r = d.exec("bb4", "cat", "/etc/resolv.conf")
    assert r.stdout == f"nameserver 127.0.0.11\noptions {HOST_OPTIONS} ndots:0\n"
    r = d.exec("bb4", "nslookup", "web")
    assert r.returncode == 0 and f"Address: {d.ip('web', net)}" in r.stdout, r.stdout + r.stderr
    assert d.a("cli", "bb4") == [d.ip("bb4", net)]


def test_dns_survives_a_second_network(d: DnsLab, net: str) -> None:
    """A container on two user networks sees both sets of names (one listener)."""
    d.docker("network", "create", "n3")
    d.run("n3only", "--network", "n3")
    d.run("two", "--network", net)
    d.docker("network", "connect", "n3", "two")
    assert d.a("two", "n3only") == [d.ip("n3only", "n3")]
    assert d.a("two", "web") == [d.ip("web", net)]
    assert d.query("cli", "n3only")["rcode"] == "NXDOMAIN"


def test_no_query_left_the_lab(d: DnsLab) -> None:
    """Sanity: the daemon's host resolv.conf is the lab's, so it names only lab upstreams."""
    text = Path(d.resolv).read_text()
    assert f"nameserver {STUB}" in text and "nameserver 10." not in text
