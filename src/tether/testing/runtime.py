"""In-memory fakes of the runtime (runc + conmon) and the image store, for unit tests.

``FakeRuntime`` follows ``tether.runtime.monitor.Runtime``'s signatures: ``create``
returns a made-up host PID, ``start`` runs, ``kill`` records the signal and (unless
the test said the process ignores it) makes the container exit with ``128 + signal``,
as a shell PID 1 killed by the kernel would; ``exit(cid, code)`` is the test's lever
for "PID 1 exited with this code". Exits reach every ``watch_exits`` iterator through
a queue, so the engine sees them asynchronously, as it does from conmon's exit files.
The exit code is kept until ``delete`` (like conmon's exit file), so a new engine on the
same fake (a daemon restart) finds the exits that happened while it was away.
PIDs start high (``PID_BASE``) so that they name no real process.

``FakeImages`` follows ``tether.runtime.images.ImageStore`` for what the container
controller uses (``get``, ``mount_rootfs``, ``unmount_rootfs``, ``remove_rootfs``) with
``FakeImage`` standing in for ``Image`` (the same config properties).

Both record their calls in ``calls`` and take a one-shot failure per method name in
``fail``, like ``tether.testing.netlink.FakeNetlink``.
"""

from __future__ import annotations

import asyncio
import builtins
import signal as _signal
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import BadRequest, Conflict, Internal, NotFound

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PID_BASE = 4_000_000  # above the kernel's pid_max: never a real process


