"""Run a short-lived helper program (runc, conmon, unshare) without forking the daemon.

uvloop's ``subprocess_exec`` (libuv ``uv_spawn``) starts a child with a plain ``fork()``: the
kernel copies the daemon's page tables, and afterwards every page the daemon writes is copied
again (copy-on-write) until the child has exec'd. That cost grows with the daemon's memory:
measured here, 6.7 ms per spawn at start and 17 ms with 90 MB resident (300 containers), and
the copy-on-write faults slow the daemon itself for a while after each one. ``subprocess``
starts children with ``vfork()`` (no copy, flat ~1 ms at any size), so helpers run through
it, from a small thread pool of their own so the event loop never waits and a burst of
removals (the docker CLI sends them all at once) cannot starve the default executor that
other parts use.

Streaming children (``docker exec``) keep asyncio's pipes; this is for run-to-completion
helpers whose output is small.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

#: starts a program: ``(argv, subprocess.Popen keyword arguments) -> Popen``
Starter = Callable[[list[str], dict[str, Any]], "subprocess.Popen[bytes]"]

_pool: ThreadPoolExecutor | None = None
WORKERS = 16


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="spawn")
    return _pool


async def run(
    argv: Sequence[str],
    *,
    capture: bool = True,
    stderr: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    new_session: bool = False,
    starter: Starter | None = None,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` to completion (stdin from /dev/null); return (status, stdout, stderr).

    With ``capture`` False, stdout goes to /dev/null and stderr to ``stderr`` (a file) or
    /dev/null; both returned outputs are then empty. Raises ``OSError`` when the program
    cannot be started, as ``asyncio.create_subprocess_exec`` does. ``starter``, when given,
    starts the program instead of ``subprocess.Popen`` (e.g. in another mount namespace).
    """
    args = list(argv)

    kw: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE if capture else subprocess.DEVNULL,
        "stderr": subprocess.PIPE if capture else (stderr or subprocess.DEVNULL),
        "env": dict(env) if env is not None else None,
        "pass_fds": tuple(pass_fds),
        "start_new_session": new_session,
    }

    def go() -> tuple[int, bytes, bytes]:
        with (starter or _popen)(args, kw) as p:
            out, err = p.communicate()
        return p.returncode, out or b"", err or b""

    return await asyncio.get_running_loop().run_in_executor(_executor(), go)


def _popen(argv: list[str], kw: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, **kw)
