"""The lab itself: hosts on an underlay, teardown that leaves nothing, etcd, daemons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tether.lab import naming, probe
from tether.lab.lab import Lab, LabError

from .helpers import (
    LabFactory,
    in_host,
    lab_netns,
    mounts_mentioning,
    pid_alive,
    ping,
    root_links,
    unique_lab_name,
    wait_until,
)

pytestmark = pytest.mark.lab

FAKE_DAEMON = [sys.executable, str(Path(__file__).with_name("fake_daemon.py"))]


def test_hosts_reach_each_other_over_the_underlay(lab_factory: LabFactory) -> None:
    before = root_links()
    lab = lab_factory(["host1", "host2"], daemons=False)
    h1, h2 = lab.host("host1"), lab.host("host2")
    assert (h1.address, h2.address) == ("198.18.0.11", "198.18.0.12")
    for h in (h1, h2):
        addr = in_host(h, "ip", "-br", "addr", "show", "dev", "eth0", check=True).stdout
        assert f"{h.address}/24" in addr
        assert " UP " in addr
        lo = in_host(h, "ip", "-br", "link", "show", "dev", "lo", check=True).stdout
        assert "UP" in lo
    assert ping(h1, h2.address)
    assert ping(h2, h1.address)
    assert not ping(h1, "198.18.0.99")  # nobody there: the test can fail
    assert root_links() == before  # nothing was created in the root namespace


def test_hosts_are_separate_namespaces(lab_factory: LabFactory) -> None:
    lab = lab_factory(["docker201", "docker202"], daemons=False)
    a, b = lab.host("docker201"), lab.host("docker202")
    assert a.netns.startswith(naming.NETNS_PREFIX) and a.netns != b.netns
    assert os.stat(a.netns_path).st_ino != os.stat(b.netns_path).st_ino
    assert os.stat(a.netns_path).st_ino != os.stat("/proc/self/ns/net").st_ino
    # `run` joins only the network namespace: /sys/fs/cgroup stays visible (runc needs it)
    r = in_host(a, "ls", "/sys/fs/cgroup", check=True)
    assert r.stdout.strip()


def test_down_removes_everything_and_is_idempotent() -> None:
    name = unique_lab_name()
    links_before = root_links()
    try:
        lab = Lab.up(name, ["host1", "host2"], daemons=False)
        namespaces = lab_netns(name)
        assert len(namespaces) == 3  # two hosts and the underlay
        assert naming.state_file(name).exists()
        assert name in Lab.list()
        lab.down()
        assert lab_netns(name) == []
        assert not naming.state_file(name).exists()
        assert not naming.lab_dir(name).exists()
        assert name not in Lab.list()
        assert mounts_mentioning([*namespaces, str(naming.lab_dir(name))]) == []
        assert root_links() == links_before
        lab.down()  # twice is fine
        assert Lab.destroy(name) is False
    finally:
        Lab.destroy(name)


def test_up_refuses_an_existing_lab(lab_factory: LabFactory) -> None:
    lab = lab_factory(["host1"], daemons=False)
    with pytest.raises(LabError, match="already exists"):
        Lab.up(lab.name, ["host1"], daemons=False)
    assert lab.host("host1").run(["true"]).returncode == 0  # untouched


def test_etcd_answers_on_its_endpoint(lab_factory: LabFactory) -> None:
    lab = lab_factory(["host1"], etcd=True, daemons=False)
    assert lab.etcd_endpoint == "198.18.0.2:2379"
    h1 = lab.host("host1")
    url = f"http://{lab.etcd_endpoint}/health"

    def health_from_host1() -> tuple[int, str] | None:
        return probe.http_get_in_netns(h1.netns, url, timeout=2.0)

    r = health_from_host1()
    assert r is not None and r[0] == 200 and '"health":"true"' in r[1].replace(" ", "")
    lab.stop_etcd()
    assert health_from_host1() is None
    assert not lab.etcd_healthy()
    lab.start_etcd()
    assert lab.etcd_healthy()
    etcd_pid = Lab.load(lab.name)._state.etcd.pid  # type: ignore[union-attr]
    lab.down()
    wait_until(lambda: not pid_alive(etcd_pid), 5, what="etcd to exit")


def test_add_and_remove_host(lab_factory: LabFactory) -> None:
    lab = lab_factory(["host1", "host2"], daemons=False)
    h3 = lab.add_host("host3")
    assert h3.address == "198.18.0.13"
    assert ping(h3, lab.host("host1").address)
    netns = h3.netns
    lab.remove_host("host3")
    assert netns not in lab_netns(lab.name) and "host3" not in lab.hosts
    assert not ping(lab.host("host1"), "198.18.0.13")
    assert ping(lab.host("host1"), lab.host("host2").address)
    ul = subprocess.run(
        ["ip", "-n", lab.underlay_netns, "-br", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert "h13" not in ul and "h11" in ul
    h4 = lab.add_host("host4")  # the freed address is reused
    assert h4.address == "198.18.0.13"
    with pytest.raises(LabError, match="already has"):
        lab.add_host("host4")


def _helper_pids(exec_root: str) -> tuple[int, int]:
    conmon, container = Path(exec_root, "helpers.done").read_text().split()
    return int(conmon), int(container)


def test_daemon_lifecycle_and_teardown_of_what_it_left(lab_factory: LabFactory) -> None:
    lab = lab_factory(["host1"], daemons=True, daemon_cmd=FAKE_DAEMON)
    h1 = lab.host("host1")
    assert len(h1.socket) < 108
    assert probe.daemon_ready(h1.socket)
    assert h1.docker_env()["DOCKER_HOST"] == f"unix://{h1.socket}"
    first = h1.daemon_pid
    assert first is not None
    # the daemon runs in the host's network namespace
    assert os.stat(f"/proc/{first}/ns/net").st_ino == os.stat(h1.netns_path).st_ino
    conmon, container = _helper_pids(h1.exec_root)
    assert pid_alive(conmon) and pid_alive(container)

    lab.restart_daemon("host1", kill9=True)
    second = h1.daemon_pid
    assert second is not None and second != first and not pid_alive(first)
    assert pid_alive(conmon) and pid_alive(container)  # a daemon crash keeps "containers"
    assert probe.daemon_ready(h1.socket)

    lab.restart_daemon("host1")  # SIGTERM path
    assert probe.daemon_ready(h1.socket)

    lab.down()
    for pid in (h1.daemon_pid or second, conmon, container):
        wait_until(lambda p=pid: not pid_alive(p), 5, what=f"pid {pid} to exit")
    assert mounts_mentioning([lab.dir, h1.netns]) == []
    assert lab_netns(lab.name) == []


def test_failed_daemon_start_reports_its_log_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_DAEMON_FAIL", "1")
    name = unique_lab_name()
    try:
        with pytest.raises(LabError, match="boom, cannot start"):
            Lab.up(name, ["host1"], daemons=True, daemon_cmd=FAKE_DAEMON, daemon_timeout=10)
        assert lab_netns(name) == []
        assert not naming.state_file(name).exists()
        assert not naming.lab_dir(name).exists()
    finally:
        Lab.destroy(name)


def test_cli_up_exec_ls_down() -> None:
    name = unique_lab_name()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(naming.__file__).resolve().parents[2])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tether.lab.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    try:
        r = cli("up", name, "--host", "docker201", "--host", "docker202", "--no-daemons")
        assert r.returncode == 0, r.stderr
        assert "198.18.0.12" in r.stdout
        assert name in cli("ls", "-q").stdout.split()
        r = cli("exec", name, "docker201", "--", "busybox", "ping", "-c1", "-W1", "198.18.0.12")
        assert r.returncode == 0, r.stdout + r.stderr
        r = cli("exec", name, "docker202", "--", "sh", "-c", "echo $DOCKER_HOST; exit 7")
        assert r.returncode == 7
        assert r.stdout.strip() == f"unix://{naming.host_dir(name, 'docker202')}/exec/tether.sock"
        r = cli("exec", name, "nohost", "--", "true")
        assert r.returncode != 0 and "no host 'nohost'" in r.stderr
        assert cli("down", name).returncode == 0
        assert lab_netns(name) == []
        assert cli("down", name).returncode == 0
    finally:
        Lab.destroy(name)


def test_macvlan_and_vxlan_work_across_hosts_on_the_underlay(lab_factory: LabFactory) -> None:
    """The underlay carries what multi-host drivers need: macvlan frames and VXLAN."""
    lab = lab_factory(["host1", "host2"], daemons=False)
    hosts = [lab.host("host1"), lab.host("host2")]
    for i, h in enumerate(hosts, start=1):
        ns = h.netns
        for cmd in (
            ["link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge"],
            ["addr", "add", f"198.19.1.{i}/24", "dev", "mv0"],
            ["link", "set", "mv0", "up"],
            ["link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
             "local", h.address, "dev", "eth0"],
            ["addr", "add", f"198.19.2.{i}/24", "dev", "vx0"],
            ["link", "set", "vx0", "up"],
        ):  # fmt: skip
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        peer = hosts[2 - i]
        subprocess.run(
            ["bridge", "-n", ns, "fdb", "append", "00:00:00:00:00:00", "dev", "vx0",
             "dst", peer.address],
            check=True,
        )  # fmt: skip
    assert ping(hosts[0], "198.19.1.2")
    assert ping(hosts[1], "198.19.1.1")
    assert ping(hosts[0], "198.19.2.2")
    assert ping(hosts[1], "198.19.2.1")


def test_lab1_daemon_answers_the_docker_cli(lab1: Lab, docker: Any) -> None:
    h1 = lab1.host("host1")
    assert probe.daemon_ready(h1.socket)
    r = docker(h1, "version", "--format", "{{.Server.APIVersion}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1.41"
    r = docker(h1, "network", "ls", "--format", "{{.Name}}")
    assert r.returncode == 0, r.stderr
    assert {"bridge", "host", "none"} <= set(r.stdout.split())


def test_down_survives_things_already_gone() -> None:
    name = unique_lab_name()
    try:
        lab = Lab.up(name, ["host1", "host2"], daemons=False)
        h1 = lab.host("host1")
        subprocess.run(["ip", "netns", "delete", h1.netns], check=True)
        subprocess.run(["rm", "-rf", lab.host("host2").dir], check=True)
        sleeper = lab.host("host2").popen(["sleep", "1000"])
        again = Lab.load(name)  # as `tether lab down` in another process would
        again.down()
        assert lab_netns(name) == []
        assert not naming.state_file(name).exists()
        wait_until(lambda: sleeper.poll() is not None, 5, what="process in host2 to be killed")
    finally:
        Lab.destroy(name)
