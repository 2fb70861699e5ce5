"""runc + conmon end to end (root): image, netns, logs, exec, attach, stop, delete.

Every container joins a network namespace made for the test (never the host's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tether.linux.nsthread import PrivateMounts
from tether.runtime.images import Image, ImageStore
from tether.runtime.monitor import ContainerStartError, Runtime
from tether.runtime.oci import build_spec, write_bundle

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
CGROUP_PARENT = "tether-rt-test"
T = TypeVar("T")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (runc, conmon, overlayfs, network namespaces)"
    for tool in ("/usr/sbin/runc", "/usr/bin/conmon", "/usr/bin/busybox"):
        if not os.path.exists(tool):
            return f"{tool} is not installed"
    return None


@pytest.fixture(autouse=True)
def _need_root() -> None:
    reason = _missing()
    if reason:
        print(f"skipping: {reason}")
        pytest.skip(reason)


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run on a plain asyncio loop, as the daemon does (issue 20; uvloop before)."""
    with asyncio.Runner() as runner:
        return runner.run(factory())


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"tether-rt-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bb") / "rootfs.tar"
    subprocess.run([str(REPO / "scripts" / "build-busybox-image.sh"), str(out)], check=True)
    return out


class Env:
    def __init__(self, base: Path, netns: str) -> None:
        self.base = base
        self.netns = netns
        self.images = ImageStore(base / "images")
        self.runtime = Runtime(base / "runtime")
        self.image: Image | None = None
        self.created: list[str] = []

    async def setup(self, rootfs_tar: Path) -> None:
        self.image = await self.images.import_tar(
            rootfs_tar.read_bytes(), "alpine:latest", ['CMD ["/bin/sh"]']
        )

    async def container(self, args: list[str], *, stdin: bool = False) -> tuple[str, Path, int]:
        assert self.image is not None
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        self.created.append(cid)
        rootfs = await self.images.prepare_rootfs(self.image, cid)
        bundle = self.base / "bundles" / cid
        etc = self.base / "etc" / cid
        etc.mkdir(parents=True)
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n")
        (etc / "resolv.conf").write_text("nameserver 127.0.0.11\n")
        (etc / "hostname").write_text(cid[:12] + "\n")
        spec = build_spec(
            args=args,
            rootfs=rootfs,
            env=self.image.env,
            hostname=cid[:12],
            netns_path=self.netns,
            cgroups_path=f"/{CGROUP_PARENT}/{cid}",
            hosts_path=etc / "hosts",
            resolv_conf_path=etc / "resolv.conf",
            hostname_path=etc / "hostname",
        )
        write_bundle(bundle, spec)
        log = self.base / "logs" / f"{cid}.log"
        mounts = PrivateMounts(netns_path=self.netns, overlay=self.images.overlay_for(cid))
        pid = await self.runtime.create(cid, bundle, log, stdin=stdin, mounts=mounts)
        return cid, log, pid

    async def cleanup(self) -> None:
        for cid in self.created:
            with contextlib.suppress(Exception):
                await self.runtime.delete(cid)
            await self.images.remove_rootfs(cid)
        self.runtime.close()
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (hierarchy / CGROUP_PARENT).rmdir()


async def first_match(stream: AsyncIterator[tuple[str, bytes]], needle: bytes) -> bytes:
    seen = b""
    async for _name, data in stream:
        seen += data
        if needle in seen:
            return seen
    return seen


