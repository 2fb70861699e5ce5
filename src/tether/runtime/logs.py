"""Reading conmon's ``k8s-file`` logs: ``<RFC3339Nano> <stdout|stderr> <F|P> <text>``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

from tether.runtime.images import parse_rfc3339
from tether.runtime.inotify import IN_CLOSE_WRITE, IN_DELETE_SELF, IN_MODIFY, Inotify

LogItem = tuple[str, bytes]
"""``("stdout" | "stderr", data)``; data ends with ``\\n`` unless it was a partial line."""


def docker_timestamp(conmon_ts: bytes) -> bytes:
    """``2026-11-27T04:32:35.090107559+00:00`` -> ``2026-11-27T04:32:35.090107559Z``."""
    ts = conmon_ts
    if ts.endswith(b"+00:00"):
        ts = ts[:-6] + b"Z"
    return ts


class _Record:
    __slots__ = ("data", "stream", "time", "ts")

    def __init__(self, ts: bytes, stream: str, data: bytes) -> None:
        self.ts = ts
        self.stream = stream
        self.data = data
        self.time = -1.0

    def when(self) -> float:
        if self.time < 0:
            self.time = parse_rfc3339(self.ts.decode("ascii", "replace"))
        return self.time


def parse_line(line: bytes) -> _Record | None:
    """One k8s-file line (without its trailing newline) -> record, or None if malformed."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    text = parts[3] if len(parts) == 4 else b""
    if stream not in (b"stdout", b"stderr"):
        return None
    full = tag.split(b":", 1)[0] == b"F"
    return _Record(ts, stream.decode(), text + b"\n" if full else text)


def _records(chunk: bytes) -> list[_Record]:
    out = []
    for line in chunk.split(b"\n"):
        if line:
            rec = parse_line(line)
            if rec is not None:
                out.append(rec)
    return out


async def read_logs(
    log_path: Path,
    *,
    follow: bool = False,
    tail: int | None = None,
    stdout: bool = True,
    stderr: bool = True,
    since: float = 0.0,
    until: float | None = None,
    timestamps: bool = False,
    stop: Awaitable[Any] | None = None,
    inotify: Inotify | None = None,
) -> AsyncIterator[LogItem]:
    """Yield ``(stream, data)`` records of a conmon log file.

    ``tail``: only the last N records (None: all). ``since``/``until``: unix times.
    ``timestamps``: prefix each record with Docker's RFC 3339 time and a space (what
    ``docker logs -t`` shows). ``follow``: after the existing content, keep yielding new
    records until ``stop`` completes (e.g. a future resolved when the container exits);
    the file is watched with inotify (no polling).
    """
    sel = _Select(stdout, stderr, since, until, timestamps)
    loop = asyncio.get_running_loop()
    data, offset = await loop.run_in_executor(None, _read_from, log_path, 0)
    complete, rest = _complete(data)
    records = [r for r in complete if sel.keep(r)]
    if tail is not None and tail >= 0:
        records = records[len(records) - tail :] if tail else []
    for rec in records:
        yield sel.item(rec)
    if not follow:
        return

    own_inotify = inotify is None
    watcher = inotify or Inotify(loop)
    wake = asyncio.Event()
    wd = _watch(watcher, log_path, wake)
    inode = _inode(log_path)
    stop_task = asyncio.ensure_future(stop) if stop is not None else None
    try:
        while True:
            wake.clear()
            if (now_inode := _inode(log_path)) != inode:
                # conmon's --log-size-max replaced the file: read the new one from its start
                inode, offset, rest = now_inode, 0, b""
                watcher.rm_watch(wd)
                wd = _watch(watcher, log_path, wake)
            elif log_size(log_path) < offset:
                offset, rest = 0, b""  # cut in place: the same file from its start
            chunk, offset = await loop.run_in_executor(None, _read_from, log_path, offset)
            if chunk:
                complete, rest = _complete(rest + chunk)
                for rec in complete:
                    if sel.keep(rec):
                        yield sel.item(rec)
                    if until is not None and rec.when() > until:
                        return
                continue
            if _inode(log_path) != inode or log_size(log_path) < offset:
                continue  # replaced (or cut) between the check above and the read: read it
            if stop_task is not None and stop_task.done():
                return
            await _wait_more(wake, stop_task)
    finally:
        _unwatch(watcher, wd, own_inotify, stop_task)


class _Select:
    """Which records a reader wants (streams, time window) and how it yields them."""

    def __init__(
        self, stdout: bool, stderr: bool, since: float, until: float | None, timestamps: bool
    ) -> None:
        self.want = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        self.since = since
        self.until = until
        self.timestamps = timestamps

    def keep(self, rec: _Record) -> bool:
        if rec.stream not in self.want:
            return False
        if self.since and rec.when() < self.since:
            return False
        return not (self.until is not None and rec.when() > self.until)

    def item(self, rec: _Record) -> LogItem:
        if self.timestamps:
            return rec.stream, docker_timestamp(rec.ts) + b" " + rec.data
        return rec.stream, rec.data


def _read_from(log_path: Path, offset: int) -> tuple[bytes, int]:
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


def _watch(watcher: Inotify, log_path: Path, wake: asyncio.Event) -> int:
    """Set ``wake`` whenever the log changes; the watch descriptor (-1 if none)."""
    wd = -1
    with contextlib.suppress(OSError):
        wd = watcher.add_watch(log_path, IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF,
                               lambda _n, _m: wake.set())  # fmt: skip
    return wd


def _complete(buf: bytes) -> tuple[list[_Record], bytes]:
    """The records of ``buf``'s complete lines, and what follows its last newline."""
    cut = buf.rfind(b"\n") + 1
    return _records(buf[:cut]), buf[cut:]


def _unwatch(
    watcher: Inotify, wd: int, own_inotify: bool, stop_task: asyncio.Future[Any] | None
) -> None:
    if stop_task is not None and not stop_task.done():
        stop_task.cancel()
    if wd >= 0:
        watcher.rm_watch(wd)
    if own_inotify:
        watcher.close()


async def _wait_more(wake: asyncio.Event, stop_task: asyncio.Future[Any] | None) -> None:
    """Wait for the log to change or ``stop_task`` to complete."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(wake.wait())]
    if stop_task is not None:
        waits.append(stop_task)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waits[0].cancel()
    if stop_task is not None and stop_task.done():
        # conmon flushes the last lines before the exit file: one final read.
        await asyncio.sleep(0)


def _inode(log_path: Path) -> int:
    try:
        return os.stat(log_path).st_ino
    except FileNotFoundError:
        return 0


def log_size(log_path: Path) -> int:
    try:
        return os.stat(log_path).st_size
    except FileNotFoundError:
        return 0
