"""``docker stats``: one runtime sample (``Runtime.stats``) in Docker's JSON shape (v1.41,
cgroup v1 figures as ``daemon/stats_unix.go`` fills them), with the previous sample as
``precpu_stats``/``preread`` (zeros and Go's zero time for the first)."""

from __future__ import annotations

import datetime as dt
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
               "io_time_recursive", "sectors_recursive")  # fmt: skip


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cpu(sample: dict[str, Any] | None) -> dict[str, Any]:
    if sample is None:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    cpu = sample["cgroup"].get("cpu") or {}
    usage = cpu.get("usage") or {}
    thr = cpu.get("throttling") or {}
    return {
        "cpu_usage": {
            "total_usage": int(usage.get("total") or 0),
            "percpu_usage": [int(x) for x in usage.get("percpu") or []] or None,
            "usage_in_kernelmode": int(usage.get("kernel") or 0),
            "usage_in_usermode": int(usage.get("user") or 0),
        },
        "system_cpu_usage": sample["system_cpu_usage"],
        "online_cpus": sample["online_cpus"],
        "throttling_data": {
            "periods": int(thr.get("periods") or 0),
            "throttled_periods": int(thr.get("throttled_periods") or 0),
            "throttled_time": int(thr.get("throttled_time") or 0),
        },
    }


def _memory(sample: dict[str, Any]) -> dict[str, Any]:
    mem = sample["cgroup"].get("memory") or {}
    usage = mem.get("usage") or {}
    limit = int(usage.get("limit") or 0)
    machine = int(sample.get("machine_memory") or 0)
    if machine and limit > machine:
        limit = machine  # no limit set: Docker shows the machine's memory
    return {
        "usage": int(usage.get("usage") or 0),
        "max_usage": int(usage.get("max") or 0),
        "stats": {k: int(v) for k, v in (mem.get("raw") or {}).items()},
        "failcnt": int(usage.get("failcnt") or 0),
        "limit": limit,
    }


def _blkio(sample: dict[str, Any]) -> dict[str, Any]:
    raw = sample["cgroup"].get("blkio") or {}
    out: dict[str, Any] = {}
    for key in _BLKIO_KEYS:
        entries = raw.get(key.replace("_recursive", "Recursive")) or raw.get(key) or []
        out[key] = [
            {"major": int(e.get("major", 0)), "minor": int(e.get("minor", 0)),
             "op": str(e.get("op", "")), "value": int(e.get("value", 0))}
            for e in entries
        ] or None  # fmt: skip
    return out


def stats_json(
    name: str, cid: str, sample: dict[str, Any], prev: dict[str, Any] | None
) -> dict[str, Any]:
    pids = sample["cgroup"].get("pids") or {}
    pids_stats: dict[str, int] = {"current": int(pids.get("current") or 0)}
    if pids.get("limit"):
        pids_stats["limit"] = int(pids["limit"])
    return {
        "read": _rfc3339(sample["read"]),
        "preread": _rfc3339(prev["read"]) if prev is not None else ZERO_TIME,
        "pids_stats": pids_stats,
        "blkio_stats": _blkio(sample),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(sample),
        "precpu_stats": _cpu(prev),
        "memory_stats": _memory(sample),
        "name": "/" + name,
        "id": cid,
        "networks": sample["networks"],
    }


def empty_stats_json(name: str, cid: str) -> dict[str, Any]:
    """What Docker streams for a container that is not running: zeros, Go's zero times."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(None),
        "precpu_stats": _cpu(None),
        "memory_stats": {},
        "name": "/" + name,
        "id": cid,
    }
