"""Issue 16 (P3): resource and namespace fields: Docker's checks, defaults and texts, the
OCI spec they make, and ``docker update`` through the engine with the fake runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_container_controller import aio, started

from tether.contracts.runtime import NamespaceSpec, ResourceSpec
from tether.engine import namespaces, resources
from tether.engine.record import Container, State
from tether.engine.resources import HostLimits, check_create, check_update, resource_spec
from tether.errors import BadRequest, Conflict, NotFound
from tether.runtime.oci import apply_limits, build_spec, oci_resources

MiB = 1024 * 1024
HOST = HostLimits(
    ncpu=2,
    cpus=frozenset({0, 1}),
    mems=frozenset({0}),
    cpus_text="0-1",
    mems_text="0",
    swap_limit=True,
    blkio_weight=False,
)


def refused(hc: dict[str, Any]) -> str:
    with pytest.raises(BadRequest) as exc:
        check_create(hc, HOST)
    return exc.value.message


def test_memory_defaults_as_docker() -> None:
    hc: dict[str, Any] = {"Memory": 64 * MiB, "MemorySwappiness": -1}
    assert check_create(hc, HOST) == []
    assert hc["MemorySwap"] == 128 * MiB  # twice the memory
    assert hc["MemorySwappiness"] is None
    assert hc["ShmSize"] == 64 * MiB
    assert hc["OomKillDisable"] is False
    unlimited: dict[str, Any] = {"Memory": 64 * MiB, "MemorySwap": -1}
    check_create(unlimited, HOST)
    assert unlimited["MemorySwap"] == -1


@pytest.mark.parametrize(
    ("hc", "text"),
    [
        ({"Memory": MiB}, "Minimum memory limit allowed is 6MB"),
        (
            {"Memory": 64 * MiB, "MemorySwap": 32 * MiB},
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            {"MemorySwap": 64 * MiB},
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
        ({"MemoryReservation": MiB}, "Minimum memory reservation allowed is 6MB"),
        (
            {"Memory": 8 * MiB, "MemoryReservation": 16 * MiB},
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            {"NanoCpus": 500_000_000, "CpuPeriod": 100000},
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            {"NanoCpus": 500_000_000, "CpuQuota": 100000},
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            {"NanoCpus": 3_000_000_000},
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            {"CpuPeriod": 500},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"CpusetCpus": "1-x"}, "Invalid value 1-x for cpuset cpus: invalid format: 1-x"),
        (
            {"CpusetCpus": "0,3"},
            "Requested CPUs are not available - requested 0,3, available: 0-1",
        ),
        (
            {"CpusetMems": "1"},
            "Requested memory nodes are not available - requested 1, available: 0",
        ),
        ({"ShmSize": -1}, "SHM size can not be less than 0"),
        ({"OomScoreAdj": -1001}, "Invalid value -1001, range for oom score adj is [-1000, 1000]"),
        (
            {"Memory": "64m"},
            "json: cannot unmarshal str into Go struct field HostConfig.Memory of type int64",
        ),
    ],
)
def test_dockers_texts(hc: dict[str, Any], text: str) -> None:
    assert refused(hc) == text


def test_blkio_weight_discarded_with_dockers_warning_when_the_kernel_has_none() -> None:
    hc: dict[str, Any] = {"BlkioWeight": 500}
    assert check_create(hc, HOST) == [
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
        "Weight discarded."
    ]
    assert hc["BlkioWeight"] == 0
    with_weight = HostLimits(2, frozenset({0, 1}), frozenset({0}), "0-1", "0")
    with pytest.raises(BadRequest, match="Range of blkio weight is from 10 to 1000"):
        check_create({"BlkioWeight": 5}, with_weight)


def test_resource_spec_and_nano_cpus() -> None:
    hc: dict[str, Any] = {"Memory": 64 * MiB, "NanoCpus": 1_500_000_000, "PidsLimit": 10}
    check_create(hc, HOST)
    r = resource_spec(hc)
    assert (r.memory, r.memory_swap, r.cpu_period, r.cpu_quota, r.pids_limit) == (
        64 * MiB,
        128 * MiB,
        100_000,
        150_000,
        10,
    )
    unlimited: dict[str, Any] = {"PidsLimit": -1}
    check_create(unlimited, HOST)
    assert unlimited["PidsLimit"] is None and resource_spec(unlimited).pids_limit == 0


def test_update_rules() -> None:
    cur = {"Memory": 64 * MiB, "MemorySwap": 128 * MiB, "NanoCpus": 0, "CpuPeriod": 50000}
    new, warnings = check_update("c1", cur, {"Memory": 96 * MiB, "CpuShares": 0}, HOST)
    assert new["Memory"] == 96 * MiB and new["MemorySwap"] == 128 * MiB and warnings == []
    assert cur["Memory"] == 64 * MiB  # a copy
    with pytest.raises(Conflict, match="Memory limit should be smaller than already set"):
        check_update("c1", cur, {"Memory": 256 * MiB}, HOST)
    new, _ = check_update("c1", cur, {"Memory": 256 * MiB, "MemorySwap": -1}, HOST)
    assert new["MemorySwap"] == -1
    with pytest.raises(Conflict, match="CPU Period cannot be updated as NanoCPUs"):
        check_update("c1", cur, {"NanoCpus": 500_000_000}, HOST)
    with pytest.raises(BadRequest, match="Minimum memory limit allowed is 6MB"):
        check_update("c1", cur, {"Memory": MiB}, HOST)
    assert resources.touches({"Memory": 0, "CpuShares": 0, "RestartPolicy": {}}) is False
    assert resources.touches({"PidsLimit": 20}) is True


def test_namespace_modes_and_ulimits() -> None:
    hc: dict[str, Any] = {}
    namespaces.check_create(hc, {})
    assert (hc["IpcMode"], hc["CgroupnsMode"], hc["PidMode"], hc["UTSMode"]) == (
        "private",
        "host",
        "",
        "",
    )
    for bad, text in (
        ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
        ({"PidMode": "container:"}, "invalid PID mode: container:"),
        ({"UTSMode": "container:x"}, "invalid UTS mode: container:x"),
        ({"CgroupnsMode": "x"}, "invalid cgroup namespace mode: x"),
        ({"Ulimits": [{"Name": "nofiles", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: nofiles"),
        (
            {"Ulimits": [{"Name": "nofile", "Soft": 2, "Hard": 1}]},
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1",
        ),
    ):
        with pytest.raises(BadRequest) as exc:
            namespaces.check_create(dict(bad), {})
        assert exc.value.message == text
    with pytest.raises(BadRequest, match="conflicting options: hostname and the UTS mode"):
        namespaces.check_create({"UTSMode": "host"}, {"Hostname": "x"})


def _container(cid: str, hc: dict[str, Any], status: str = "running", pid: int = 0) -> Container:
    return Container(
        id=cid,
        name=cid,
        created="",
        image="a",
        image_id="i",
        config={},
        host_config=hc,
        network_mode="default",
        state=State(status=status, pid=pid),
    )


def test_namespace_spec_joins_other_containers() -> None:
    donor = _container("d" * 64, {"IpcMode": "shareable"}, pid=42)
    private = _container("p" * 64, {"IpcMode": "private"}, pid=43)
    stopped = _container("s" * 64, {}, status="exited")
    table = {"donor": donor, "private": private, "stopped": stopped}

    def shm(c: Container) -> str:
        return f"/files/{c.id[:1]}/shm"

    c = _container(
        "c" * 64,
        {
            "PidMode": "container:donor",
            "IpcMode": "container:donor",
            "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 100}],
            "ShmSize": MiB,
            "OomScoreAdj": 500,
            "Init": True,
        },
    )
    ns = namespaces.namespace_spec(c, table.get, shm)
    assert ns == NamespaceSpec(
        pid="/proc/42/ns/pid",
        ipc="/proc/42/ns/ipc",
        shm="/files/d/shm",
        shm_size=MiB,
        rlimits=(("RLIMIT_NOFILE", 100, 100),),
        oom_score_adj=500,
        init=True,
    )
    with pytest.raises(NotFound, match="cannot join PID of a non running container: nosuch"):
        namespaces.namespace_spec(_container("x", {"PidMode": "container:nosuch"}), table.get, shm)
    with pytest.raises(Conflict, match=f"container {'s' * 64} is not running"):
        namespaces.namespace_spec(_container("x", {"PidMode": "container:stopped"}), table.get, shm)
    with pytest.raises(Conflict, match="non-shareable IPC"):
        namespaces.namespace_spec(_container("x", {"IpcMode": "container:private"}), table.get, shm)
    host = namespaces.namespace_spec(
        _container("x", {"PidMode": "host", "IpcMode": "host", "UTSMode": "host"}), table.get, shm
    )
    assert (host.pid, host.ipc, host.uts, host.shm) == ("host", "host", "host", "/dev/shm")


def test_oci_spec_of_limits_and_namespaces() -> None:
    spec = build_spec(args=["sleep", "1"], rootfs="/r", hostname="h", cgroups_path="/tether/x")
    r = ResourceSpec(memory=64 * MiB, memory_swap=-1, cpu_shares=512, pids_limit=10)
    ns = NamespaceSpec(
        pid="host",
        ipc="/proc/42/ns/ipc",
        uts="host",
        shm_size=MiB,
        cgroup_ns=True,
        rlimits=(("RLIMIT_NOFILE", 100, 100),),
        oom_score_adj=500,
        init=True,
    )
    apply_limits(spec, r, ns, "/usr/bin/tini-static")
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 64 * MiB, "swap": -1}
    assert res["cpu"] == {"shares": 512} and res["pids"] == {"limit": 10}
    assert res["devices"]  # the default device rules stay
    kinds = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert "pid" not in kinds and "uts" not in kinds and "hostname" not in spec
    assert kinds["ipc"] == "/proc/42/ns/ipc" and "cgroup" in kinds
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={MiB}" in shm["options"] and "size=67108864" not in shm["options"]
    p = spec["process"]
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}]
    assert p["oomScoreAdj"] == 500
    assert p["args"] == ["/sbin/docker-init", "--", "sleep", "1"]
    init = next(m for m in spec["mounts"] if m["destination"] == "/sbin/docker-init")
    assert init["source"] == "/usr/bin/tini-static" and "ro" in init["options"]
    none = build_spec(args=["sh"], rootfs="/r")
    apply_limits(none, ResourceSpec(), NamespaceSpec(shm="none"))
    assert not any(m["destination"] == "/dev/shm" for m in none["mounts"])
    assert oci_resources(ResourceSpec()) == {}


# ---------------------------------------------------------------- through the controller


@aio
async def test_run_writes_limits_and_update_applies_them(tmp_path: Path) -> None:
    w = await started(tmp_path)
    try:
        body: dict[str, Any] = {
            "Image": "alpine",
            "HostConfig": {"Memory": 64 * MiB, "PidsLimit": 10},
        }
        namespaces.check_run_options(body)
        c = await w.ctl.create(body, "lim")
        await w.ctl.start_container(c.id)
        spec = json.loads((w.ctl.files_dir(c) / "bundle" / "config.json").read_text())
        assert spec["linux"]["resources"]["memory"] == {"limit": 64 * MiB, "swap": 128 * MiB}
        assert spec["linux"]["resources"]["pids"] == {"limit": 10}
        warnings = await w.ctl.update(c.id, {"Memory": 96 * MiB, "PidsLimit": -1})
        assert warnings == []
        assert c.host_config["Memory"] == 96 * MiB and c.host_config["PidsLimit"] is None
        (applied,) = w.rt.updates[c.id]
        assert (applied.memory, applied.pids_limit) == (96 * MiB, -1)
        # a refusal changes nothing, a runtime failure neither
        with pytest.raises(Conflict):
            await w.ctl.update(c.id, {"Memory": 512 * MiB})
        w.rt.fail["update"] = Conflict("device or resource busy")
        with pytest.raises(Exception, match=f"Cannot update container {c.id}: device or"):
            await w.ctl.update(c.id, {"Memory": 32 * MiB})
        assert c.host_config["Memory"] == 96 * MiB
        # the restart policy alone: no cgroup change; an empty policy leaves it alone
        await w.ctl.update(c.id, {"RestartPolicy": {"Name": "always"}})
        await w.ctl.update(c.id, {"RestartPolicy": {"Name": ""}, "Memory": 0})
        assert c.host_config["RestartPolicy"]["Name"] == "always"
        assert len(w.rt.updates[c.id]) == 1
    finally:
        await w.close()
