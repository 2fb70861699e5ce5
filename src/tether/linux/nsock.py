"""Sockets created inside another network namespace, without moving a daemon thread.

A socket belongs to the network namespace it was created in, for its whole life, whichever
thread later uses it. So the daemon can serve a container's 127.0.0.11:53 from its own asyncio
loop: it only needs the socket to be *created* (and bound) inside the container's namespace.

``setns()`` changes the namespace of the calling thread only, and moving one of the daemon's
threads (even briefly) would let any other code that runs on it in between act in the wrong
namespace. Instead we fork a tiny child: the child joins the namespace with ``setns``, creates
and binds the sockets, passes the descriptors back over a ``socketpair`` with SCM_RIGHTS and
leaves with ``os._exit``. The parent never changes namespace.

Fork safety: the child runs only a handful of system calls (setns, socket, setsockopt, bind,
sendmsg) through modules imported before the fork, touches no lock another thread might hold,
and never returns into the caller's code (``os._exit`` in a ``finally``). The work is done
once per container (a few milliseconds); call :func:`sockets_in_netns` from a worker thread
(``asyncio.to_thread``) so the event loop never waits on it.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno as errno_mod
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
# Linux value, missing from the socket module on some builds.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int

_ERR = struct.Struct("!i")  # errno sent back by the child when a step fails
_MAX_MSG = 1024


@dataclass(frozen=True, slots=True)
class SocketSpec:
    """One socket to open inside the namespace.

    ``bind`` is the address tuple for ``socket.bind`` (``("127.0.0.11", 53)``).
    ``freebind`` sets IP_FREEBIND, so the bind succeeds even before the address is up
    (e.g. while ``lo`` is still down); packets flow once it is.
    ``reuseaddr`` sets SO_REUSEADDR (useful for TCP listeners).
    """

    family: int
    type: int
    bind: tuple[object, ...]
    freebind: bool = False
    reuseaddr: bool = False


def socket_in_netns(
    ns_path: str,
    family: int,
    type: int,  # mirrors socket.socket()
    bind: tuple[object, ...],
    *,
    freebind: bool = False,
    reuseaddr: bool = False,
) -> socket.socket:
    """Create a socket inside the network namespace at ``ns_path`` and bind it to ``bind``.

    Returns a blocking socket owned by the caller; it lives in that namespace for good.
    Raises ``OSError`` (with the child's errno) when the namespace cannot be joined or the
    socket cannot be created or bound; ``FileNotFoundError`` when ``ns_path`` does not exist.
    """
    spec = SocketSpec(family, type, bind, freebind=freebind, reuseaddr=reuseaddr)
    return sockets_in_netns(ns_path, [spec])[0]


def sockets_in_netns(ns_path: str, specs: Sequence[SocketSpec]) -> list[socket.socket]:
    """Create several sockets inside one namespace with a single fork (see module docs)."""
    if not specs:
        return []
    if len(specs) > 64:
        raise ValueError("too many sockets for one call")
    ns_fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child only
                _child(ns_fd, child, specs)
            child.close()
            try:
                return _receive(parent, len(specs))
            finally:
                _reap(pid)
        finally:
            parent.close()
            if child.fileno() >= 0:
                child.close()
    finally:
        os.close(ns_fd)


def _child(
    ns_fd: int, chan: socket.socket, specs: Sequence[SocketSpec]
) -> None:  # pragma: no cover
    code = 0
    try:
        step_err = 0
        fds: list[int] = []
        if _setns(ns_fd, CLONE_NEWNET) != 0:
            step_err = ctypes.get_errno() or errno_mod.EPERM
        else:
            for spec in specs:
                try:
                    s = socket.socket(spec.family, spec.type)
                    if spec.reuseaddr:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if spec.freebind:
                        level = socket.IPPROTO_IPV6 if spec.family == socket.AF_INET6 else 0
                        s.setsockopt(level, IP_FREEBIND, 1)
                    s.bind(spec.bind)
                except OSError as exc:
                    step_err = exc.errno or errno_mod.EIO
                    break
                fds.append(s.detach())
        if step_err:
            chan.send(_ERR.pack(step_err))
        else:
            chan.sendmsg(
                [_ERR.pack(0)],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())],
            )
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _receive(chan: socket.socket, count: int) -> list[socket.socket]:
    chan.settimeout(5.0)
    fds: list[int] = []
    try:
        msg, ancdata, _flags, _addr = chan.recvmsg(
            _MAX_MSG, socket.CMSG_SPACE(count * 4), socket.MSG_CMSG_CLOEXEC
        )
    except TimeoutError:
        raise OSError(errno_mod.ETIMEDOUT, "namespace socket helper did not answer") from None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - (len(data) % arr.itemsize)])
            fds.extend(arr)
    if len(msg) != _ERR.size:
        for fd in fds:
            os.close(fd)
        raise OSError(errno_mod.EIO, "namespace socket helper failed")
    (err,) = _ERR.unpack(msg)
    if err:
        for fd in fds:
            os.close(fd)
        raise OSError(err, os.strerror(err))
    if len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise OSError(errno_mod.EIO, "namespace socket helper returned no descriptors")
    return [socket.socket(fileno=fd) for fd in fds]


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
            continue
