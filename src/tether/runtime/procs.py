"""A running container's processes and figures: pause/resume (the freezer), its pids
(``runc ps``), ``ps`` output for them (``docker top``) and its resource figures
(``runc events --stats`` from its cgroup, interface counters from its network namespace).

``ContainerProcs`` is a mixin of ``tether.runtime.monitor.Runtime``: it runs runc through the
runtime's ``_runc`` and finds the container's PID 1 with ``container_pid``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from tether.contracts.runtime import ResourceSpec
from tether.errors import Conflict, Internal, NotFound
from tether.linux import spawn
from tether.runtime.runcerrors import runc_message

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def net_dev(text: str) -> dict[str, dict[str, int]]:
    """``/proc/<pid>/net/dev`` as Docker's ``networks`` (every interface but ``lo``)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or name == "lo":
            continue
        f = [int(x) for x in rest.split()]
        if len(f) < 16:
            continue
        out[name] = {
            "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
            "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
        }  # fmt: skip
    return out


def system_cpu_ns(text: str) -> int:
    """The host's total CPU time in nanoseconds from ``/proc/stat`` (Docker's
    ``system_cpu_usage``: the first line's first seven fields)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(x) for x in line.split()[1:8])
            return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def _meminfo_total(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class ContainerProcs:
    """pause/resume/pids/top/stats for ``tether.runtime.monitor.Runtime``."""

    async def _runc(self, *args: str) -> tuple[int, str, str]:
        raise NotImplementedError  # the runtime's

    def container_pid(self, cid: str) -> int | None:
        raise NotImplementedError  # the runtime's

    async def _runc_ok(self, *args: str) -> str:
        rc, out, err = await self._runc(*args)
        if rc != 0:
            msg = runc_message(err) or f"runc {args[0]} failed"
            if "does not exist" in msg:
                raise NotFound(msg)
            raise Conflict(msg)
        return out

    async def pause(self, cid: str) -> None:
        """Freeze every process of the container (``runc pause``: the cgroup freezer)."""
        await self._runc_ok("pause", cid)

    async def resume(self, cid: str) -> None:
        await self._runc_ok("resume", cid)

    # P3 (issue 16): docker update
    async def update(self, cid: str, resources: ResourceSpec) -> None:
        """``runc update --resources FILE``: the cgroup limits of a running (or paused)
        container. Controls at 0 are left as they are."""
        from tether.runtime.oci import oci_resources

        state_dir: Path = getattr(self, "state_dir", Path("/tmp"))
        path = state_dir / f"update-{cid[:12]}-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(oci_resources(resources)))
        try:
            await self._runc_ok("update", "--resources", str(path), cid)
        finally:
            path.unlink(missing_ok=True)

    async def pids(self, cid: str) -> list[int]:
        """Host pids of the container's processes."""
        out = await self._runc_ok("ps", "--format", "json", cid)
        try:
            return [int(p) for p in json.loads(out) or []]
        except (ValueError, TypeError):
            raise Internal(f"runc ps: unexpected output {out[:200]!r}") from None

    async def top(self, cid: str, ps_args: list[str]) -> tuple[list[int], str]:
        """``(pids, ps output)``: Docker runs ``ps ARGS -q PIDS`` and, when ps refuses that
        (some options cannot go with ``q``), ``ps ARGS`` alone; the caller keeps the rows
        of the container's pids."""
        pids = await self.pids(cid)
        q = "-q" + ",".join(str(p) for p in pids)
        rc, out, err = await spawn.run(["ps", *ps_args, q])
        if rc != 0:
            rc, out, err = await spawn.run(["ps", *ps_args])
            if rc != 0:
                first = err.decode(errors="replace").split("\n", 1)[0]
                raise Internal(f"ps: {first or f'exit status {rc}'}")
        return pids, out.decode(errors="replace")

    async def stats(self, cid: str) -> dict[str, Any]:
        """One sample: runc's cgroup figures (``cpu``, ``memory``, ``pids``, ``blkio``),
        the interfaces' counters, the host's CPU time and memory, when it was read."""
        out = await self._runc_ok("events", "--stats", cid)
        try:
            data: dict[str, Any] = json.loads(out).get("data") or {}
        except ValueError:
            raise Internal(f"runc events: unexpected output {out[:200]!r}") from None
        pid = self.container_pid(cid)
        nets = net_dev(_read(f"/proc/{pid}/net/dev")) if pid else {}
        return {
            "read": time.time(),
            "cgroup": data,
            "networks": nets,
            "system_cpu_usage": system_cpu_ns(_read("/proc/stat")),
            "online_cpus": len(os.sched_getaffinity(0)) or os.cpu_count() or 1,
            "machine_memory": _meminfo_total(_read("/proc/meminfo")),
        }
