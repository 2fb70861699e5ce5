"""``tether``'s own CLI (bin/tether: the click-free fast path) for ``network create``,
``run -d``, ``rm`` and ``network rm`` against a real daemon in a lab host, beside the docker
CLI on the same daemon: the same results, and the texts docker prints (run's errors in
tether's spelling: ``tether: ...``, exit 125)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench.netns import wait_tcp

from tether.lab.lab import LabHost

from .portlab import import_image, ok

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
BIN = str(ROOT / "bin" / "tether")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def tether(host: LabHost, *args: str, fast: bool = True) -> subprocess.CompletedProcess[str]:
    """bin/tether (fast path; ``fast=False``: ``python -m tether`` with click's app)."""
    env = host.docker_env()
    env["PYTHONPATH"] = str(ROOT / "src")
    if fast:
        argv = [BIN, *args]
    else:
        code = "import sys; from tether.cli.app import cli; cli(prog_name='tether')"
        argv = [sys.executable, "-c", code, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def docker(host: LabHost, *args: str) -> subprocess.CompletedProcess[str]:
    from .helpers import docker as run

    return run(host, *args)


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    import_image(host1, Path(tmp_path_factory.mktemp("img")))
    return host1


def test_the_launcher_runs_this_worktree(h: LabHost) -> None:
    r = tether(h, "network", "create", "--subnet", "10.61.0.0/24", "--gateway", "10.61.0.1",
               "--label", "who=fast", "fastnet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert HEX64.match(r.stdout.strip()), r.stdout
    net = json.loads(ok(h, "network", "inspect", "fastnet"))[0]
    assert net["IPAM"]["Config"] == [{"Subnet": "10.61.0.0/24", "Gateway": "10.61.0.1"}]
    assert net["Labels"] == {"who": "fast"}


def test_run_detached_is_reachable_and_rm_removes_it(h: LabHost) -> None:
    web = ["alpine", "httpd", "-f", "-p", "80", "-h", "/etc"]
    opts = ["--name", "fastweb", "--network", "fastnet", "--ip", "10.61.0.5", "-e", "A=1"]
    r = tether(h, "run", "-d", *opts, "-l", "k=v", *web)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert HEX64.match(cid) and r.stderr == ""
    c = json.loads(ok(h, "inspect", "fastweb"))[0]
    assert c["Id"] == cid and c["State"]["Running"] is True
    assert "A=1" in c["Config"]["Env"] and c["Config"]["Labels"] == {"k": "v"}
    assert c["NetworkSettings"]["Networks"]["fastnet"]["IPAddress"] == "10.61.0.5"
    assert wait_tcp(h.netns_path, "10.61.0.5", 80) is not None
    r = tether(h, "rm", "-f", "fastweb", "nosuchone")
    assert (r.returncode, r.stdout) == (1, "fastweb\n")
    assert r.stderr == "Error response from daemon: No such container: nosuchone\n"
    assert docker(h, "inspect", "fastweb").returncode == 1


@pytest.mark.parametrize(
    "args",
    [
        ["network", "create", "fastnet"],
        ["network", "create", "--subnet", "10.61.0.0/16", "overlapping"],
        ["network", "create", "--subnet", "10.62.0.0/24", "--gateway", "10.63.0.1", "bad"],
        ["network", "rm", "nosuchnet"],
        ["rm", "nosuchone"],
    ],
    ids=lambda a: " ".join(a),
)
def test_errors_as_docker_prints_them(h: LabHost, args: list[str]) -> None:
    mine, theirs, click = tether(h, *args), docker(h, *args), tether(h, *args, fast=False)
    assert (mine.returncode, mine.stdout, mine.stderr) == (
        click.returncode,
        click.stdout,
        click.stderr,
    )
    assert mine.returncode == theirs.returncode != 0
    assert mine.stdout == theirs.stdout
    assert mine.stderr.splitlines()[0] == theirs.stderr.splitlines()[0]


def test_run_errors_in_tethers_spelling(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "taken", "alpine", "sleep", "1000")
    args = ["run", "-d", "--name", "taken", "alpine"]
    mine, click, theirs = tether(h, *args), tether(h, *args, fast=False), docker(h, *args)
    assert (mine.returncode, mine.stdout, mine.stderr) == (
        click.returncode,
        click.stdout,
        click.stderr,
    )
    assert mine.returncode == theirs.returncode == 125
    assert theirs.stderr.startswith("docker: Error response from daemon: Conflict.")
    assert mine.stderr.startswith("tether: Error response from daemon: Conflict.")
    assert mine.stderr.endswith("\n\nRun 'tether run --help' for more information\n")
    r = tether(h, "run", "-d", "--network", "fastnet", "alpine", "nosuchcommand")
    assert r.returncode == docker(h, "run", "-d", "--network", "fastnet", "alpine",
                                  "nosuchcommand").returncode == 127  # fmt: skip
    assert HEX64.match(r.stdout.strip())
    ok(h, "rm", "-f", "taken")
    ok(h, "container", "prune", "-f")


def test_network_rm_last(h: LabHost) -> None:
    r = tether(h, "network", "rm", "fastnet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "fastnet\n", "")
    assert docker(h, "network", "inspect", "fastnet").returncode == 1