def process_alive(pid: int) -> bool:
    """True when pid runs (a zombie waiting for init to reap it does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cgroup_dirs(cid: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}/{cid}") if p.exists()]


def test_container_lifecycle(tmp_path: Path, netns: str, rootfs_tar: Path) -> None:
    async def body() -> None:
        env = Env(tmp_path, netns)
        try:
            await env.setup(rootfs_tar)
            cid, log, pid = await env.container(["sh", "-c", "echo hi; sleep 100"])
            state = await env.runtime.state(cid)
            assert state is not None and state["status"] == "created"
            # The root filesystem is mounted in the monitor's own mount namespace only, with
            # short relative paths (runc reads mountinfo often); the host never sees it.
            root = str(env.images.rootfs_path(cid))
            with open("/proc/self/mountinfo") as f:
                assert not [x for x in f if f" {root} " in x]
            monitor = env.runtime.conmon_pid(cid)
            with open(f"/proc/{monitor}/mountinfo") as f:
                table = f.read().splitlines()
            line = next(x for x in table if f" {root} " in x)
            # no other namespace file or overlay of ours than its own (another engine's made
            # later under a shared host mount may still arrive by propagation)
            ours = [x for x in table if " /run/netns/" in x or str(tmp_path) in x]
            assert [x for x in ours if " - nsfs " in x] == [
                x for x in ours if " - nsfs " in x and f" {env.netns} " in x
            ]
            assert len([x for x in ours if " - overlay " in x]) == 1
            opts = line.rsplit(" ", 1)[1]
            assert "upperdir=upper,workdir=work" in opts
            assert "lowerdir=../../l/" in opts and str(tmp_path) not in opts
            assert cgroup_dirs(cid), "runc placed the container under the absolute cgroup path"
            # The container lives in the namespace the test made.
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns).st_ino
            await env.runtime.start(cid)

            # Logs: "hi" arrives (follow until seen; bounded by a generous timeout).
            seen = await asyncio.wait_for(
                first_match(env.runtime.read_logs(log, follow=True), b"hi\n"), 30
            )
            assert b"hi\n" in seen
            items = [i async for i in env.runtime.read_logs(log)]
            assert ("stdout", b"hi\n") in items

            # Exec: output and exit codes.
            proc = await env.runtime.exec(cid, ["echo", "x"])
            out = [i async for i in proc.output()]
            assert await proc.wait() == 0
            assert out == [("stdout", b"x\n")]
            proc = await env.runtime.exec(cid, ["sh", "-c", "echo oops >&2; exit 3"])
            out = [i async for i in proc.output()]
            assert await proc.wait() == 3
            assert out == [("stderr", b"oops\n")]
            proc = await env.runtime.exec(cid, ["hostname"], tty=True)
            out = [i async for i in proc.output()]
            assert await proc.wait() == 0
            assert b"".join(d for _s, d in out).strip() == cid[:12].encode()
            with pytest.raises(ContainerStartError) as failed_exec:
                await env.runtime.exec(cid, ["nosuchcmd"])
            assert failed_exec.value.message == (
                "OCI runtime exec failed: exec failed: unable to start container process: exec:"
                ' "nosuchcmd": executable file not found in $PATH: unknown'
            )

            # The container does not depend on the Runtime object that launched it.
            conmon = env.runtime.conmon_pid(cid)
            assert conmon is not None
            env.runtime.close()
            env.runtime = Runtime(tmp_path / "runtime")
            state = await env.runtime.state(cid)
            assert state is not None and state["status"] == "running"
            assert env.runtime.conmon_pid(cid) == conmon
            with open(f"/proc/{conmon}/stat") as f:
                assert int(f.read().rsplit(")", 1)[1].split()[1]) != os.getpid()
            assert env.runtime.scan([cid]) == {}

            # Stop: PID 1 ignores SIGTERM, so it takes SIGKILL.
            code = await env.runtime.stop(cid, timeout=1)
            assert code in (137, 143)
            assert env.runtime.exit_code(cid) == code
            assert env.runtime.scan([cid]) == {cid: code}

            # Delete: no runc state, no mount, no cgroup, no conmon leftovers.
            await env.runtime.delete(cid)
            await env.images.remove_rootfs(cid)
            assert await env.runtime.state(cid) is None
            assert not os.path.ismount(env.images.rootfs_path(cid))
            assert not (tmp_path / "images" / "containers" / cid).exists()
            assert cgroup_dirs(cid) == []
            assert not (tmp_path / "runtime" / "socks" / cid).exists()
            assert env.runtime.exit_code(cid) is None
            assert not process_alive(conmon)
        finally:
            await env.cleanup()

    run(body)


def test_attach_stdin_and_exit_notification(tmp_path: Path, netns: str, rootfs_tar: Path) -> None:
    async def body() -> None:
        env = Env(tmp_path, netns)
        try:
            await env.setup(rootfs_tar)
            exits = env.runtime.watch_exits()
            next_exit = asyncio.ensure_future(anext(exits))
            await asyncio.sleep(0)
            cid, _log, _pid = await env.container(["sh", "-c", "cat; exit 5"], stdin=True)
            attach = await env.runtime.attach(cid)
            await env.runtime.start(cid)
            await attach.write(b"ping\n")
            got = b""
            while b"ping\n" not in got:
                item = await asyncio.wait_for(attach.read(), 30)
                assert item is not None
                assert item[0] == "stdout"
                got += item[1]
            attach.close_stdin()
            assert await asyncio.wait_for(next_exit, 30) == (cid, 5)
            assert await attach.read() is None
            attach.close()
            await exits.aclose()
        finally:
            await env.cleanup()

    run(body)


def test_failing_command_gives_docker_error(tmp_path: Path, netns: str, rootfs_tar: Path) -> None:
    async def body() -> None:
        env = Env(tmp_path, netns)
        try:
            await env.setup(rootfs_tar)
            with pytest.raises(ContainerStartError) as failed:
                await env.container(["nosuchcmd"])
            assert failed.value.message == (
                "failed to create shim task: OCI runtime create failed: runc create failed:"
                ' unable to start container process: exec: "nosuchcmd": executable file not'
                " found in $PATH: unknown"
            )
            assert failed.value.exit_status == 127
            cid = env.created[-1]
            assert await env.runtime.state(cid) is None
        finally:
            await env.cleanup()

    run(body)


def test_runc_commands_run_without_other_mounts(
    tmp_path: Path, netns: str, rootfs_tar: Path
) -> None:
    """``runc state/kill/delete`` read the mount table at every call: they run in the
    runtime's base namespace, which holds no namespace file or overlay (the daemon's has the
    test's own namespace file at least, and any other engine's containers). A start runs no
    ``runc`` at all: the daemon releases the created container's FIFO (``execfifo``)."""
    seen = tmp_path / "seen"
    wrapper = tmp_path / "runc-wrap"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"echo \"$3 $(grep -c -e ' - nsfs ' -e ' - overlay ' /proc/self/mountinfo)\" >> {seen}\n"
        'exec /usr/sbin/runc "$@"\n'
    )
    wrapper.chmod(0o755)
    with open("/proc/self/mountinfo") as f:
        assert " - nsfs " in f.read(), "the test's namespace file is a mount of the host's"

    async def body() -> None:
        env = Env(tmp_path, netns)
        env.runtime = Runtime(tmp_path / "runtime", runc=str(wrapper))
        try:
            await env.setup(rootfs_tar)
            cid, _log, _pid = await env.container(["sleep", "100"])
            await env.runtime.start(cid)
            state = await env.runtime.state(cid)
            assert state is not None and state["status"] == "running"
            await env.runtime.kill(cid, "KILL")
            await env.runtime.delete(cid)
        finally:
            await env.cleanup()

    run(body)
    calls: dict[str, set[str]] = {}
    for line in seen.read_text().splitlines():
        verb, _, count = line.rpartition(" ")
        calls.setdefault(verb, set()).add(count)
    for verb in ("state", "kill", "delete"):
        assert calls.get(verb) == {"0"}, (verb, calls)
    assert "start" not in calls, calls


