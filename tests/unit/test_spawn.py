"""tether.linux.spawn: helpers run to completion through subprocess (vfork), off the loop."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from tether.linux import spawn


def test_status_and_output() -> None:
    rc, out, err = asyncio.run(spawn.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert (rc, out, err) == (3, b"out\n", b"err\n")


def test_no_capture_writes_stderr_to_the_file(tmp_path: Path) -> None:
    log = tmp_path / "err"

    async def go() -> tuple[int, bytes, bytes]:
        with open(log, "ab") as f:
            return await spawn.run(
                ["/bin/sh", "-c", "echo hidden; echo oops >&2"], capture=False, stderr=f
            )

    assert asyncio.run(go()) == (0, b"", b"")
    assert log.read_text() == "oops\n"


def test_env_new_session_and_passed_fd() -> None:
    a, b = socket.socketpair()
    script = f'echo "$X" >&{b.fileno()}; ps -o sid= -p $$ >&{b.fileno()}'
    rc, _, _ = asyncio.run(
        spawn.run(
            ["/bin/bash", "-c", script],
            env={"X": "hello", "PATH": "/usr/bin:/bin"},
            pass_fds=(b.fileno(),),
            new_session=True,
        )
    )
    b.close()
    got = a.recv(200).decode().split()
    a.close()
    assert rc == 0 and got[0] == "hello"
    if len(got) > 1:  # ps present: the child leads a session of its own
        assert int(got[1]) != os.getsid(0)


def test_missing_program_raises_oserror() -> None:
    with pytest.raises(OSError):
        asyncio.run(spawn.run(["/nonexistent/helper"]))
