"""The namespace thread (root): namespaces and sockets made inside, the thread always back home.

Each test makes its namespaces under a temporary folder and removes them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading

import pytest

from tether.linux import nsthread
from tether.linux.netlink import LinkSpec, PyrouteNetlink
from tether.linux.netns import NetnsDir, is_mount_point
from tether.linux.nsock import netlink_socket_in_netns

from .helpers import in_threads

pytestmark = pytest.mark.lab


def _inside(path: str, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={path}", *argv], capture_output=True, text=True, check=True
    ).stdout


def test_create_makes_a_new_namespace_and_the_thread_goes_home(nsdir: NetnsDir) -> None:
    t = nsthread.NetnsThread()
    try:
        home = os.stat("/proc/self/ns/net").st_ino
        a = asyncio.run(nsdir.create("a"))
        b = asyncio.run(nsdir.create("b"))
        ino_a, ino_b = os.stat(a).st_ino, os.stat(b).st_ino
        assert len({home, ino_a, ino_b}) == 3
        # a fresh namespace: only lo, and down
        assert _inside(a, "ip", "-o", "link").count(": lo:") == 1
        assert len(_inside(a, "ip", "-o", "link").splitlines()) == 1
        # the thread that made them is back in the daemon's namespace
        where = t.submit(lambda _home: os.stat("/proc/thread-self/ns/net").st_ino).result()
        assert where == home
        where = (
            nsthread.default()
            .submit(lambda _h: os.stat("/proc/thread-self/ns/net").st_ino)
            .result()
        )
        assert where == home
        # IPv6 off for every interface made in it later (tether's networks are IPv4-only);
        # lo, there from the start, keeps it
        assert _inside(a, "cat", "/proc/sys/net/ipv6/conf/default/disable_ipv6").strip() == "1"
        assert _inside(a, "cat", "/proc/sys/net/ipv6/conf/lo/disable_ipv6").strip() == "0"
        _inside(a, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        _inside(a, "ip", "link", "set", "d0", "up")
        assert _inside(a, "cat", "/proc/sys/net/ipv6/conf/d0/disable_ipv6").strip() == "1"
        assert "inet6" not in _inside(a, "ip", "addr", "show", "d0")
        nsdir.delete("a")
        assert not os.path.exists(a)
        # the folder is a mount of its own (one detach hides every sandbox file)
        assert is_mount_point(str(nsdir.root))
    finally:
        t.close()


def test_sockets_land_inside_and_errors_leave_nothing(nsdir: NetnsDir) -> None:
    path = asyncio.run(nsdir.create("s"))
    t = nsthread.NetnsThread()
    try:
        specs = [
            nsthread.SocketSpec(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.11", 0), True),
            nsthread.SocketSpec(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.11", 0), True, True),
        ]
        udp, tcp = t.sockets_in_netns(path, specs)
        tcp.listen()
        port = tcp.getsockname()[1]
        assert f"127.0.0.11:{port}" in _inside(path, "ss", "-Hltn")
        host = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
        assert f"127.0.0.11:{port}" not in host
        # the second socket cannot bind: the first one made in that job is closed again
        before = len(os.listdir("/proc/self/fd"))
        clash = [
            nsthread.SocketSpec(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.11", 0), True),
            nsthread.SocketSpec(socket.AF_INET, socket.SOCK_STREAM, tcp.getsockname(), True),
        ]
        with pytest.raises(OSError) as info:
            t.sockets_in_netns(path, clash)
        assert info.value.errno == 98
        assert len(os.listdir("/proc/self/fd")) == before
        with pytest.raises(FileNotFoundError):
            t.sockets_in_netns("/nonexistent/ns", specs)
        with pytest.raises(OSError):  # not a namespace file
            t.sockets_in_netns("/proc/self/stat", specs)
        home = os.stat("/proc/self/ns/net").st_ino
        assert t.submit(lambda _h: os.stat("/proc/thread-self/ns/net").st_ino).result() == home
        udp.close()
        tcp.close()
    finally:
        t.close()


def test_a_stranded_thread_retires_and_the_next_job_gets_a_fresh_one() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    t = nsthread.NetnsThread()
    try:
        first = t.submit(lambda _h: threading.get_ident()).result()

        def strand(_home: int) -> None:
            nsthread._go_home(-1)  # setns on a bad descriptor: the thread cannot go home

        with pytest.raises(OSError):
            t.submit(strand).result()
        second = t.submit(lambda _h: threading.get_ident()).result()
        assert second != first
        home = os.stat("/proc/self/ns/net").st_ino
        assert t.submit(lambda _h: os.stat("/proc/thread-self/ns/net").st_ino).result() == home
    finally:
        t.close()
    with pytest.raises(OSError):
        t.submit(lambda _h: None)


def test_many_threads_share_the_namespace_thread(nsdir: NetnsDir) -> None:
    path = asyncio.run(nsdir.create("m"))
    inos: set[int] = set()
    target = os.stat(path).st_ino

    def worker() -> None:
        for _ in range(50):
            s = netlink_socket_in_netns(path)
            s.close()
            inos.add(os.stat("/proc/thread-self/ns/net").st_ino)

    assert in_threads(worker, 8) == []
    assert target not in inos  # no calling thread ever moved


def test_pyroute_talks_to_the_sandbox_through_a_socket_made_there(nsdir: NetnsDir) -> None:
    path = asyncio.run(nsdir.create("p"))

    async def main() -> None:
        nl = PyrouteNetlink()
        try:
            await nl.loopback_up(path)
            assert not await nl.link_exists("eth9", path)
            spec = LinkSpec(path, "eth9", "02:42:0a:00:00:09", "10.99.0.9/24", None)
            # a veth pair made inside, then one end addressed by the sandbox socket
            subprocess.run(
                [
                    "nsenter",
                    f"--net={path}",
                    "ip",
                    "link",
                    "add",
                    "eth9",
                    "type",
                    "veth",
                    "peer",
                    "eth9p",
                ],
                check=True,
            )
            await nl.endpoints.configure_peer(spec)
            assert "10.99.0.9/24 brd 10.99.0.255" in _inside(path, "ip", "-o", "addr")
            assert await nl.link_exists("eth9", path)
            await nl.delete_link("eth9", path)
            assert not await nl.link_exists("eth9", path)
        finally:
            await nl.close()

    asyncio.run(main())
    out = _inside(path, "ip", "-o", "addr")
    assert "127.0.0.1/8" in out  # lo is up
    assert "10.99.0.9" not in out
