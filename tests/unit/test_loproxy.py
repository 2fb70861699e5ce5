"""The [::1] userland proxy (issue 18): real sockets on loopback, no root."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from tests.unit.test_container_controller import aio, started

from tether.engine.loproxy import LoopbackProxies
from tether.engine.ports import PortBinding
from tether.errors import BadRequest, Conflict


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        data = await r.read()  # until the client's half-close
        w.write(b"echo:" + data)
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(port: int, payload: bytes) -> bytes:
    r, w = await asyncio.open_connection("::1", port)
    w.write(payload)
    w.write_eof()  # the half-close must reach the container side
    out = await r.read()
    w.close()
    return out


@aio
async def test_proxy_copies_both_ways_and_closes_with_its_container() -> None:
    server, cport = await _echo_server()
    targets = {"c1": "127.0.0.1"}
    proxies = LoopbackProxies(targets.get)
    proxies.bind("c1", [PortBinding("tcp", cport, "::1", 0), PortBinding("udp", 53, "::1", 0)])
    (port,) = proxies.ports("c1")  # TCP only
    assert await _ask(port, b"hi" * 50000) == b"echo:" + b"hi" * 50000
    # a container that is not reachable now: the client is closed, nothing hangs
    del targets["c1"]
    r, w = await asyncio.open_connection("::1", port)
    assert await r.read() == b""
    w.close()
    proxies.close("c1")
    with pytest.raises(OSError):
        await _ask(port, b"x")
    server.close()
    await server.wait_closed()


@aio
async def test_a_taken_port_fails_with_dockers_text_and_nothing_is_left() -> None:
    holder = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    holder.bind(("::1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    proxies = LoopbackProxies(lambda cid: "127.0.0.1")
    free = [PortBinding("tcp", 80, "::1", 0)]
    want = f"listen tcp6 \\[::1\\]:{taken}: bind: address already in use$"
    with pytest.raises(Conflict, match="^Error starting userland proxy: " + want):
        proxies.bind("c1", [*free, PortBinding("tcp", 80, "::1", taken)])
    assert proxies.ports("c1") == []  # the first listener was closed again
    # on ``::`` the proxy is best effort: a port held on ::1 is left to its holder
    proxies.bind("c2", [PortBinding("tcp", 80, "::", taken)])
    assert proxies.ports("c2") == []
    holder.close()


@aio
async def test_engine_binds_at_start_and_closes_at_stop(tmp_path: Path) -> None:
    w = await started(tmp_path)
    hc = {"PortBindings": {"80/udp": [{"HostIp": "::1", "HostPort": "9091"}]}}
    with pytest.raises(BadRequest, match="carries TCP only"):
        await w.ctl.create({"Image": "alpine", "HostConfig": hc}, "udp6")
    assert w.ctl.find("udp6") is None
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "::1", "HostPort": ""}]}}
    c = await w.ctl.create({"Image": "alpine", "HostConfig": hc}, "web")
    c = await w.ctl.start_container(c.id)
    proxies = w.ctl.ports.proxies
    assert [p["host_ip"] for p in c.ports] == ["::1"] and len(proxies.ports(c.id)) == 1
    assert not [r for r in w.fw.ports if r.host_ip == "::1"]  # no DNAT for ::1
    await w.ctl.stop(c.id, 0)
    assert proxies.ports(c.id) == []
    await w.close()
