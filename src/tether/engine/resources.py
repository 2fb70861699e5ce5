"""A container's resources (issue 16, P3): Docker's checks, defaults and update rules.

``check_create`` runs Docker 20.10's ``verifyPlatformContainerResources`` and
``adaptContainerSettings`` on a create's HostConfig (in place, with Docker's texts and
warnings); ``check_update`` does the same for ``POST /containers/{id}/update`` and merges the
body into the record as Docker's ``UpdateContainer`` does; ``resource_spec`` is what the
runtime applies (``tether.contracts.runtime.ResourceSpec``). What this host offers
(``HostLimits``) is read once from its cgroup mounts (cgroup v1 here; v2 files also read).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.contracts.runtime import ResourceSpec
from tether.errors import BadRequest, Conflict

MIN_MEMORY = 6 * 1024 * 1024  # Docker's linuxMinMemory
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
NANO_PERIOD = 100_000  # Docker's CFS period for NanoCpus (100 ms, in µs)

# The resources an update may change (Docker's UpdateContainer), beside RestartPolicy.
UPDATE_FIELDS = (
    "BlkioWeight",
    "CpuShares",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "PidsLimit",
)
INT_FIELDS = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "NanoCpus",
    "BlkioWeight",
    "ShmSize",
    "OomScoreAdj",
)


# Docker's HostConfig in inspect shows these even when the request left them out (a
# docker-py create sends only what it sets)
INSPECT_DEFAULTS: dict[str, Any] = {
    **{k: 0 for k in ("CpuRealtimePeriod", "CpuRealtimeRuntime", "OomScoreAdj")},
    "ShmSize": DEFAULT_SHM_SIZE,
    **{k: 0 for k in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "BlkioWeight")},
    **{k: 0 for k in ("CpuShares", "CpuPeriod", "CpuQuota", "KernelMemory", "KernelMemoryTCP")},
    **{k: "" for k in ("CpusetCpus", "CpusetMems", "PidMode", "UTSMode", "CgroupParent")},
    **{k: None for k in ("MemorySwappiness", "PidsLimit", "Ulimits")},
    "OomKillDisable": False,
    "IpcMode": "private",
    "CgroupnsMode": "host",
}


@dataclass(frozen=True)
class HostLimits:
    """What this host's cgroups offer (Docker's sysinfo)."""

    ncpu: int
    cpus: frozenset[int]
    mems: frozenset[int]
    cpus_text: str
    mems_text: str
    swap_limit: bool = True
    blkio_weight: bool = True
    cgroup_v2: bool = False


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def parse_list(text: str) -> frozenset[int]:
    """A cpuset list (``0-2,4``); ValueError ``invalid format: TEXT`` as Docker's parser."""
    out: set[int] = set()
    if text == "":
        return frozenset()
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"invalid format: {text}")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"invalid format: {text}")
        out.update(range(first, last + 1))
    return frozenset(out)


@functools.cache
def host_limits(cgroup_root: str = "/sys/fs/cgroup") -> HostLimits:
    """This host's figures: CPUs and memory nodes, swap accounting, blkio weight."""
    v1 = os.path.isdir(f"{cgroup_root}/memory")
    cpus = _read(f"{cgroup_root}/cpuset/cpuset.cpus" if v1 else f"{cgroup_root}/cpuset.cpus")
    cpus = cpus or _read("/sys/devices/system/cpu/online")
    mems = _read(f"{cgroup_root}/cpuset/cpuset.mems" if v1 else f"{cgroup_root}/cpuset.mems")
    mems = mems or _read("/sys/devices/system/node/online") or "0"
    if v1:
        swap = os.path.exists(f"{cgroup_root}/memory/memory.memsw.limit_in_bytes")
        blkio = any(
            os.path.exists(f"{cgroup_root}/blkio/{f}") for f in ("blkio.weight", "blkio.bfq.weight")
        )
    else:
        swap = True
        blkio = os.path.exists(f"{cgroup_root}/io.weight") or os.path.exists(
            f"{cgroup_root}/io.bfq.weight"
        )
    return HostLimits(
        ncpu=os.cpu_count() or 1,
        cpus=parse_list(cpus),
        mems=parse_list(mems),
        cpus_text=cpus,
        mems_text=mems,
        swap_limit=swap,
        blkio_weight=blkio,
        cgroup_v2=not v1,
    )


