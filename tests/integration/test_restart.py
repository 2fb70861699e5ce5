"""Restart policies and containers that outlive the daemon, through the real docker CLI.

One lab host; every wait is bounded (``wait_until``); nothing asserts on durations.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import docker, wait_until
from .restart_helpers import check_consistent, import_image, inspect, status


@pytest.fixture(scope="module")
def lab(module_lab_factory, tmp_path_factory) -> Lab:  # type: ignore[no-untyped-def]
    lab = module_lab_factory(["host1"], daemons=True)
    import_image(lab.host("host1"), tmp_path_factory.mktemp("img"))
    return lab


@pytest.fixture(scope="module")
def h(lab: Lab) -> LabHost:
    return lab.host("host1")


def run(h: LabHost, *args: str) -> str:
    r = docker(h, "run", "-d", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def pid_of(h: LabHost, ref: str) -> int:
    return int(inspect(h, ref)["State"]["Pid"])


def test_on_failure_three_then_exited(h: LabHost) -> None:
    run(h, "--name", "flaky", "--restart", "on-failure:3", "alpine", "sh", "-c", "exit 1")
    wait_until(
        lambda: (
            docker(
                h, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky"
            ).stdout.strip()
            == "3 exited"
        ),
        timeout=20,
        what="flaky to give up after 3 restarts",
    )
    info = inspect(h, "flaky")
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert info["State"]["ExitCode"] == 1
    time.sleep(1)  # nothing more happens afterwards
    assert docker(h, "inspect", "-f", "{{.RestartCount}}", "flaky").stdout.strip() == "3"


def test_on_failure_zero_exit_is_not_restarted(h: LabHost) -> None:
    run(h, "--name", "okexit", "--restart", "on-failure", "alpine", "true")
    wait_until(lambda: status(h, "okexit") == "exited", timeout=10, what="okexit to exit")
    time.sleep(0.5)
    assert inspect(h, "okexit")["RestartCount"] == 0


def test_update_restart_policy(h: LabHost) -> None:
    run(h, "--name", "upd", "alpine", "sleep", "1000")
    assert inspect(h, "upd")["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    r = docker(h, "update", "--restart", "always", "upd")
    assert r.returncode == 0, r.stderr
    assert inspect(h, "upd")["HostConfig"]["RestartPolicy"]["Name"] == "always"
    pid = pid_of(h, "upd")
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: status(h, "upd") == "running" and pid_of(h, "upd") not in (0, pid),
        timeout=10,
        what="upd restarted after policy update",
    )
    docker(h, "rm", "-f", "upd", check=True)


def test_host_kill_restarts_with_same_identity(h: LabHost) -> None:
    docker(h, "network", "create", "--subnet", "10.61.0.0/24", "rnet", check=True)
    cid = run(
        h,
        "--name",
        "svc",
        "--network",
        "rnet",
        "--ip",
        "10.61.0.50",
        "-p",
        "18080:80",
        "--restart",
        "always",
        "alpine",
        "sleep",
        "1000",
    )
    run(h, "--name", "client", "--network", "rnet", "alpine", "sleep", "1000")
    before = inspect(h, "svc")
    pid = before["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: status(h, "svc") == "running" and pid_of(h, "svc") != pid,
        timeout=10,
        what="svc to run again",
    )
    after = inspect(h, "svc")
    assert after["Id"] == cid and after["Name"] == "/svc"
    assert after["RestartCount"] == 1
    net = after["NetworkSettings"]["Networks"]["rnet"]
    assert net["IPAddress"] == "10.61.0.50"
    assert net["MacAddress"] == before["NetworkSettings"]["Networks"]["rnet"]["MacAddress"]
    assert after["NetworkSettings"]["Ports"] == before["NetworkSettings"]["Ports"]
    addr = docker(h, "exec", "svc", "ip", "addr", "show", "eth0").stdout
    assert "10.61.0.50/24" in addr
    wait_until(
        lambda: "10.61.0.50" in docker(h, "exec", "client", "nslookup", "svc").stdout,
        timeout=10,
        what="svc's name to resolve again",
    )
    assert check_consistent(h) == []


def test_stop_and_kill_never_restart(h: LabHost) -> None:
    run(h, "--name", "st", "--restart", "always", "alpine", "sleep", "1000")
    run(h, "--name", "kl", "--restart", "always", "alpine", "sleep", "1000")
    docker(h, "stop", "-t", "1", "st", check=True)
    docker(h, "kill", "kl", check=True)
    time.sleep(1)  # a restart would have happened after 100 ms
    for name in ("st", "kl"):
        info = inspect(h, name)
        assert info["State"]["Status"] == "exited", name
        assert info["RestartCount"] == 0, name


def test_stop_cancels_a_pending_restart(h: LabHost) -> None:
    run(h, "--name", "loop", "--restart", "always", "alpine", "sh", "-c", "exit 3")
    wait_until(
        lambda: inspect(h, "loop")["RestartCount"] >= 3, timeout=20, what="loop to crash-loop"
    )
    docker(h, "stop", "loop", check=True)
    wait_until(lambda: status(h, "loop") == "exited", timeout=10, what="loop to stay exited")
    count = inspect(h, "loop")["RestartCount"]
    time.sleep(1)
    assert status(h, "loop") == "exited"
    assert inspect(h, "loop")["RestartCount"] == count
    assert check_consistent(h) == []


def test_daemon_kill9_adopts_and_restarts(lab: Lab, h: LabHost) -> None:
    run(h, "--name", "keep", "--restart", "always", "alpine", "sleep", "1000")
    run(h, "--name", "dies", "--restart", "always", "alpine", "sleep", "1000")
    run(h, "--name", "plain", "alpine", "sleep", "1000")
    run(h, "--name", "us", "--restart", "unless-stopped", "alpine", "sleep", "1000")
    docker(h, "stop", "-t", "0", "us", check=True)
    keep_pid, dies_pid, plain_pid = (pid_of(h, n) for n in ("keep", "dies", "plain"))
    lab.stop_daemon("host1", kill9=True)
    os.kill(dies_pid, signal.SIGKILL)
    for pid in (keep_pid, plain_pid):
        assert Path(f"/proc/{pid}").exists(), "containers keep running without the daemon"
    lab.start_daemon("host1")
    assert pid_of(h, "keep") == keep_pid and status(h, "keep") == "running"
    assert pid_of(h, "plain") == plain_pid and status(h, "plain") == "running"
    wait_until(
        lambda: status(h, "dies") == "running" and pid_of(h, "dies") != dies_pid,
        timeout=10,
        what="dies restarted by policy",
    )
    time.sleep(0.5)
    assert status(h, "us") == "exited", "unless-stopped stopped by the user stays stopped"
    assert check_consistent(h) == []


def test_clean_daemon_stop_keeps_containers(lab: Lab, h: LabHost) -> None:
    run(h, "--name", "live", "--restart", "always", "alpine", "sleep", "1000")
    run(h, "--name", "boot", "--restart", "always", "alpine", "sleep", "1000")
    live_pid, boot_pid = pid_of(h, "live"), pid_of(h, "boot")
    lab.stop_daemon("host1")  # SIGTERM: the daemon must not stop containers
    assert Path(f"/proc/{live_pid}").exists()
    os.kill(boot_pid, signal.SIGKILL)  # as after a host reboot: the container is gone
    lab.start_daemon("host1")
    assert pid_of(h, "live") == live_pid
    wait_until(lambda: status(h, "boot") == "running", timeout=10, what="always container back")
    assert check_consistent(h) == []
