"""Doing things inside a lab host's network namespace without a helper process.

A socket belongs to the network namespace its creating thread was in, so the bench switches
its (single) thread into the namespace, opens the socket and switches straight back. Child
processes (the engines' CLIs) are put into the namespace by ``setns`` between fork and exec,
which costs the same for every engine and adds no extra exec (unlike ``nsenter``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from collections.abc import Callable

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def preexec(netns_path: str) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the child into ``netns_path`` before it execs."""

    def enter() -> None:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd)
        finally:
            os.close(fd)

    return enter


def socket_in(netns_path: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new IPv4 socket that lives in ``netns_path``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target)
        try:
            return socket.socket(socket.AF_INET, kind)
        finally:
            setns(own)
    finally:
        os.close(target)
        os.close(own)


def tcp_ok(netns_path: str, ip: str, port: int, timeout: float = 0.2) -> bool:
    """One TCP connect attempt from inside the namespace."""
    s = socket_in(netns_path)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return True
    except OSError as exc:
        if isinstance(exc, TimeoutError) or exc.errno in (
            errno.ECONNREFUSED,
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.ETIMEDOUT,
        ):
            return False
        raise
    finally:
        s.close()


def wait_tcp(netns_path: str, ip: str, port: int, limit: float = 15.0) -> float | None:
    """Poll (every ~2 ms) until a connect works; the monotonic time it did, None after limit."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if tcp_ok(netns_path, ip, port, timeout=0.05):
            return time.monotonic()
        time.sleep(0.002)
    return None
