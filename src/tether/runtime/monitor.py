"""Containers run by runc under conmon, so they outlive the daemon.

Layout under ``state_dir``::

    runc/          runc's private ``--root`` (container state)
    exits/<cid>    exit code written by conmon when PID 1 exits (watched with inotify)
    socks/<cid>/   conmon's link to the bundle, where its attach socket is (name cut short
                   when the path would not fit a socket address)
    meta/<cid>.json  bundle, log path, tty/stdin flags (for attach/resize after a restart)
    exec/<id>/     per-exec scratch (pid file, console socket)

conmon is started in its own session with stdin from /dev/null; it double-forks, so
neither it nor the container is a child of the daemon. The daemon runs ``runc start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal as _signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tether.errors import BadRequest, Conflict, Internal, NotFound
from tether.linux import nsthread, spawn
from tether.linux.nsthread import PrivateMounts
from tether.runtime import execfifo
from tether.runtime.attach import Attachment
from tether.runtime.containerfs import ContainerFiles
from tether.runtime.execproc import ExecProcess
from tether.runtime.inotify import IN_CLOSE_WRITE, IN_MOVED_TO, Inotify
from tether.runtime.launch import (
    CONSOLE_SOCKET,
    conmon_err,
    exec_started,
    receive_console,
    run_conmon,
    spawn_exec,
)
from tether.runtime.logs import LogItem
from tether.runtime.logs import read_logs as _read_logs
from tether.runtime.procs import ContainerProcs
from tether.runtime.runcerrors import (
    ContainerStartError,
    create_error,
    exec_error,
    runc_message,
)
from tether.runtime.users import ExecUser, resolve_in_root

__all__ = ["ContainerStartError", "Runtime", "create_error", "exec_error", "runc_message"]

# conmon writes CID.XXXXXX then renames it to CID (g_file_set_contents).
_TMP_SUFFIX = re.compile(r"\.[A-Za-z0-9]{6}$")


def _signal_name(sig: int | str) -> str:
    if isinstance(sig, int):
        return str(sig)
    name = sig.upper()
    if name.isdigit():
        return name
    return name[3:] if name.startswith("SIG") else name


def _remove_path(path: Path) -> None:
    """Remove a file, a symlink (conmon links SOCKS/CID to the bundle) or a tree."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _in_base_mounts(argv: list[str], popen: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start a short runc command in the runtime's base mount namespace (see
    ``NetnsThread.submit_popen_in_base``: runc reads the mount table at every call, and the
    daemon's grows with every container on the machine). Runs on a spawn thread."""
    return nsthread.default().submit_popen_in_base(argv, **popen).result()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Runtime(ContainerProcs, ContainerFiles):
    """runc + conmon, driven from asyncio. One per daemon."""

    def __init__(
        self,
        state_dir: Path,
        runc: str = "/usr/sbin/runc",
        conmon: str = "/usr/bin/conmon",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.runc = runc
        self.conmon = conmon
        self.runc_root = self.state_dir / "runc"
        self.exits_dir = self.state_dir / "exits"
        self.socks_dir = self.state_dir / "socks"
        self.meta_dir = self.state_dir / "meta"
        self.exec_dir = self.state_dir / "exec"
        for d in (self.runc_root, self.exits_dir, self.socks_dir, self.meta_dir, self.exec_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._inotify: Inotify | None = None
        self._waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._queues: list[asyncio.Queue[tuple[str, int]]] = []
        self._delivered: dict[str, tuple[int, int]] = {}  # cid -> (inode, mtime) reported
        self._deleted: set[str] = set()

    # -- lifecycle of the watcher --------------------------------------------------

    def _watcher(self) -> Inotify:
        if self._inotify is None:
            self._inotify = Inotify()
            self._inotify.add_watch(self.exits_dir, IN_CLOSE_WRITE | IN_MOVED_TO, self._on_exit)
            self._inotify.on_overflow(self._rescan)
        return self._inotify

    def close(self) -> None:
        """Stop watching (containers keep running)."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        for futs in self._waiters.values():
            for f in futs:
                f.cancel()
        self._waiters.clear()

    def _on_exit(self, name: str, _mask: int) -> None:
        if name and not name.startswith(".") and not _TMP_SUFFIX.search(name):
            self._deliver(name)

    def _rescan(self) -> None:
        for path in self.exits_dir.iterdir():
            self._on_exit(path.name, 0)

    def _deliver(self, cid: str) -> None:
        path = self.exits_dir / cid
        try:
            st = path.stat()
            code = int(path.read_text().strip())
        except (OSError, ValueError):
            return  # not complete yet: IN_CLOSE_WRITE follows
        key = (st.st_ino, st.st_mtime_ns)
        if self._delivered.get(cid) == key or cid in self._deleted:
            return
        self._delivered[cid] = key
        for fut in self._waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(code)
        for q in self._queues:
            q.put_nowait((cid, code))

    async def watch_exits(self) -> AsyncIterator[tuple[str, int]]:
        """Yield ``(container_id, exit_code)`` as each container's PID 1 exits.

        Every iterator gets every exit from the moment it starts; use one in the engine.
        """
        self._watcher()
        q: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._queues.remove(q)

    async def wait_exit(self, cid: str, timeout: float | None = None) -> int | None:
        """The exit code once PID 1 exited; None on timeout."""
        self._watcher()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(cid, []).append(fut)
        code = self.exit_code(cid)
        if code is not None:
            fut.cancel()
            self._drop_waiter(cid, fut)
            return code
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return None
        finally:
            self._drop_waiter(cid, fut)

    def _drop_waiter(self, cid: str, fut: asyncio.Future[int]) -> None:
        """Forget one waiter; no empty list is left behind (one per container ever seen)."""
        futs = self._waiters.get(cid)
        if futs is None:
            return
        with contextlib.suppress(ValueError):
            futs.remove(fut)
        if not futs:
            del self._waiters[cid]

    def exit_code(self, cid: str) -> int | None:
        """The exit code conmon recorded, or None while running / never started."""
        try:
            return int((self.exits_dir / cid).read_text().strip())
        except (OSError, ValueError):
            return None

    def scan(self, known: Iterable[str]) -> dict[str, int | None]:
        """After a restart: which of ``known`` containers are no longer running.

        Maps id -> exit code (None when the container is gone without an exit file,
        e.g. the machine rebooted). Running containers are left out.
        """
        out: dict[str, int | None] = {}
        for cid in known:
            code = self.exit_code(cid)
            if code is not None:
                out[cid] = code
                continue
            pid = self.conmon_pid(cid)
            if pid is None or not _pid_alive(pid):
                out[cid] = None
        return out

    # -- runc helpers --------------------------------------------------------------

    async def _runc(self, *args: str) -> tuple[int, str, str]:
        # vfork from a thread, not uvloop's fork (see tether.linux.spawn)
        rc, out, err = await spawn.run(
            [self.runc, "--root", str(self.runc_root), *args],
            new_session=True,
            starter=_in_base_mounts,
        )
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def _meta(self, cid: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads((self.meta_dir / f"{cid}.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return value

    def conmon_pid(self, cid: str) -> int | None:
        bundle = self._meta(cid).get("bundle")
        if not bundle:
            return None
        try:
            return int((Path(bundle) / "conmon.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def container_pid(self, cid: str) -> int | None:
        bundle = self._meta(cid).get("bundle")
        if not bundle:
            return None
        try:
            return int((Path(bundle) / "pidfile").read_text().strip())
        except (OSError, ValueError):
            return None

    # -- container lifecycle --------------------------------------------------------

    async def create(
        self,
        cid: str,
        bundle: Path,
        log_path: Path,
        *,
        stdin: bool = False,
        tty: bool = False,
        log_size_max: int | None = None,
        name: str | None = None,
        stdin_once: bool = True,
        mounts: PrivateMounts | None = None,
    ) -> int:
        """``runc create`` under conmon; returns the container's PID 1 (host pid).

        With ``mounts``, conmon (and so runc, and the container) start in a mount namespace
        of their own prepared as it says (the container's root filesystem mounted there).

        Raises ``ContainerStartError`` with Docker's text when runc fails (e.g.
        ``failed to create shim task: OCI runtime create failed: runc create failed:
        unable to start container process: exec: "x": executable file not found in
        $PATH: unknown``).
        """
        self._watcher()
        bundle = Path(bundle)
        self._prepare_create(cid, bundle, log_path, stdin=stdin, tty=tty)
        stdin_mode = "once" if stdin and stdin_once and not tty else "open" if stdin else ""
        args = self._conmon_args(cid, bundle, log_path, name, stdin_mode, tty, log_size_max)
        raw = await run_conmon(args, bundle, mounts)
        if not raw:
            raise Internal(f"conmon exited without a pid: {conmon_err(bundle)}")
        try:
            reply = json.loads(raw)
            pid = int(reply["data"])
        except (ValueError, KeyError, TypeError):
            raise Internal(f"unexpected reply from conmon: {raw!r}") from None
        if pid < 0:
            message = runc_message(str(reply.get("message", ""))) or "unknown error"
            await self._forget(cid)
            raise create_error(message)
        return pid

    def _prepare_create(
        self, cid: str, bundle: Path, log_path: Path, *, stdin: bool, tty: bool
    ) -> None:
        """Clear what an earlier run of ``cid`` left and record its metadata."""
        self._deleted.discard(cid)
        self._delivered.pop(cid, None)
        (self.exits_dir / cid).unlink(missing_ok=True)
        self._remove_sock_link(cid)
        for leftover in ("pidfile", "conmon.pid", "ctl", "winsz", "attach"):
            with contextlib.suppress(OSError):
                (bundle / leftover).unlink()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"bundle": str(bundle), "log_path": str(log_path), "tty": tty, "stdin": stdin}
        tmp = self.meta_dir / f".{cid}.json"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.meta_dir / f"{cid}.json")

    def _conmon_args(
        self,
        cid: str,
        bundle: Path,
        log_path: Path,
        name: str | None,
        stdin: str,
        tty: bool,
        log_size_max: int | None,
    ) -> list[str]:
        # stdin "once": closed at an attach's EOF (StdinOnce, no TTY); "open": never; "": none
        args = [
            self.conmon, "--api-version", "1", "-c", cid, "-u", cid, "-n", name or cid,
            "-r", self.runc, "--runtime-arg", "--root", "--runtime-arg", str(self.runc_root),
            "-b", str(bundle), "-p", str(bundle / "pidfile"), "-P", str(bundle / "conmon.pid"),
            "-l", f"k8s-file:{log_path}", "--exit-dir", str(self.exits_dir),
            "--socket-dir-path", str(self.socks_dir), "--log-level", "error",
        ]  # fmt: skip
        if stdin:
            args += ["-i"] if stdin == "once" else ["-i", "--leave-stdin-open"]
        if tty:
            args.append("-t")
        if log_size_max:
            args += ["--log-size-max", str(log_size_max)]
        return args

    async def start(self, cid: str) -> None:
        """``runc start``: run the user process of a created container (its FIFO released
        here, :mod:`.execfifo`; ``runc start`` itself for anything else)."""
        pid = self.container_pid(cid)
        if await asyncio.to_thread(execfifo.release, self.runc_root / cid, pid):
            return
        rc, _out, err = await self._runc("start", cid)
        if rc != 0:
            self._raise(cid, err)

    def _raise(self, cid: str, stderr: str) -> None:
        msg = runc_message(stderr) or f"runc failed for {cid}"
        if "does not exist" in msg or ("not found" in msg and "container" in msg):
            raise NotFound(f"No such container: {cid}")
        if "not running" in msg or "cannot start" in msg or "is stopped" in msg:
            raise Conflict(msg)
        raise Internal(msg)

    async def kill(self, cid: str, sig: int | str = _signal.SIGTERM) -> None:
        """``runc kill CID SIG`` (to PID 1). Conflict when it is not running."""
        rc, _out, err = await self._runc("kill", cid, _signal_name(sig))
        if rc != 0:
            self._raise(cid, err)

    async def stop(self, cid: str, timeout: float = 10, sig: int | str = "TERM") -> int | None:
        """Send ``sig``, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        code = self.exit_code(cid)
        if code is not None:
            return code
        with contextlib.suppress(Conflict):
            await self.kill(cid, sig)
        code = await self.wait_exit(cid, timeout)
        if code is None:
            with contextlib.suppress(Conflict):
                await self.kill(cid, "KILL")
            code = await self.wait_exit(cid, 30)
        return code

    async def state(self, cid: str) -> dict[str, Any] | None:
        """``runc state`` (``status``: created|running|stopped|paused), None if unknown."""
        rc, out, _err = await self._runc("state", cid)
        if rc != 0:
            return None
        value: dict[str, Any] = json.loads(out)
        return value

    async def delete(self, cid: str) -> None:
        """Kill if needed, ``runc delete --force``, wait for conmon, remove leftovers.

        Idempotent. The bundle directory and the log file are the caller's.
        """
        conmon = self.conmon_pid(cid)
        self._deleted.add(cid)
        rc, _out, err = await self._runc("delete", "--force", cid)
        if rc != 0 and "does not exist" not in err and "not exist" not in err:
            raise Internal(runc_message(err) or f"runc delete failed for {cid}")
        if conmon is not None:
            await self._wait_pid_gone(conmon, 10.0)
        await self._forget(cid)

    async def _forget(self, cid: str) -> None:
        bundle = self._meta(cid).get("bundle")
        if bundle:
            for leftover in ("attach", "ctl", "winsz"):
                with contextlib.suppress(OSError):
                    (Path(bundle) / leftover).unlink()
        (self.exits_dir / cid).unlink(missing_ok=True)
        self._remove_sock_link(cid)
        (self.meta_dir / f"{cid}.json").unlink(missing_ok=True)
        self._delivered.pop(cid, None)
        # conmon is gone and the exit file with it: nothing can be delivered any more, so
        # the id need not be remembered (it was, forever, for every container).
        self._deleted.discard(cid)

    async def _wait_pid_gone(self, pid: int, timeout: float) -> None:
        """Wait for a non-child process to exit, with a pidfd (no polling)."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(pidfd, ready)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, _signal.SIGKILL)
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)

    # -- I/O --------------------------------------------------------------------------

    def _remove_sock_link(self, cid: str) -> None:
        """Remove conmon's ``socks/<cid>`` link to the bundle. conmon cuts the name short when
        ``socks/<cid>/attach`` would not fit in a unix socket address (108 bytes), so a
        missing full name means looking for the cut one."""
        exact = self.socks_dir / cid
        if exact.is_symlink() or exact.exists():
            _remove_path(exact)
            return
        with contextlib.suppress(OSError), os.scandir(self.socks_dir) as entries:
            for entry in entries:
                if len(entry.name) >= 12 and cid.startswith(entry.name):
                    _remove_path(Path(entry.path))

    async def attach(self, cid: str) -> Attachment:
        """Connect to the container's conmon attach socket (stdin needs ``stdin=True``).

        The socket is ``attach`` in the bundle (conmon's ``socks/<cid>`` is only a link to the
        bundle, and its name is cut short under long exec roots); ``Attachment.connect`` goes
        through ``/proc/self/fd`` so the bundle's path length does not matter."""
        bundle = self._meta(cid).get("bundle")
        return await Attachment.connect(Path(bundle) if bundle else self.socks_dir / cid)

    def read_logs(
        self,
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
    ) -> AsyncIterator[LogItem]:
        """``(stream, data)`` records of a conmon log; see ``tether.runtime.logs``."""
        return _read_logs(
            log_path,
            follow=follow,
            tail=tail,
            stdout=stdout,
            stderr=stderr,
            since=since,
            until=until,
            timestamps=timestamps,
            stop=stop,
            inotify=self._watcher(),
        )

    def resize(self, cid: str, height: int, width: int) -> None:
        """Resize the container's TTY (conmon's ``ctl`` fifo in the bundle)."""
        bundle = self._meta(cid).get("bundle")
        if not bundle:
            raise NotFound(f"No such container: {cid}")
        try:
            fd = os.open(Path(bundle) / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise Conflict(f"container {cid} is not running") from None
        try:
            os.write(fd, f"1 {height} {width}\n".encode())
        finally:
            os.close(fd)

    async def exec(
        self,
        cid: str,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        privileged: bool = False,
    ) -> ExecProcess:
        """``runc exec``; returns once the process runs (or raises ``ContainerStartError``).

        Without a TTY the streams are separate pipes; with one, output comes from the
        pty (``ExecProcess.output()`` either way).
        """
        if not args:
            raise BadRequest("No exec command specified")
        who = self._exec_user(cid, user) if user else None
        watcher = self._watcher()
        workdir = self.exec_dir / uuid.uuid4().hex[:16]
        workdir.mkdir(parents=True)
        pidfile = workdir / "pid"
        cmd = self._exec_command(cid, args, pidfile, env, cwd, who, tty, privileged)

        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()

        def on_event(name: str, _mask: int) -> None:
            if name == "pid" and not started.done():
                started.set_result(None)

        wd = watcher.add_watch(workdir, IN_CLOSE_WRITE | IN_MOVED_TO, on_event)
        master: int | None = None
        console: socket.socket | None = None
        try:
            proc, console = await spawn_exec(
                cmd, tty=tty, stdin=stdin, workdir=workdir, pidfile=pidfile
            )
            pid = await exec_started(proc, pidfile, started)
            if console is not None:
                master = await receive_console(console)
            return ExecProcess(proc, pid, workdir, master)
        except BaseException:
            if master is not None:
                os.close(master)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            if console is not None:
                console.close()
            watcher.rm_watch(wd)

    def _exec_user(self, cid: str, spec: str) -> ExecUser:
        """``spec`` resolved against the running container's ``/etc/passwd`` and
        ``/etc/group`` (Docker's texts for a user or group it does not find)."""
        pid = self.container_pid(cid)
        if pid is None:
            raise Conflict(f"Container {cid} is not running")
        return resolve_in_root(f"/proc/{pid}/root", spec)

    def _exec_command(
        self,
        cid: str,
        args: Sequence[str],
        pidfile: Path,
        env: Sequence[str],
        cwd: str | None,
        user: ExecUser | None,
        tty: bool,
        privileged: bool,
    ) -> list[str]:
        cmd = [self.runc, "--root", str(self.runc_root), "exec", "--pid-file", str(pidfile)]
        for e in env:
            cmd += ["--env", e]
        if cwd:
            cmd += ["--cwd", cwd]
        if user is not None:
            cmd += ["--user", user.spec]
            for gid in user.sgids:
                cmd += ["--additional-gids", str(gid)]
        if privileged:
            cmd.append("--privileged")
        if tty:
            # detached, the container's pty master comes to us (see launch.spawn_exec)
            cmd += ["--tty", "--detach", "--console-socket", CONSOLE_SOCKET]
            if not any(e.startswith("TERM=") for e in env):
                cmd += ["--env", "TERM=xterm"]  # as Docker does for exec -t
        cmd += [cid, *args]
        return cmd
