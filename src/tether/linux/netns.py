"""Network namespaces as files: made, listed and removed by path.

A sandbox's namespace lives as a bind mount on a file under
``<exec-root>/netns/``. It is made by the dedicated namespace thread
(:mod:`tether.linux.nsthread`: ``unshare(CLONE_NEWNET)`` and a bind mount of the thread's
namespace, ~50 µs; it used to be ``unshare --net=FILE``, a child process per sandbox,
~5 ms). The bind needs the file's mount to have private propagation; when the folder sits
on a shared mount we make the folder a private bind mount of itself first, as ``ip netns``
does; we always do (once), so the whole folder can be detached in one step where the
sandbox files must not be seen (the runtime's mount namespace, ``nsthread.PrivateMounts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path

from tether.errors import Internal
from tether.linux import nsthread, spawn

_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _umount(path: str) -> None:
    if _libc.umount2(path.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT
            raise OSError(err, os.strerror(err), path)


def is_mounted_ns(path: str) -> bool:
    """True when ``path`` is a live namespace mount (its inode differs from a plain file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    # nsfs inodes live on a special device (st_dev of nsfs); a plain file is on the fs.
    parent = os.stat(os.path.dirname(path) or ".")
    return st.st_dev != parent.st_dev


def is_mount_point(path: str) -> bool:
    """True when ``path`` is a mount point, bind mounts of a folder onto itself included.

    (``os.path.ismount`` compares devices and inodes, so it misses a same-filesystem bind.)
    Reads the mount table: meant for a one-off check, not a hot path.
    """
    want = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        return any(point == want for point, _fstype in nsthread.mount_points(f.read()))


async def _new_netns(path: str) -> tuple[int, str]:
    try:
        await asyncio.wrap_future(nsthread.default().submit_new_netns(path))
    except OSError as exc:
        return exc.errno or 1, str(exc)
    return 0, ""


async def _run(*argv: str) -> tuple[int, str]:
    # vfork from a thread, not uvloop's fork of the whole daemon (see tether.linux.spawn)
    rc, _, err = await spawn.run(argv)
    return rc, err.decode(errors="replace").strip()


class NetnsDir:
    """The folder that holds a daemon's sandbox namespaces."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._private_done = False

    def path(self, name: str) -> str:
        return str(self.root / name)

    async def _make_private(self) -> None:
        rc, err = await _run("mount", "--bind", str(self.root), str(self.root))
        if rc == 0:
            rc, err = await _run("mount", "--make-private", str(self.root))
        if rc != 0:
            raise Internal(f"cannot prepare namespace folder {self.root}: {err}")
        self._private_done = True

    async def create(self, name: str) -> str:
        """Make a fresh network namespace at ``root/name`` and return its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(name)
        if is_mounted_ns(path):
            return path
        if not self._private_done and not is_mount_point(str(self.root)):
            # The folder is a mount of its own, so a container's runtime can drop every
            # sandbox file from its mount namespace with one detach (nsthread.PrivateMounts).
            await self._make_private()
        Path(path).touch()
        rc, err = await _new_netns(path)
        if rc != 0 and not self._private_done:
            await self._make_private()
            rc, err = await _new_netns(path)
        if rc != 0:
            self._remove_file(path)
            raise Internal(f"cannot create network namespace {path}: {err}")
        return path

    def delete(self, name: str) -> None:
        path = self.path(name)
        # Stacked mounts are possible after a crash: unmount until plain.
        for _ in range(8):
            if not is_mounted_ns(path):
                break
            _umount(path)
        self._remove_file(path)

    @staticmethod
    def _remove_file(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir())
