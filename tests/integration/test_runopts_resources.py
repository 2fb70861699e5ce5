"""Issue 16 (P3): resource and namespace run options through the real docker CLI, each
checked where it takes effect: inside the container (its cgroup files, ``ulimit``, ``df``,
``/proc``) or in the container's cgroup on the host (``/sys/fs/cgroup/<ctl>/tether/<id>``),
and shown back by ``docker inspect`` as Docker 20.10 shows it.

One lab per module, busybox imported as ``alpine``. This host: cgroup v1 (hybrid), runc.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tether.lab.lab import LabHost

from .helpers import docker, docker_fails, docker_ok
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

A = "alpine"
MiB = 1024 * 1024


ok = docker_ok


def fails(host: LabHost, *args: str, code: int = 125) -> str:
    return docker_fails(host, *args, code=code)


def hc(host: LabHost, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(host, "inspect", name))[0]["HostConfig"]
    return data


def cid(host: LabHost, name: str) -> str:
    return ok(host, "inspect", "-f", "{{.Id}}", name).strip()


def host_cgroup(host: LabHost, name: str, ctl: str, fname: str) -> str:
    """A control file of the container's cgroup, read from the host side."""
    return (Path("/sys/fs/cgroup") / ctl / "tether" / cid(host, name) / fname).read_text().strip()


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    return host1


