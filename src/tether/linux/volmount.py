"""Mounting a local volume's folder with its driver options, as Docker's local driver does
(``mount -t TYPE -o O DEVICE PATH``), in the daemon's mount namespace: the runtime's base
namespace is made again when the daemon's mounts change, so containers started afterwards
see it (``tether.linux.nsthread``)."""

from __future__ import annotations

import asyncio
import os


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        text = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise OSError(text)


class HostMounts:
    """``tether.engine.seams.VolumeMounts`` with mount(8)."""

    def is_mounted(self, path: str) -> bool:
        return os.path.ismount(path)

    async def mount(self, kind: str, device: str, options: str, path: str) -> None:
        argv = ["mount"]
        if kind and kind != "none":
            argv += ["-t", kind]
        if options:
            argv += ["-o", options]
        await _run(*argv, device, path)

    async def unmount(self, path: str) -> None:
        await _run("umount", "-l", path)
