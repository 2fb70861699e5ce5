"""The raw endpoint messages (``tether.linux.rtlink``) against pyroute2's, as the kernel keeps
them: the same interface configured both ways in two scratch namespaces reads back the same
(addresses with their flags, scope and broadcast; the default routes with their protocol)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from tether.linux import nsthread, rtlink
from tether.linux.lazypkg import bare_package
from tether.linux.netns import NetnsDir
from tether.linux.nsock import netlink_socket_in_netns

pytestmark = pytest.mark.lab

ADDRS = ["10.77.0.9/16", "fd00:77::9/64"]
GWS = ["10.77.0.1", "fd00:77::1"]


def _ip(path: str, *argv: str) -> Any:
    out = subprocess.run(
        ["nsenter", f"--net={path}", "ip", "-j", *argv], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out or "[]")


def _prepare(path: str) -> None:
    """eth0 (a veth with its peer beside it), IPv6 on for it, as a dual-stack endpoint."""
    subprocess.run(
        ["nsenter", f"--net={path}", "ip", "link", "add", "eth0", "type", "veth", "peer", "p0"],
        check=True,
    )
    for key in ("accept_dad", "accept_ra"):
        assert nsthread.default().submit_sysctl(path, f"net/ipv6/conf/eth0/{key}", "0").result()
    assert nsthread.default().submit_sysctl(path, "net/ipv6/conf/eth0/disable_ipv6", "0").result()
    subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "p0", "up"], check=True)


def _view(path: str) -> tuple[list[Any], list[Any]]:
    addrs = [
        {k: a.get(k) for k in ("family", "local", "prefixlen", "broadcast", "scope", "nodad")}
        for a in _ip(path, "addr", "show", "dev", "eth0")[0]["addr_info"]
        if a.get("scope") == "global"
    ]
    routes = [
        {k: r.get(k) for k in ("dst", "gateway", "dev", "protocol", "scope", "type")}
        for fam in ("-4", "-6")
        for r in _ip(path, fam, "route", "show", "default")
    ]
    return addrs, routes


def test_raw_peer_configuration_reads_back_as_pyroute2s(nsdir: NetnsDir) -> None:
    a = asyncio.run(nsdir.create("a"))
    b = asyncio.run(nsdir.create("b"))
    _prepare(a)
    _prepare(b)

    async def by_pyroute2() -> None:  # what PyrouteNetlink._configure_in did
        bare_package("pyroute2")
        from pyroute2.iproute.linux import AsyncIPRoute

        ipr = AsyncIPRoute(fileno=netlink_socket_in_netns(a).detach())
        await ipr.setup_endpoint()
        try:
            idx = (await ipr.link_lookup(ifname="eth0"))[0]
            await ipr.addr("add", index=idx, address="10.77.0.9", prefixlen=16,
                           broadcast="10.77.255.255")  # fmt: skip
            await ipr.addr("add", index=idx, address="fd00:77::9", prefixlen=64, flags=0x02)
            await ipr.link("set", index=idx, state="up")
            await ipr.route("add", dst="0.0.0.0/0", gateway=GWS[0], oif=idx, family=2)
            await ipr.route("add", dst="::/0", gateway=GWS[1], oif=idx, family=10)
        finally:
            ipr.close()

    asyncio.run(by_pyroute2())
    with netlink_socket_in_netns(b) as sock:
        sock.settimeout(5)
        idx = rtlink.link_index(sock, "eth0")
        assert idx is not None
        rtlink.run(sock, rtlink.peer_batch(idx, ADDRS, GWS))
        assert rtlink.link_index(sock, "nosuch") is None
    want, got = _view(a), _view(b)
    assert got == want
    assert len(got[0]) == 2 and len(got[1]) == 2  # both addresses and both default routes
    assert got[0][0]["broadcast"] == "10.77.255.255"
    assert _ip(b, "link", "show", "eth0")[0]["operstate"] in ("UP", "LOWERLAYERDOWN", "UNKNOWN")
