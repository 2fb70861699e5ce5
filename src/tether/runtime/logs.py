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
    want = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
    loop = asyncio.get_running_loop()

    def keep(rec: _Record) -> bool:
        if rec.stream not in want:
            return False
        if since and rec.when() < since:
            return False
        return not (until is not None and rec.when() > until)

    def item(rec: _Record) -> LogItem:
        if timestamps:
            return rec.stream, docker_timestamp(rec.ts) + b" " + rec.data
        return rec.stream, rec.data

    def read_from(offset: int) -> tuple[bytes, int]:
        try:
            with open(log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    data, offset = await loop.run_in_executor(None, read_from, 0)
    cut = data.rfind(b"\n") + 1
    rest = data[cut:]
    records = [r for r in _records(data[:cut]) if keep(r)]
    if tail is not None and tail >= 0:
        records = records[len(records) - tail :] if tail else []
    for rec in records:
        yield item(rec)
    if not follow:
        return

    own_inotify = inotify is None
    watcher = inotify or Inotify(loop)
    wake = asyncio.Event()
    wd = -1
    with contextlib.suppress(OSError):
        wd = watcher.add_watch(log_path, IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF,
                               lambda _n, _m: wake.set())  # fmt: skip
    stop_task = asyncio.ensure_future(stop) if stop is not None else None
    try:
        while True:
            wake.clear()
            chunk, offset = await loop.run_in_executor(None, read_from, offset)
            if chunk:
                buf = rest + chunk
                cut = buf.rfind(b"\n") + 1
                rest = buf[cut:]
                for rec in _records(buf[:cut]):
                    if keep(rec):
                        yield item(rec)
                    if until is not None and rec.when() > until:
                        return
                continue
            if stop_task is not None and stop_task.done():
                return
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
    finally:
        if stop_task is not None and not stop_task.done():
            stop_task.cancel()
        if wd >= 0:
            watcher.rm_watch(wd)
        if own_inotify:
            watcher.close()


def log_size(log_path: Path) -> int:
    try:
        return os.stat(log_path).st_size
    except FileNotFoundError:
        return 0
