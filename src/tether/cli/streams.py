"""Moving bytes between the terminal and a hijacked attach/exec stream."""

from __future__ import annotations

import os
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from tether.client import HijackedStream

STDIN, STDOUT, STDERR = 0, 1, 2


def demux_frames(read: BinaryIO | HijackedStream) -> Iterator[tuple[int, bytes]]:
    """Split docker's multiplexed stream: 8-byte header (stream, 0, 0, 0, size BE32)."""

    def exact(n: int) -> bytes:
        if isinstance(read, HijackedStream):
            return read.read_exact(n)
        buf = b""
        while len(buf) < n:
            chunk = read.read(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return buf

    while True:
        header = exact(8)
        if len(header) < 8:
            return
        stream, size = header[0], struct.unpack(">I", header[4:8])[0]
        payload = exact(size)
        yield stream, payload
        if len(payload) < size:
            return


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame (what the daemon sends when there is no TTY)."""
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(data)) + data


def _out(stream: int) -> BinaryIO:
    return sys.stderr.buffer if stream == STDERR else sys.stdout.buffer


def pump_output(conn: HijackedStream, tty: bool) -> None:
    """Copy the container's output to our stdout/stderr until the stream ends."""
    if tty:
        while True:
            data = conn.read()
            if not data:
                return
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    for stream, payload in demux_frames(conn):
        out = _out(stream)
        out.write(payload)
        out.flush()


def start_stdin_pump(conn: HijackedStream) -> threading.Thread:
    """Forward our stdin to the stream in a daemon thread; half-close at EOF."""

    def run() -> None:
        fd = sys.stdin.fileno()
        try:
            while True:
                data = os.read(fd, 32768)
                if not data:
                    break
                conn.write(data)
        except OSError:
            pass
        finally:
            conn.close_write()

    t = threading.Thread(target=run, name="stdin", daemon=True)
    t.start()
    return t


@contextmanager
def raw_terminal(enable: bool) -> Iterator[None]:
    """Put the terminal in raw mode while attached with ``-t`` (only if stdin is a tty)."""
    if not enable or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size() -> tuple[int, int] | None:
    """(rows, cols) of our terminal, if stdout is one."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return None
    return size.lines, size.columns


def attach_session(conn: HijackedStream, tty: bool, stdin: bool) -> None:
    """Run one attach: stdin forwarder (if asked) and output copy until the end."""
    with raw_terminal(tty and stdin):
        if stdin:
            start_stdin_pump(conn)
        try:
            pump_output(conn, tty)
        finally:
            conn.close()
