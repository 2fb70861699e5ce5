"""Starting processes for the runtime: conmon (which runs ``runc create``) and ``runc exec``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
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


_SHIM = str(Path(__file__).with_name("execshim.py"))
CONSOLE_SOCKET = "console.sock"  # in the exec's scratch dir


async def spawn_exec(
    cmd: list[str], *, tty: bool, stdin: bool, workdir: Path, pidfile: Path
) -> tuple[asyncio.subprocess.Process, socket.socket | None]:
    """Start ``runc exec`` (``cmd``); returns the process and, with ``tty``, the console
    socket listening in ``workdir`` (``cmd`` then has ``--detach --console-socket X``, X
    replaced here: runc sends the container's pty master there, see ``receive_console``)."""
    pipe = asyncio.subprocess.PIPE
    devnull = asyncio.subprocess.DEVNULL
    if tty:
        listener = _console_listener(workdir)
        # runc dials from the bundle (its cwd): name the socket through a dir fd it inherits
        dirfd = os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        at = cmd.index("--console-socket") + 1
        cmd = [*cmd[:at], f"/proc/self/fd/{dirfd}/{CONSOLE_SOCKET}", *cmd[at + 1 :]]
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", _SHIM, str(pidfile), *cmd,
                stdin=devnull, stdout=devnull, stderr=pipe, pass_fds=(dirfd,),
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            listener.close()
            raise
        finally:
            os.close(dirfd)
        return proc, listener
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=pipe if stdin else devnull,
        stdout=pipe,
        stderr=pipe,
        start_new_session=True,
    )
    return proc, None


def _console_listener(workdir: Path) -> socket.socket:
    """A unix socket listening at ``workdir/console.sock`` (bound through ``/proc/self/fd``
    so long state paths work)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    dirfd = os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{dirfd}/{CONSOLE_SOCKET}")
        sock.listen(1)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dirfd)
    return sock


async def receive_console(listener: socket.socket) -> int:
    """The pty master runc sent to ``listener`` (call once runc started the process)."""
    loop = asyncio.get_running_loop()
    try:
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), _CREATE_TIMEOUT)
    except TimeoutError:
        raise Internal("runc sent no console for the exec") from None
    with conn:
        conn.setblocking(True)
        conn.settimeout(_CREATE_TIMEOUT)
        try:
            _msg, fds, _flags, _addr = await asyncio.to_thread(socket.recv_fds, conn, 4096, 1)
        except OSError as exc:
            raise Internal(f"cannot receive the exec's console: {exc}") from exc
    if not fds:
        raise Internal("runc sent no console for the exec")
    for extra in fds[1:]:
        os.close(extra)
    os.set_inheritable(fds[0], False)
    return fds[0]


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
