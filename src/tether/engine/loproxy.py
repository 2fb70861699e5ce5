"""The one userland path: published TCP ports on the IPv6 loopback address ``[::1]``.

Everything else tether publishes is DNAT in the kernel. ``::1`` cannot be: IPv6 has no
``route_localnet``, so the kernel drops a reply to ::1 that arrives on a bridge (see
``fwrender._published6``, which leaves ::1 out of DNAT). Docker serves it with docker-proxy;
tether serves it here, in the daemon's event loop:

- a binding on ``[::1]:P`` (``-p [::1]:P:80``) listens on [::1]:P; a failed bind fails the
  start with Docker's text (``Error starting userland proxy: listen tcp6 [::1]:P: bind:
  address already in use``), so nothing is half-made;
- a binding on ``[::]:P`` (``-p [::]:P:80``, or ``-p P:80`` on a dual-stack network) also
  listens on [::1]:P, as docker-proxy on ``::`` answers there; best effort: a port a host
  process already holds on ::1 is left to it (logged), as tether does not detect host
  listeners on the kernel path either;
- each accepted client gets a connection to the container's address (its IPv6 address on a
  dual-stack network, else its IPv4 one) and bytes are copied both ways, half-closes kept;
- the listeners are bound when the container's ports are taken (start) and closed, with
  every open connection's task cancelled, when they are given back (stop, die, rm, a failed
  start); at daemon start the running containers' listeners are bound again.

TCP only: ``udp``/``sctp`` on ``[::1]`` are refused at create (``HostPorts.requests``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable

from tether.engine.ports import ANY6, PortBinding
from tether.errors import BadRequest, Conflict

log = logging.getLogger("tether.ports")

LOOPBACK6 = "::1"
CONNECT_TIMEOUT_S = 10.0
BUF = 1 << 16

# container id -> the address its published ports lead to (None: not reachable now)
TargetOf = Callable[[str], str | None]


def proxied(b: PortBinding) -> bool:
    """Whether a binding gets a listener on [::1] (TCP on ::1 or on ::)."""
    return b.proto == "tcp" and b.host_ip in (LOOPBACK6, ANY6)


class _Listener:
    """One [::1]:port listener of one container, and the tasks of its open connections."""

    def __init__(self, sock: socket.socket, cid: str, cport: int, target: TargetOf) -> None:
        self.sock = sock
        self.cid = cid
        self.cport = cport
        self.target = target
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("[::1] proxy of %s: accept: %s", self.cid[:12], exc)
                return
            conn.setblocking(False)
            task = self.loop.create_task(self._serve(conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        addr = self.target(self.cid)
        try:
            if addr is None:
                return
            reader, writer = await asyncio.open_connection(sock=conn)
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_connection(addr, self.cport), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                writer.close()
                return
            try:
                await asyncio.gather(_copy(reader, up_w), _copy(up_r, writer))
            finally:
                for w in (writer, up_w):
                    w.close()
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for task in list(self.tasks):
            task.cancel()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Bytes from ``src`` to ``dst`` until EOF, then half-close ``dst``."""
    try:
        while data := await src.read(BUF):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        dst.close()


def _listen(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK6, port))
        s.listen(4096)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


class LoopbackProxies:
    """Every container's [::1] listeners, keyed by container id."""

    def __init__(self, target: TargetOf) -> None:
        self.target = target
        self._by_cid: dict[str, list[_Listener]] = {}

    def bind(self, cid: str, bindings: Iterable[PortBinding]) -> None:
        """Listen for ``cid``'s proxied bindings; all or none (``Conflict``/``BadRequest``
        with Docker's text when an explicit [::1] port cannot be bound)."""
        self.close(cid)
        made: list[_Listener] = []
        try:
            for b in bindings:
                if not proxied(b):
                    continue
                try:
                    sock = _listen(b.host_port)
                except OSError as exc:
                    if b.host_ip != LOOPBACK6:
                        log.warning("[::1]:%d not proxied for %s: %s", b.host_port, cid[:12], exc)
                        continue
                    raise _bind_error(b.host_port, exc) from None
                made.append(_Listener(sock, cid, b.container_port, self.target))
        except BaseException:
            for lis in made:
                lis.close()
            raise
        if made:
            self._by_cid[cid] = made

    def close(self, cid: str) -> None:
        for lis in self._by_cid.pop(cid, []):
            lis.close()

    def close_all(self) -> None:
        for cid in list(self._by_cid):
            self.close(cid)

    def ports(self, cid: str) -> list[int]:
        """The [::1] ports listened on for ``cid`` (for tests and the debug log)."""
        return [lis.sock.getsockname()[1] for lis in self._by_cid.get(cid, [])]


def _bind_error(port: int, exc: OSError) -> BadRequest | Conflict:
    why = {errno.EADDRINUSE: "address already in use", errno.EACCES: "permission denied"}.get(
        exc.errno or 0, exc.strerror or str(exc)
    )
    text = f"Error starting userland proxy: listen tcp6 [::1]:{port}: bind: {why}"
    return Conflict(text) if exc.errno == errno.EADDRINUSE else BadRequest(text)