def _signum(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    s = sig.upper()
    if s.isdigit():
        return int(s)
    return int(getattr(_signal, s if s.startswith("SIG") else "SIG" + s))


@dataclass
class FakeContainer:
    cid: str
    bundle: Path
    log_path: Path
    pid: int
    stdin: bool = False
    tty: bool = False
    status: str = "created"  # created | running | stopped
    signals: list[int] = field(default_factory=list)


class FakeAttachment:
    """Stands in for ``tether.runtime.attach.Attachment``: canned output, recorded input."""

    def __init__(self, output: Sequence[tuple[str, bytes]] = ()) -> None:
        self._output = list(output)
        self.written = bytearray()
        self.stdin_closed = False
        self.closed = False

    async def read(self) -> tuple[str, bytes] | None:
        return self._output.pop(0) if self._output else None

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[tuple[str, bytes]]:
        while (item := await self.read()) is not None:
            yield item

    async def write(self, data: bytes) -> None:
        self.written += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def close(self) -> None:
        self.closed = True


class FakeExecProcess:
    """Stands in for ``tether.runtime.execproc.ExecProcess``: canned output and exit code."""

    def __init__(
        self,
        pid: int,
        output: Sequence[tuple[str, bytes]] = (),
        code: int = 0,
        tty: bool = False,
        hang: bool = False,
    ) -> None:
        self.pid = pid
        self.tty = tty
        self.hang = hang  # wait() returns only once killed (a probe past its timeout)
        self.killed = asyncio.Event()
        self._output = list(output)
        self._code = code
        self._exit: int | None = None
        self.written = bytearray()
        self.stdin_closed = False
        self.signals: list[int] = []

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        for item in self._output:
            yield item

    async def write(self, data: bytes) -> None:
        self.written += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def resize(self, height: int, width: int) -> None:
        return None

    def kill(self, sig: int = _signal.SIGKILL) -> None:
        self.signals.append(sig)
        self._code = 128 + sig
        self.killed.set()

    @property
    def returncode(self) -> int | None:
        return self._exit

    async def wait(self) -> int:
        if self.hang:
            await self.killed.wait()
        self._exit = self._code
        return self._exit


class FakeRuntime:
    """runc + conmon in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.exits: dict[str, int] = {}  # cid -> exit code (conmon's exit file)
        self.ignored: dict[str, set[int]] = {}  # cid -> signals its PID 1 ignores
        self.logs: dict[str, list[tuple[str, bytes]]] = {}  # str(log path) -> records
        self.exec_results: dict[str, tuple[list[tuple[str, bytes]], int]] = {}
        self.exec_hang: set[str] = set()  # commands whose process runs until killed
        self.execs: builtins.list[FakeExecProcess] = []  # every process exec started
        self.files: dict[str, bytes] = {}  # path -> content, for path_stat/archive/extract
        self.filled: dict[str, bytes] = {}  # volume folder -> tar given to fill_dir
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, BaseException] = {}  # method name -> error to raise once
        self.updates: dict[str, list[Any]] = {}  # cid -> resources of each ``update``
        self._queues: list[asyncio.Queue[tuple[str, int]]] = []
        self._next_pid = PID_BASE

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        err = self.fail.pop(name, None)
        if err is not None:
            raise err

    # -- the test's levers ------------------------------------------------------------

    def exit(self, cid: str, code: int) -> None:
        """PID 1 of ``cid`` exited with ``code`` (delivered to every exit watcher)."""
        c = self.containers.get(cid)
        if c is None or c.status != "running":
            raise AssertionError(f"fake runtime: {cid[:12]} is not running")
        c.status = "stopped"
        self.exits[cid] = code
        for q in self._queues:
            q.put_nowait((cid, code))

    def running(self) -> builtins.list[str]:
        return sorted(cid for cid, c in self.containers.items() if c.status == "running")

    def pid_alive(self, pid: int) -> bool:
        """What ``os.kill(pid, 0)`` would say for a PID this fake handed out."""
        return any(c.pid == pid and c.status == "running" for c in self.containers.values())

    # -- Runtime's API ------------------------------------------------------------------

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
        mounts: Any = None,
    ) -> int:
        self._call("create", cid)
        if cid in self.containers:
            raise Conflict(f"container with id exists: {cid}")
        self._next_pid += 1
        self.exits.pop(cid, None)
        self.containers[cid] = FakeContainer(
            cid, Path(bundle), Path(log_path), self._next_pid, stdin, tty
        )
        return self._next_pid

    async def start(self, cid: str) -> None:
        self._call("start", cid)
        c = self.containers.get(cid)
        if c is None:
            raise NotFound(f"No such container: {cid}")
        if c.status != "created":
            raise Conflict(f"cannot start a container that has {c.status}")
        c.status = "running"

    async def kill(self, cid: str, sig: int | str = _signal.SIGTERM) -> None:
        signum = _signum(sig)
        self._call("kill", cid, signum)
        c = self.containers.get(cid)
        if c is None:
            raise NotFound(f"No such container: {cid}")
        if c.status != "running":
            raise Conflict("container not running")
        c.signals.append(signum)
        if signum == _signal.SIGKILL or signum not in self.ignored.get(cid, set()):
            asyncio.get_running_loop().call_soon(self._exit_if_running, cid, 128 + signum)

    def _exit_if_running(self, cid: str, code: int) -> None:
        c = self.containers.get(cid)
        if c is not None and c.status == "running":
            self.exit(cid, code)

    async def stop(self, cid: str, timeout: float = 10, sig: int | str = "TERM") -> int | None:
        code = self.exit_code(cid)
        if code is not None:
            return code
        await self.kill(cid, sig)
        await asyncio.sleep(0)
        if self.exit_code(cid) is None:
            await self.kill(cid, "KILL")
            await asyncio.sleep(0)
        return self.exit_code(cid)

    async def state(self, cid: str) -> dict[str, Any] | None:
        c = self.containers.get(cid)
        if c is None:
            return None
        return {"id": cid, "pid": c.pid, "status": c.status, "bundle": str(c.bundle)}

    async def delete(self, cid: str) -> None:
        """Idempotent; a running container is killed first (``runc delete --force``)."""
        self._call("delete", cid)
        self.containers.pop(cid, None)
        self.exits.pop(cid, None)

    def exit_code(self, cid: str) -> int | None:
        return self.exits.get(cid)

    async def watch_exits(self) -> AsyncIterator[tuple[str, int]]:
        q: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._queues.remove(q)

    async def attach(self, cid: str) -> FakeAttachment:
        self._call("attach", cid)
        c = self.containers.get(cid)
        if c is None:
            raise NotFound(f"No such container: {cid}")
        return FakeAttachment(self.logs.get(str(c.log_path), []))

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
    ) -> AsyncIterator[tuple[str, bytes]]:
        records = [
            (s, d)
            for s, d in self.logs.get(str(log_path), [])
            if (s == "stdout" and stdout) or (s == "stderr" and stderr)
        ]
        if tail is not None:
            records = records[-tail:] if tail > 0 else []
        return self._iter_logs(records)

    @staticmethod
    async def _iter_logs(records: list[tuple[str, bytes]]) -> AsyncIterator[tuple[str, bytes]]:
        for item in records:
            yield item

    def resize(self, cid: str, height: int, width: int) -> None:
        if cid not in self.containers:
            raise NotFound(f"No such container: {cid}")

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
    ) -> FakeExecProcess:
        """Output and exit code come from ``exec_results[args[0]]`` (default: none, 0)."""
        if not args:
            raise BadRequest("No exec command specified")
        self._call("exec", cid, list(args))
        c = self.containers.get(cid)
        if c is None or c.status != "running":
            raise Conflict(f"Container {cid} is not running")
        output, code = self.exec_results.get(args[0], ([], 0))
        self._next_pid += 1
        proc = FakeExecProcess(self._next_pid, output, code, tty, hang=args[0] in self.exec_hang)
        self.execs.append(proc)
        return proc

    # -- pause, processes, figures, files ------------------------------------------------

    def _live(self, cid: str) -> FakeContainer:
        c = self.containers.get(cid)
        if c is None:
            raise NotFound(f"container {cid} does not exist")
        if c.status not in ("running", "paused"):
            raise Conflict("container not running")
        return c

    async def pause(self, cid: str) -> None:
        self._call("pause", cid)
        self._live(cid).status = "paused"

    async def resume(self, cid: str) -> None:
        self._call("resume", cid)
        c = self._live(cid)
        if c.status != "paused":
            raise Conflict("container not paused")
        c.status = "running"

    async def update(self, cid: str, resources: Any) -> None:
        """``runc update``: records the resources (``updates``) of a live container."""
        self._call("update", cid, resources)
        self._live(cid)
        self.updates.setdefault(cid, []).append(resources)

    async def top(self, cid: str, ps_args: builtins.list[str]) -> tuple[builtins.list[int], str]:
        self._call("top", cid, list(ps_args))
        c = self._live(cid)
        return [
            c.pid
        ], f"UID PID PPID C STIME TTY TIME CMD\nroot {c.pid} 1 0 10:00 ? 00:00:00 sleep 60\n"

    async def stats(self, cid: str) -> dict[str, Any]:
        self._call("stats", cid)
        self._live(cid)
        return {
            "read": 1.0e9,
            "cgroup": {"cpu": {"usage": {"total": 1000, "kernel": 10, "user": 20}},
                       "memory": {"usage": {"usage": 4096, "limit": 1 << 62}},
                       "pids": {"current": 1}},
            "networks": {"eth0": {"rx_bytes": 1, "rx_packets": 1, "rx_errors": 0,
                                  "rx_dropped": 0, "tx_bytes": 2, "tx_packets": 2,
                                  "tx_errors": 0, "tx_dropped": 0}},
            "system_cpu_usage": 10**12,
            "online_cpus": 2,
            "machine_memory": 1 << 30,
        }  # fmt: skip

    async def path_stat(
        self, pid: int | None, overlay: Any, path: str, binds: Any = ()
    ) -> dict[str, Any]:
        self._call("path_stat", pid, path)
        if path not in self.files:
            raise NotFound("not found")
        return {"name": path.rsplit("/", 1)[-1], "size": len(self.files[path]),
                "mode": 0o644, "mtime": "2024-01-01T00:00:00Z", "linkTarget": ""}  # fmt: skip

    def archive(
        self, pid: int | None, overlay: Any, path: str, binds: Any = ()
    ) -> AsyncIterator[bytes]:
        self._call("archive", pid, path)
        return self._iter_bytes([self.files.get(path, b"")])

    async def fill_dir(self, root: str, data: AsyncIterator[bytes]) -> None:
        """Records the copy-up: ``filled[root]`` is the bytes given."""
        self._call("fill_dir", root)
        self.filled[root] = b"".join([c async for c in data])

    def export(self, overlay: Any) -> AsyncIterator[bytes]:
        self._call("export")
        return self._iter_bytes([b"tar"])

    async def extract(
        self,
        pid: int | None,
        overlay: Any,
        path: str,
        data: AsyncIterator[bytes],
        no_overwrite: bool = False,
        binds: Any = (),
    ) -> None:
        self._call("extract", pid, path, no_overwrite)
        self.files[path] = b"".join([c async for c in data])

    async def changes(self, overlay: Any) -> builtins.list[dict[str, Any]]:
        self._call("changes")
        return [{"Path": "/tmp", "Kind": 0}]

    async def size_rw(self, overlay: Any) -> int:
        return 0

    @staticmethod
    async def _iter_bytes(chunks: builtins.list[bytes]) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk


@dataclass
class FakeImage:
    """Stands in for ``tether.runtime.images.Image`` (the properties the engine reads)."""

    id: str = "sha256:" + "ab" * 32
    cmd: list[str] | None = field(default_factory=lambda: ["/bin/sh"])
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    working_dir: str = ""
    exposed_ports: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    repo_tags: list[str] = field(default_factory=list)
    volumes: dict[str, Any] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None

    @property
    def hex(self) -> str:
        return self.id.split(":", 1)[1]

    @property
    def short_id(self) -> str:
        return self.hex[:12]


class FakeImages:
    """Images by reference and mounted root filesystems, in memory."""

    def __init__(self, root: Path = Path("/fake/containers")) -> None:
        self.root = root
        self.images: dict[str, FakeImage] = {}  # reference (name:tag or id) -> image
        self.mounted: set[str] = set()  # container ids with a mounted rootfs
        self.rootfs: set[str] = set()  # container ids with a rootfs folder
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, BaseException] = {}

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        err = self.fail.pop(name, None)
        if err is not None:
            raise err

    def add(self, ref: str, image: FakeImage | None = None) -> FakeImage:
        image = image or FakeImage()
        self.images[ref] = image
        if ":" not in ref:
            self.images[f"{ref}:latest"] = image
        image.repo_tags.append(ref if ":" in ref else f"{ref}:latest")
        return image

    def get(self, ref: str) -> FakeImage:
        image = self.images.get(ref)
        if image is None:
            image = next((i for i in self.images.values() if i.hex.startswith(ref)), None)
        if image is None or not ref:
            raise NotFound(f"No such image: {ref}")
        return image

    def rootfs_path(self, container_id: str) -> Path:
        return self.root / container_id / "merged"

    async def prepare_rootfs(self, image: FakeImage, container_id: str) -> Path:
        self._call("prepare_rootfs", image.id, container_id)
        self.rootfs.add(container_id)
        return self.rootfs_path(container_id)

    def overlay_for(self, container_id: str) -> None:
        """The real store returns the overlay to mount at start; the fake mounts nothing."""
        self._call("overlay_for", container_id)
        if container_id not in self.rootfs:
            raise Internal(f"root filesystem of {container_id[:12]} is missing")
        self.mounted.add(container_id)

    async def unmount_rootfs(self, container_id: str) -> None:
        self._call("unmount_rootfs", container_id)
        self.mounted.discard(container_id)

    async def remove_rootfs(self, container_id: str) -> None:
        self._call("remove_rootfs", container_id)
        self.mounted.discard(container_id)
        self.rootfs.discard(container_id)

    def rootfs_ids(self) -> builtins.list[str]:
        return sorted(self.rootfs)


class FakeVolumeMounts:
    """``tether.engine.seams.VolumeMounts`` in memory: ``mounted[path]`` is (type, device, o)."""

    def __init__(self) -> None:
        self.mounted: dict[str, tuple[str, str, str]] = {}
        self.fail: BaseException | None = None

    def is_mounted(self, path: str) -> bool:
        return path in self.mounted

    async def mount(self, kind: str, device: str, options: str, path: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.mounted[path] = (kind, device, options)

    async def unmount(self, path: str) -> None:
        self.mounted.pop(path, None)


def _fits() -> None:
    """Never called: ``mypy --strict`` proves here that the fakes fit the engine's seams."""
    from tether.engine.seams import Images, Netns, Runtime, VolumeMounts
    from tether.linux.netlink import Netlink
    from tether.testing.netlink import FakeNetlink, FakeNetns

    _runtime: Runtime = FakeRuntime()
    _images: Images[FakeImage] = FakeImages()
    _netns: Netns = FakeNetns()
    _netlink: Netlink = FakeNetlink()
    _volume_mounts: VolumeMounts = FakeVolumeMounts()
    # the real image store is the whole catalog the API reaches through the engine
    from pathlib import Path

    from tether.engine.seams import ImageCatalog
    from tether.runtime.image import Image
    from tether.runtime.images import ImageStore

    _catalog: ImageCatalog[Image] = ImageStore(Path("/nonexistent"))
