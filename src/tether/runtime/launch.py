"""Starting processes for the runtime: conmon (which runs ``runc create``) and ``runc exec``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path
from typing import IO, Any

from tether.errors import Internal
from tether.linux import nsthread, spawn
from tether.linux.nsthread import PrivateMounts
from tether.runtime.runcerrors import exec_error, runc_message

_CREATE_TIMEOUT = 60.0


def conmon_err(bundle: Path) -> str:
    """The end of conmon's stderr (``conmon.err`` in the bundle), or ""."""
    try:
        return (bundle / "conmon.err").read_text(errors="replace").strip()[-2000:]
    except OSError:
        return ""


async def run_conmon(args: list[str], bundle: Path, mounts: PrivateMounts | None) -> bytes:
    """Start conmon with ``args``; return its sync-pipe reply (empty when it sent none)."""
    loop = asyncio.get_running_loop()
    sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    start_parent, start_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "_OCI_SYNCPIPE": str(sync_child.fileno()),
            "_OCI_STARTPIPE": str(start_child.fileno()),
        }
        # conmon double-forks and its first process exits at once: wait for that one.
        # The start pipe is written first (a datagram, buffered) so conmon never waits.
        start_parent.send(b"0")
        with open(bundle / "conmon.err", "ab") as err_file:
            fds = (sync_child.fileno(), start_child.fileno())
            rc = await _spawn_conmon(args, mounts, err_file, fds, env)
        sync_child.close()
        start_child.close()
        if rc != 0:
            raise Internal(f"conmon failed (exit {rc}): {conmon_err(bundle)}")
        sync_parent.setblocking(False)
        try:
            raw = await asyncio.wait_for(loop.sock_recv(sync_parent, 65536), _CREATE_TIMEOUT)
        except TimeoutError:
            raise Internal("timed out waiting for runc create") from None
    finally:
        for s in (sync_parent, sync_child, start_parent, start_child):
            s.close()
    return raw


async def _spawn_conmon(
    args: list[str],
    mounts: PrivateMounts | None,
    err_file: IO[bytes],
    fds: tuple[int, int],
    env: dict[str, str],
) -> int:
    """Run conmon's first process to its exit (in a mount namespace of its own with
    ``mounts``); its exit status."""
    if mounts is None:
        rc, _, _ = await spawn.run(
            args, capture=False, stderr=err_file, pass_fds=fds, new_session=True,
            env=env,
        )  # fmt: skip
        return rc
    job = nsthread.default().submit_spawn_isolated(
        args,
        mounts,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err_file,
        pass_fds=fds,
        start_new_session=True,
        env=env,
    )
    try:
        return await asyncio.wrap_future(job)
    except OSError as exc:
        raise Internal(f"cannot start the container's monitor: {exc}") from exc


async def spawn_exec(
    cmd: list[str], *, tty: bool, stdin: bool
) -> tuple[asyncio.subprocess.Process, int | None]:
    """Start ``runc exec`` (``cmd``); returns the process and, with ``tty``, the pty master."""
    pipe = asyncio.subprocess.PIPE
    devnull = asyncio.subprocess.DEVNULL
    if tty:
        # runc in the foreground with -t copies between the container's pty and
        # its own stdio: give it a pty of ours, so that it sets it raw and forwards
        # SIGWINCH sizes (runc only takes --console-socket when detached).
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=slave, stdout=slave, stderr=pipe, start_new_session=True
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return proc, master
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=pipe if stdin else devnull,
        stdout=pipe,
        stderr=pipe,
        start_new_session=True,
    )
    return proc, None


async def exec_started(
    proc: asyncio.subprocess.Process, pidfile: Path, started: asyncio.Future[None]
) -> int:
    """Wait until runc wrote ``pidfile`` (``started``) or exited; the exec'd process's host pid
    (-1 when unreadable). Raises ``ContainerStartError`` with Docker's text when runc failed."""
    if pidfile.exists() and not started.done():
        started.set_result(None)
    exited = asyncio.ensure_future(proc.wait())
    waits: set[asyncio.Future[Any]] = {started, exited}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not started.done() and not pidfile.exists():
        _out, err = await proc.communicate()
        raise exec_error(runc_message(err.decode(errors="replace")))
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return -1
