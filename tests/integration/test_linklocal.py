"""``--link-local-ip`` (``IPAMConfig.LinkLocalIPs``) through the real docker CLI (issue 17).

The addresses go on the container's interface for that network (IPv4 /16, IPv6 /64, as
libnetwork's ``llAddrs``), inspect shows them back in ``IPAMConfig.LinkLocalIPs``, and a bad
one is refused at create with Docker's text, leaving no container behind.
"""

from __future__ import annotations

import json

import pytest

from tether.lab.lab import LabHost

from .helpers import docker, docker_ok
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab


ok = docker_ok


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    ok(host1, "network", "create", "--subnet", "172.28.0.0/24", "llnet")
    return host1


def test_link_local_ip_on_the_default_bridge(h: LabHost) -> None:
    out = ok(h, "run", "--rm", "--link-local-ip", "169.254.1.5", "alpine", "ip", "-o", "addr")
    eth0 = [line for line in out.splitlines() if " eth0 " in line]
    assert any("inet 169.254.1.5/16 " in line for line in eth0), out
    assert any("inet 172.17." in line for line in eth0), out


def test_link_local_ips_on_a_user_network_and_in_inspect(h: LabHost) -> None:
    ok(
        h, "run", "-d", "--name", "llc", "--network", "llnet",
        "--link-local-ip", "169.254.7.7", "--link-local-ip", "fe80::7:7",
        "alpine", "sleep", "300",
    )  # fmt: skip
    out = ok(h, "exec", "llc", "ip", "-o", "addr", "show", "eth0")
    assert "inet 169.254.7.7/16 " in out, out
    assert "inet6 fe80::7:7/64 " in out, out
    assert "inet 172.28.0." in out, out
    data = json.loads(ok(h, "inspect", "llc"))[0]
    ipam = data["NetworkSettings"]["Networks"]["llnet"]["IPAMConfig"]
    assert ipam == {"LinkLocalIPs": ["169.254.7.7", "fe80::7:7"]}
    ok(h, "rm", "-f", "llc")


def test_network_connect_with_a_link_local_ip(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "llc2", "alpine", "sleep", "300")
    ok(h, "network", "connect", "--link-local-ip", "169.254.8.8", "llnet", "llc2")
    out = ok(h, "exec", "llc2", "ip", "-o", "addr", "show", "eth1")
    assert "inet 169.254.8.8/16 " in out, out
    ok(h, "rm", "-f", "llc2")


def test_a_bad_link_local_ip_is_refused_at_create(h: LabHost) -> None:
    r = docker(h, "create", "--name", "llbad", "--link-local-ip", "nope", "alpine")
    assert r.returncode != 0
    assert "Invalid link-local IP address: [nope]" in r.stderr, r.stderr
    assert docker(h, "inspect", "llbad").returncode != 0
