"""Fault injection: kill -9 of the daemon in the middle of operations, then restart and check.

A bounded loop (``ROUNDS``) picks an operation (create, run, connect, disconnect, rm -f,
network create, network rm), starts it through the docker CLI, kills the daemon with
SIGKILL after a random short delay (seeded: failures are reproducible), starts the daemon
again and checks that store, kernel and API agree (``check_consistent``): every container
exists whole or not at all, no address is held twice or leaked, no veth or namespace is
orphaned.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tether.lab.lab import Lab

from .helpers import DOCKER, docker
from .restart_helpers import check_consistent, import_image

ROUNDS = 24
SEED = int(os.environ.get("TETHER_FAULT_SEED", "6"))


@pytest.fixture
def lab(lab_factory, tmp_path: Path) -> Lab:  # type: ignore[no-untyped-def]
    lab = lab_factory(["host1"], daemons=True)
    import_image(lab.host("host1"), tmp_path)
    return lab


def _ops(rng: random.Random, i: int) -> list[str]:
    c = f"c{rng.randrange(4)}"
    n = f"n{rng.randrange(2)}"
    choices = [
        [
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "n0",
            "--restart",
            "always",
            "alpine",
            "sleep",
            "1000",
        ],
        ["create", "--name", c, "--network", n, "alpine", "sleep", "1000"],
        ["start", c],
        ["network", "connect", n, c],
        ["network", "disconnect", n, c],
        ["rm", "-f", c],
        ["network", "create", "--subnet", f"10.9{i % 10}.{rng.randrange(250)}.0/24", f"x{i}"],
        ["network", "rm", f"x{i - 1}"],
    ]
    return choices[rng.randrange(len(choices))]


def test_kill9_during_operations_leaves_consistent_state(lab: Lab) -> None:
    h = lab.host("host1")
    docker(h, "network", "create", "--subnet", "10.80.0.0/24", "n0", check=True)
    docker(h, "network", "create", "--subnet", "10.81.0.0/24", "n1", check=True)
    rng = random.Random(SEED)
    for i in range(ROUNDS):
        args = _ops(rng, i)
        proc = subprocess.Popen(
            [DOCKER, *args],
            env=h.docker_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, 0.25))
        lab.stop_daemon("host1", kill9=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        lab.start_daemon("host1")
        problems = check_consistent(h)
        assert problems == [], f"round {i} ({' '.join(args)}): {problems}"
    # the engine still works after all that
    r = docker(h, "run", "-d", "--name", "after", "--network", "n0", "alpine", "sleep", "100")
    assert r.returncode == 0, r.stderr
    assert check_consistent(h) == []
