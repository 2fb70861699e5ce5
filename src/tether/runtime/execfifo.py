"""``runc start``'s own work, done in the daemon: release a created container's process.

``runc create`` leaves the container's init blocked writing one byte to ``exec.fifo`` in
runc's state folder for the container; ``runc start`` (runc 1.0 and later, ``Exec`` in
libcontainer) only opens that FIFO, reads until end of file (the byte, then the close when
the init execs the user's program) and removes it; runc's status is ``created`` while the
FIFO exists and ``running`` after. Starting the ``runc`` binary for that costs ~5 ms of
every start (its Go runtime, loading the state); the FIFO is ~0.3 ms.

Any case that is not that plain one (no FIFO, the init dead, nothing written) is left to
``runc start`` itself, so the errors and their texts stay runc's.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from pathlib import Path

FIFO = "exec.fifo"


def _alive(pid: int) -> bool:
    """``pid`` exists and is no zombie (runc's own check of the init)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def release(state_dir: Path, pid: int | None, timeout: float = 10.0) -> bool:
    """Start the created container whose runc state is ``state_dir`` (init ``pid``); False
    when it was not released here (the caller runs ``runc start``). Blocking: call it from
    a worker thread."""
    path = state_dir / FIFO
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    data = b""
    try:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            if poll.poll(100):
                try:
                    chunk = os.read(fd, 64)
                except BlockingIOError:
                    continue
                if chunk:
                    data += chunk
                    continue
                if data:  # end of file after the byte: the init went on to exec
                    break
                return False  # a writer came and went without the byte: runc's case
            if not data and (pid is None or not _alive(pid)):
                return False
            if time.monotonic() > deadline:
                if data:
                    break
                return False
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True