def test_memory_limit_in_the_cgroup_and_inspect(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "mem", "--memory", "64m", A, "sleep", "300")
    inside = ok(h, "exec", "mem", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(inside) == 64 * MiB
    assert int(host_cgroup(h, "mem", "memory", "memory.limit_in_bytes")) == 64 * MiB
    assert int(host_cgroup(h, "mem", "memory", "memory.memsw.limit_in_bytes")) == 128 * MiB
    conf = hc(h, "mem")
    assert conf["Memory"] == 64 * MiB
    assert conf["MemorySwap"] == 128 * MiB  # Docker: twice the memory when not given
    assert conf["OomKillDisable"] is False
    assert conf["ShmSize"] == 64 * MiB
    assert conf["IpcMode"] == "private"
    assert conf["CgroupnsMode"] == "host"


def test_docker_update_memory_on_a_running_container(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "upd", A, "sleep", "300")
    out = ok(h, "update", "--memory", "96m", "--memory-swap", "200m", "upd")
    assert out.strip() == "upd"
    assert hc(h, "upd")["Memory"] == 96 * MiB
    inside = ok(h, "exec", "upd", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(inside) == 96 * MiB
    ok(h, "update", "--memory", "64m", "upd")
    assert int(host_cgroup(h, "upd", "memory", "memory.limit_in_bytes")) == 64 * MiB
    # Docker's rule: a memory limit above the swap limit needs the swap limit too
    err = fails(h, "update", "--memory", "300m", "upd", code=1)
    assert "Memory limit should be smaller than already set memoryswap limit" in err
    assert hc(h, "upd")["Memory"] == 64 * MiB  # the refusal changed nothing
    ok(h, "update", "--cpus", "0.5", "--pids-limit", "50", "upd")
    assert host_cgroup(h, "upd", "cpu", "cpu.cfs_quota_us") == "50000"
    assert host_cgroup(h, "upd", "pids", "pids.max") == "50"
    conf = hc(h, "upd")
    assert conf["NanoCpus"] == 500_000_000 and conf["PidsLimit"] == 50
    # a stopped container: the record only, applied at the next start
    ok(h, "stop", "-t", "1", "upd")
    ok(h, "update", "--memory", "80m", "upd")
    ok(h, "start", "upd")
    assert int(host_cgroup(h, "upd", "memory", "memory.limit_in_bytes")) == 80 * MiB


def test_dockers_texts_for_bad_values(h: LabHost) -> None:
    assert "Minimum memory limit allowed is 6MB" in fails(h, "run", "--memory", "1m", A, "true")
    err = fails(h, "run", "--cpus", "0.5", "--cpu-period", "100000", A, "true")
    assert "Conflicting options: Nano CPUs and CPU Period cannot both be set" in err
    err = fails(h, "run", "--cpus", "64", A, "true")
    assert "Range of CPUs is from 0.01 to" in err and "CPUs available" in err
    err = fails(h, "run", "--cpuset-cpus", "63", A, "true")
    assert "Requested CPUs are not available - requested 63, available: " in err
    err = fails(h, "run", "--oom-score-adj", "1001", A, "true")
    assert "Invalid value 1001, range for oom score adj is [-1000, 1000]" in err
    # no blkio.weight in this kernel's cgroup: Docker's warning, the weight discarded
    r = docker(h, "run", "--rm", "--blkio-weight", "500", A, "true")
    assert r.returncode == 0 and "Block I/O weight or the cgroup is not mounted" in r.stderr
    err = fails(h, "run", "--memory", "64m", "--memory-swap", "32m", A, "true")
    assert "Minimum memoryswap limit should be larger than memory limit" in err
    assert "--memory" not in ok(h, "ps", "-a", "--format", "{{.Command}}")


def test_cpu_settings_in_the_cgroup(h: LabHost) -> None:
    ok(
        h,
        *("run", "-d", "--name", "cpu", "--cpu-shares", "512", "--cpu-quota", "30000"),
        *("--cpu-period", "60000", "--cpuset-cpus", "0", A, "sleep", "300"),
    )
    assert host_cgroup(h, "cpu", "cpu", "cpu.shares") == "512"
    assert host_cgroup(h, "cpu", "cpu", "cpu.cfs_quota_us") == "30000"
    assert host_cgroup(h, "cpu", "cpu", "cpu.cfs_period_us") == "60000"
    assert host_cgroup(h, "cpu", "cpuset", "cpuset.cpus") == "0"
    conf = hc(h, "cpu")
    assert (conf["CpuShares"], conf["CpuQuota"], conf["CpuPeriod"], conf["CpusetCpus"]) == (
        512,
        30000,
        60000,
        "0",
    )


def test_pids_limit_stops_a_fork_bomb(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "pids", "--pids-limit", "10", A, "sleep", "300")
    script = "for i in $(seq 20); do sleep 30 </dev/null >/dev/null 2>&1 & done; echo end"
    r = docker(h, "exec", "pids", "sh", "-c", script, timeout=20)
    assert "fork" in r.stderr, r.stderr
    assert host_cgroup(h, "pids", "pids", "pids.max") == "10"
    current = int(host_cgroup(h, "pids", "pids", "pids.current"))
    assert current <= 10
    assert hc(h, "pids")["PidsLimit"] == 10


def test_ulimit_shm_size_oom_score_adj(h: LabHost) -> None:
    out = ok(
        h,
        *("run", "--rm", "--ulimit", "nofile=100:100", "--shm-size", "1m"),
        *("--oom-score-adj", "500", A, "sh", "-c"),
        "ulimit -n; df -k /dev/shm | tail -1; cat /proc/self/oom_score_adj",
    )
    lines = out.split("\n")
    assert lines[0] == "100"
    assert lines[1].split()[1] == "1024"  # 1 MiB in 1k blocks
    assert lines[2] == "500"
    # Docker's default /dev/shm: 64 MiB
    out = ok(h, "run", "--rm", A, "sh", "-c", "df -k /dev/shm | tail -1")
    assert out.split()[1] == "65536"
    ok(h, "create", "--name", "ul", "--ulimit", "nofile=100:200", A, "true")
    assert hc(h, "ul")["Ulimits"] == [{"Name": "nofile", "Hard": 200, "Soft": 100}]


def test_pid_host_and_container(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "pidx", A, "sleep", "301")
    # --pid host: the host's processes, the other container's sleep among them
    out = ok(h, "run", "--rm", "--pid", "host", A, "ps", "-o", "pid,args")
    assert "sleep 301" in out and len(out.splitlines()) > 5
    # --pid container:X: X's processes, X's PID 1 is its sleep
    out = ok(h, "run", "--rm", "--pid", "container:pidx", A, "ps", "-o", "pid,args")
    rows = [line.split(None, 1) for line in out.splitlines()[1:]]
    assert ["1", "sleep 301"] in rows
    assert hc(h, "pidx")["PidMode"] == ""
    ok(h, "create", "--name", "pidj", "--pid", "container:pidx", A, "true")
    assert hc(h, "pidj")["PidMode"] == "container:pidx"
    err = fails(h, "run", "--pid", "container:nosuch", A, "true", code=125)
    assert "cannot join PID of a non running container: nosuch" in err
    ok(h, "stop", "-t", "1", "pidx")
    err = fails(h, "start", "pidj", code=1)
    assert "is not running" in err


def test_ipc_and_uts_modes(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "donor", "--ipc", "shareable", A, "sleep", "300")
    ok(h, "exec", "donor", "sh", "-c", "echo hi > /dev/shm/marker")
    out = ok(h, "run", "--rm", "--ipc", "container:donor", A, "cat", "/dev/shm/marker")
    assert out.strip() == "hi"
    ok(h, "run", "-d", "--name", "private", A, "sleep", "300")
    err = fails(h, "run", "--ipc", "container:private", A, "true")
    assert "non-shareable IPC" in err
    out = ok(h, "run", "--rm", "--ipc", "none", A, "sh", "-c", "ls /dev/shm || echo none")
    assert "none" in out or "No such file" in out
    host_name = Path("/proc/sys/kernel/hostname").read_text().strip()
    out = ok(h, "run", "--rm", "--uts", "host", A, "cat", "/proc/sys/kernel/hostname")
    assert out.strip() == host_name
    ok(h, "create", "--name", "utsh", "--uts", "host", "--ipc", "host", A, "true")
    conf = hc(h, "utsh")
    assert (conf["UTSMode"], conf["IpcMode"]) == ("host", "host")


def test_init_is_pid_1_and_reaps(h: LabHost) -> None:
    out = ok(h, "run", "--rm", "--init", A, "ps", "-o", "pid,args")
    rows = [line.split(None, 1) for line in out.splitlines()[1:]]
    assert rows[0][0] == "1" and rows[0][1].startswith("/sbin/docker-init -- ps")
    ok(h, "run", "-d", "--name", "ini", "--init", A, "sleep", "300")
    assert hc(h, "ini")["Init"] is True
    info = json.loads(ok(h, "inspect", "ini"))[0]
    assert info["Path"] == "sleep"  # Docker shows the user's command
    # a signal reaches the command through the init: stop is quick
    t0 = time.monotonic()
    ok(h, "stop", "-t", "10", "ini")
    assert time.monotonic() - t0 < 5