def _ints(hc: Mapping[str, Any], path: str) -> None:
    for key in INT_FIELDS:
        value = hc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadRequest(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                f"{path}.{key} of type int64"
            )
    for key in ("PidsLimit", "MemorySwappiness"):
        value = hc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadRequest(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                f"{path}.{key} of type int64"
            )


def _memory(hc: dict[str, Any], host: HostLimits, update: bool, warn: list[str]) -> None:
    memory = hc.get("Memory") or 0
    swap = hc.get("MemorySwap") or 0
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None  # Docker's fixMemorySwappiness
    if memory != 0 and memory < MIN_MEMORY:
        raise BadRequest("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap != -1 and not host.swap_limit:
        warn.append(
            "Your kernel does not support swap limit capabilities or the cgroup is not "
            "mounted. Memory limited without swap."
        )
        hc["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise BadRequest("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise BadRequest(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise BadRequest(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    reservation = hc.get("MemoryReservation") or 0
    if reservation > 0 and reservation < MIN_MEMORY:
        raise BadRequest("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise BadRequest(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    if hc.get("OomKillDisable") and memory == 0:
        warn.append(
            "OOM killer is disabled for the container, but no memory limit is set, this can "
            "result in the system running out of resources."
        )


def _cpu(hc: dict[str, Any], host: HostLimits) -> None:
    nano = hc.get("NanoCpus") or 0
    period = hc.get("CpuPeriod") or 0
    quota = hc.get("CpuQuota") or 0
    if nano > 0 and period > 0:
        raise BadRequest("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise BadRequest("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > host.ncpu * 1_000_000_000:
        raise BadRequest(
            f"Range of CPUs is from 0.01 to {host.ncpu}.00, as there are only {host.ncpu} "
            "CPUs available"
        )
    if period != 0 and not 1000 <= period <= 1_000_000:
        raise BadRequest(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if quota > 0 and quota < 1000:
        raise BadRequest("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for key, have, have_text, what, nodes in (
        ("CpusetCpus", host.cpus, host.cpus_text, "cpuset cpus", "CPUs"),
        ("CpusetMems", host.mems, host.mems_text, "cpuset mems", "memory nodes"),
    ):
        text = hc.get(key) or ""
        if not isinstance(text, str):
            raise BadRequest(
                f"json: cannot unmarshal number into Go struct field {key} of type string"
            )
        try:
            wanted = parse_list(text)
        except ValueError as exc:
            raise BadRequest(f"Invalid value {text} for {what}: {exc}") from None
        if not wanted <= have:
            raise BadRequest(
                f"Requested {nodes} are not available - requested {text}, available: {have_text}"
            )


def _blkio(hc: dict[str, Any], host: HostLimits, warn: list[str]) -> None:
    weight = hc.get("BlkioWeight") or 0
    if weight > 0 and not host.blkio_weight:
        warn.append(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
            "Weight discarded."
        )
        hc["BlkioWeight"] = weight = 0
    if weight > 0 and not 10 <= weight <= 1000:
        raise BadRequest("Range of blkio weight is from 10 to 1000")


def verify_resources(
    hc: dict[str, Any], host: HostLimits, update: bool = False, path: str = "HostConfig"
) -> list[str]:
    """Docker's verifyPlatformContainerResources on ``hc`` (changed in place): the warnings."""
    _ints(hc, path)
    warn: list[str] = []
    _memory(hc, host, update, warn)
    _cpu(hc, host)
    _blkio(hc, host, warn)
    pids = hc.get("PidsLimit")
    if pids is not None and pids <= 0 and not update:
        hc["PidsLimit"] = None  # 0 and -1: unlimited, shown as null
    return warn


def check_create(hc: dict[str, Any], host: HostLimits) -> list[str]:
    """A create's resources checked and given Docker's defaults (in place): the warnings."""
    warnings = verify_resources(hc, host)
    shm = hc.get("ShmSize") or 0
    if shm < 0:
        raise BadRequest("SHM size can not be less than 0")
    adj = hc.get("OomScoreAdj") or 0
    if not -1000 <= adj <= 1000:
        raise BadRequest(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    # adaptContainerSettings
    memory = hc.get("Memory") or 0
    if memory > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = memory * 2
    if shm == 0:
        hc["ShmSize"] = DEFAULT_SHM_SIZE
    hc["OomKillDisable"] = bool(hc.get("OomKillDisable"))
    return warnings


def _conflict(text: str) -> Conflict:
    return Conflict(text)


def touches(body: Mapping[str, Any]) -> bool:
    """Whether an update body changes a resource (then a running container's cgroup)."""
    return any(body.get(k) not in (None, 0, "") for k in UPDATE_FIELDS)


def check_update(
    cid: str, current: dict[str, Any], body: dict[str, Any], host: HostLimits
) -> tuple[dict[str, Any], list[str]]:
    """An update body checked (Docker's verify with ``update``) and merged into a copy of
    ``current`` (Docker's UpdateContainer): ``(new host config, warnings)``."""
    sent = {k: body.get(k) for k in UPDATE_FIELDS if body.get(k) is not None}
    warnings = verify_resources(sent, host, update=True, path="UpdateConfig")
    out = dict(current)
    nano = sent.get("NanoCpus") or 0
    period = sent.get("CpuPeriod") or 0
    quota = sent.get("CpuQuota") or 0
    for bad, text in (
        (nano > 0 and (current.get("CpuPeriod") or 0) > 0, "CPU Period"),
        (nano > 0 and (current.get("CpuQuota") or 0) > 0, "CPU Quota"),
        (period > 0 and (current.get("NanoCpus") or 0) > 0, "CPU Period"),
        (quota > 0 and (current.get("NanoCpus") or 0) > 0, "CPU Quota"),
    ):
        if bad:
            raise _conflict(
                f"Cannot update container {cid}: Conflicting options: {text} cannot be "
                "updated as NanoCPUs has already been set"
            )
    for key in UPDATE_FIELDS:
        value = sent.get(key)
        if key == "PidsLimit":
            if value is not None:
                out[key] = value if value > 0 else None
        elif value:
            out[key] = value
    memory = sent.get("Memory") or 0
    cur_swap = current.get("MemorySwap") or 0
    if memory and cur_swap > 0 and memory > cur_swap and not sent.get("MemorySwap"):
        raise _conflict(
            f"Cannot update container {cid}: Memory limit should be smaller than already set "
            "memoryswap limit, update the memoryswap at the same time"
        )
    new_mem, new_swap = out.get("Memory") or 0, out.get("MemorySwap") or 0
    if new_mem > 0 and new_swap > 0 and new_swap < new_mem:
        raise BadRequest("Minimum memoryswap limit should be larger than memory limit, see usage")
    return out, warnings


def resource_spec(hc: Mapping[str, Any]) -> ResourceSpec:
    """What the runtime applies for a container's (checked) HostConfig."""
    nano = hc.get("NanoCpus") or 0
    quota, period = hc.get("CpuQuota") or 0, hc.get("CpuPeriod") or 0
    if nano > 0:
        period = NANO_PERIOD
        quota = nano * NANO_PERIOD // 1_000_000_000
    pids = hc.get("PidsLimit")
    return ResourceSpec(
        memory=hc.get("Memory") or 0,
        memory_swap=hc.get("MemorySwap") or 0,
        memory_reservation=hc.get("MemoryReservation") or 0,
        memory_swappiness=hc.get("MemorySwappiness"),
        oom_kill_disable=bool(hc.get("OomKillDisable")),
        cpu_shares=hc.get("CpuShares") or 0,
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=hc.get("CpusetCpus") or "",
        cpuset_mems=hc.get("CpusetMems") or "",
        pids_limit=pids if isinstance(pids, int) and pids > 0 else 0,
        blkio_weight=hc.get("BlkioWeight") or 0,
    )
