"""A tiny inotify binding (ctypes) driven by the asyncio loop's reader callbacks.

One ``Inotify`` per event loop is enough: each watch has its own callback. No thread,
no polling: the kernel wakes the loop when a watched directory changes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Callable
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_IGNORED = 0x00008000
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_EVENT = struct.Struct("iIII")

Callback = Callable[[str, int], None]
"""Called with (file name inside the watched directory, or "" for the path itself; mask)."""

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


class Inotify:
    """inotify instance whose events are dispatched from the running event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._fd: int = fd
        self._callbacks: dict[int, Callback] = {}
        self._overflow: list[Callable[[], None]] = []
        self._loop.add_reader(fd, self._on_readable)

    def add_watch(self, path: Path | str, mask: int, callback: Callback) -> int:
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(str(path)), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
        self._callbacks[wd] = callback
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        if self._callbacks.pop(wd, None) is not None and self._fd >= 0:
            _libc.inotify_rm_watch(self._fd, wd)

    def on_overflow(self, callback: Callable[[], None]) -> None:
        """Called when the kernel queue overflowed (events were lost: rescan)."""
        self._overflow.append(callback)

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._callbacks.clear()

    def _on_readable(self) -> None:
        try:
            buf = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(buf):
            wd, mask, _cookie, length = _EVENT.unpack_from(buf, offset)
            offset += _EVENT.size
            raw = buf[offset : offset + length]
            offset += length
            name = os.fsdecode(raw.rstrip(b"\0"))
            if mask & IN_Q_OVERFLOW:
                for cb in list(self._overflow):
                    cb()
                continue
            callback = self._callbacks.get(wd)
            if mask & IN_IGNORED:
                self._callbacks.pop(wd, None)
            if callback is not None:
                callback(name, mask)