@pytest.mark.parametrize("length", [99, 100, 101, 106, 107, 108, 130])
def test_attach_whatever_the_state_dir_length(netns: str, rootfs_tar: Path, length: int) -> None:
    """conmon cuts its ``socks/<cid>`` link's name short when ``socks/<cid>/attach`` would not
    fit a socket address: attach must still reach the socket, and removal the link (a run
    printed nothing under one exec root of exactly the wrong length)."""
    name_len = length - len("/tmp/") - len("/runtime/socks") - 1 - 64
    base = Path("/tmp") / ("t" + uuid.uuid4().hex + "x" * name_len)[:name_len]
    assert len(str(base / "runtime" / "socks" / ("c" * 64))) == length

    async def body() -> None:
        env = Env(base, netns)
        try:
            await env.setup(rootfs_tar)
            cid, _log, _pid = await env.container(["sh", "-c", "echo hello-attach"])
            attach = await env.runtime.attach(cid)
            await env.runtime.start(cid)
            got = b""
            while (item := await asyncio.wait_for(attach.read(), 30)) is not None:
                got += item[1]
            assert b"hello-attach" in got
            attach.close()
            await env.runtime.delete(cid)
            assert list((base / "runtime" / "socks").iterdir()) == []
        finally:
            await env.cleanup()

    base.mkdir()
    try:
        run(body)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)
