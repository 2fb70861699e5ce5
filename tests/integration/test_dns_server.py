"""The embedded DNS inside a real network namespace (root): 127.0.0.11:53 served by our loop.

Each test makes its own namespace ``tether-dnstest-<random>`` (lo up) and removes it. The
only upstream is a fake DNS server on the host's 127.0.0.1, which also shows that forwarding
leaves from the host namespace (the container could not reach the host's loopback itself).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
import uvloop
from dnslib import QTYPE, RR, A, DNSRecord

from tether.engine.dns import DnsServer
from tether.linux.nsock import SocketSpec, socket_in_netns, sockets_in_netns

from .helpers import in_threads

pytestmark = pytest.mark.lab

CLIENT = r"""
import socket, struct, sys
from dnslib import DNSRecord
name, qtype, proto = sys.argv[1], sys.argv[2], sys.argv[3]
q = DNSRecord.question(name, qtype).pack()
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, ("127.0.0.11", 53))
    data = s.recv(65535)
else:
    s = socket.create_connection(("127.0.0.11", 53), timeout=3)
    s.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", s.recv(2))[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
r = DNSRecord.parse(data)
print(r.header.rcode, " ".join(str(a.rdata) for a in r.rr))
"""


class Resolver:
    def __init__(self) -> None:
        self.names = {"web": ["172.28.0.1"]}
        self.servers: list[str] = []

    def lookup(self, sandbox: str, name: str) -> list[str] | None:
        return self.names.get(name)

    def reverse(self, sandbox: str, ip: str) -> str | None:
        return "web.jasonyin2020" if ip == "172.28.0.1" else None

    def upstreams(self, sandbox: str) -> list[str]:
        return self.servers


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    if shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("needs iproute2 and nsenter")
    name = f"tether-dnstest-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Iterator[Any]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(asyncio.wait_for(coro, 60))

    yield runner


async def inside(ns: str, *argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "nsenter",
        f"--net=/run/netns/{ns}",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def ask(ns: str, name: str, qtype: str = "A", proto: str = "udp") -> tuple[int, str]:
    return await inside(ns, sys.executable, "-c", CLIENT, name, qtype, proto)


async def fake_upstream() -> tuple[asyncio.DatagramTransport, int]:
    class Upstream(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            rec = DNSRecord.parse(data)
            reply = rec.reply()
            reply.add_answer(RR(rec.q.qname, QTYPE.A, rdata=A("192.0.2.55"), ttl=60))
            self.transport.sendto(bytes(reply.pack()), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Upstream, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


def test_container_queries_127_0_0_11_inside_its_namespace(netns: str, run: Any) -> None:
    async def main() -> None:
        resolver = Resolver()
        server = DnsServer(resolver)
        upstream, port = await fake_upstream()
        resolver.servers = [f"127.0.0.1:{port}"]  # the host's loopback
        try:
            await server.add_sandbox("c1", f"/run/netns/{netns}")
            assert server.sandboxes() == ["c1"]

            code, out = await ask(netns, "web")
            assert (code, out.split()) == (0, ["0", "172.28.0.1"]), out
            code, out = await ask(netns, "WEB.", "A", "tcp")
            assert (code, out.split()) == (0, ["0", "172.28.0.1"]), out
            code, out = await ask(netns, "web", "AAAA")
            assert (code, out.split()) == (0, ["0"]), out
            code, out = await ask(netns, "1.0.28.172.in-addr.arpa", "PTR")
            assert (code, out.split()) == (0, ["0", "web.jasonyin2020."]), out
            code, out = await ask(netns, "example.com")
            assert (code, out.split()) == (0, ["0", "192.0.2.55"]), out

            if os.path.exists("/usr/bin/busybox"):
                code, out = await inside(netns, "/usr/bin/busybox", "nslookup", "web", "127.0.0.11")
                assert "Address: 172.28.0.1" in out, out

            await server.remove_sandbox("c1")
            assert server.sandboxes() == []
            code, out = await inside(netns, "ss", "-Hlnu", "src", "127.0.0.11")
            assert "127.0.0.11:53" not in out, out
            code, out = await inside(netns, "ss", "-Hlnt", "src", "127.0.0.11")
            assert "127.0.0.11:53" not in out, out
            code, out = await ask(netns, "web")
            assert code != 0  # nobody listens any more

            # The address is free again: a re-add works (e.g. after a daemon restart).
            await server.add_sandbox("c1", f"/run/netns/{netns}")
            code, out = await ask(netns, "web")
            assert (code, out.split()) == (0, ["0", "172.28.0.1"]), out
        finally:
            await server.close()
            upstream.close()
        code, out = await inside(netns, "ss", "-Hln", "src", "127.0.0.11")
        assert "127.0.0.11:53" not in out, out

    run(main())


def test_add_sandbox_twice_into_the_same_namespace_replaces(netns: str, run: Any) -> None:
    async def main() -> None:
        server = DnsServer(Resolver())
        try:
            await server.add_sandbox("c1", f"/run/netns/{netns}")
            await server.add_sandbox("c1", f"/run/netns/{netns}")
            code, out = await ask(netns, "web")
            assert (code, out.split()) == (0, ["0", "172.28.0.1"]), out
        finally:
            await server.close()

    run(main())


def test_socket_in_netns_binds_inside_not_on_the_host(netns: str) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    sock = socket_in_netns(
        f"/run/netns/{netns}", socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.11", 0)
    )
    try:
        port = sock.getsockname()[1]
        out = subprocess.run(
            ["nsenter", f"--net=/run/netns/{netns}", "ss", "-Hlnu"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"127.0.0.11:{port}" in out
        host = subprocess.run(["ss", "-Hlnu"], capture_output=True, text=True, check=True).stdout
        assert f"127.0.0.11:{port}" not in host
        # The calling thread never moved: its namespace is still the host's.
        assert os.readlink("/proc/thread-self/ns/net") == before
        target = os.stat(f"/run/netns/{netns}").st_ino
        assert os.stat("/proc/thread-self/ns/net").st_ino != target
    finally:
        sock.close()


def test_socket_in_netns_reports_errors(netns: str) -> None:
    path = f"/run/netns/{netns}"
    taken = socket_in_netns(path, socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.11", 0))
    try:
        with pytest.raises(OSError) as info:
            socket_in_netns(path, socket.AF_INET, socket.SOCK_DGRAM, taken.getsockname())
        assert info.value.errno == 98  # EADDRINUSE
        with pytest.raises(OSError) as info:
            socket_in_netns(path, socket.AF_INET, socket.SOCK_DGRAM, ("192.0.2.1", 53))
        assert info.value.errno == 99  # EADDRNOTAVAIL (no such address in that namespace)
        free = socket_in_netns(
            path, socket.AF_INET, socket.SOCK_DGRAM, ("192.0.2.1", 53), freebind=True
        )
        free.close()
        with pytest.raises(FileNotFoundError):
            socket_in_netns("/nonexistent/ns", socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 0))
        with pytest.raises(OSError):  # not a namespace file: setns fails with EINVAL
            socket_in_netns("/proc/self/stat", socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 0))
    finally:
        taken.close()


def test_sockets_in_netns_from_many_threads_at_once(netns: str) -> None:
    """Calls from several threads at once: every call gets working sockets."""
    path = f"/run/netns/{netns}"
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            udp, tcp = sockets_in_netns(
                path,
                [
                    SocketSpec(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.11", 0)),
                    SocketSpec(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.11", 0)),
                ],
            )
            with lock:
                results.append((udp.type, tcp.type))
            udp.close()
            tcp.close()

    assert in_threads(worker, 4) == []
    assert results == [(socket.SOCK_DGRAM, socket.SOCK_STREAM)] * 40


def test_tcp_listener_from_netns_accepts_inside(netns: str) -> None:
    path = f"/run/netns/{netns}"
    srv = socket_in_netns(
        path, socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.11", 0), reuseaddr=True
    )
    try:
        srv.listen()
        port = srv.getsockname()[1]
        client = subprocess.Popen(
            [
                "nsenter",
                f"--net={path}",
                sys.executable,
                "-c",
                "import socket,sys;"
                "s=socket.create_connection(('127.0.0.11', int(sys.argv[1])), 3);"
                "s.sendall(b'hi'); s.close()",
                str(port),
            ]
        )
        srv.settimeout(5)
        conn, _ = srv.accept()
        assert conn.recv(2) == b"hi"
        conn.close()
        assert client.wait(10) == 0
    finally:
        srv.close()
