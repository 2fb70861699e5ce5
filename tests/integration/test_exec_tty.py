"""``docker exec -t`` output through the real docker CLI (issue 17).

The container's pty (ONLCR on, as runc sets it up) is the only terminal between the
process and the client: a line written at the very start of a TTY exec reads back as
``"...\\r\\n"``, never ``"\\r\\r\\n"`` (two ptys in series) nor a bare ``"\\n"``.
Bytes are compared raw (no text-mode newline translation).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tether.lab.lab import LabHost

from .helpers import DOCKER, docker
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

ROUNDS = int(os.environ.get("TTY_ROUNDS", "30"))


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    r = docker(host1, "run", "-d", "--name", "ttyc", "alpine", "sleep", "600", timeout=60)
    assert r.returncode == 0, r.stderr
    return host1


def exec_raw(host: LabHost, *args: str) -> tuple[int, bytes, bytes]:
    env = host.docker_env(None)
    r = subprocess.run(
        [DOCKER, "exec", *args], env=env, capture_output=True, timeout=30, check=False
    )
    return r.returncode, r.stdout, r.stderr


def test_first_output_of_a_tty_exec_has_one_cr(h: LabHost) -> None:
    outputs = []
    for _ in range(ROUNDS):
        rc, out, err = exec_raw(h, "-t", "ttyc", "sh", "-c", "echo hello out")
        assert rc == 0, err
        outputs.append(out)
    bad = [o for o in outputs if o != b"hello out\r\n"]
    assert not bad, f"{len(bad)}/{ROUNDS} differ: {sorted(set(bad))}"


def test_later_output_and_exit_code_of_a_tty_exec(h: LabHost) -> None:
    rc, out, err = exec_raw(h, "-t", "ttyc", "sh", "-c", "sleep 0.3; printf 'a\\nb\\n'; exit 3")
    assert rc == 3, err
    assert out == b"a\r\nb\r\n"


def test_tty_exec_sees_a_terminal_and_stdin(h: LabHost) -> None:
    rc, out, err = exec_raw(h, "-t", "ttyc", "sh", "-c", "test -t 0 && test -t 1 && echo tty")
    assert rc == 0, err
    assert out == b"tty\r\n"
    env = h.docker_env(None)
    r = subprocess.run(
        [DOCKER, "exec", "-i", "ttyc", "sh", "-c", "cat"],
        env=env, input=b"in\n", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"in\n"
