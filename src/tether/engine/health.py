"""Health checks: Docker's probe loop (moby daemon/health.go) for each running container.

``Config.Healthcheck`` comes from the create request and the image's config, merged field by
field as Docker merges them (``merge``), checked with Docker's texts (``check``). When a
container with a probe starts, ``HealthChecks.start`` sets ``State.Health`` to ``starting``
(its log kept from earlier runs) and spawns the container's probe task: every interval
(default 30 s, counted from the end of the previous probe) one exec in the container
(``CMD`` arguments, or ``CMD-SHELL`` through ``/bin/sh -c``), killed after the timeout
(default 30 s). Exit 0 is healthy; a failure adds to the failing streak (except while the
container is still ``starting`` inside its start period) and the streak reaching the retries
(default 3) is unhealthy. Each status change is a ``health_status: <status>`` event; the
last 5 results are kept, each output cut at 4096 bytes (``...`` appended).

The task belongs to the container's supervision: ``stop`` cancels it when the container
exits or is removed (the status then reads ``unhealthy``, as Docker's does), and the
engine's close cancels every task spawned through the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from typing import Any

from tether.engine.core import EngineCore
from tether.engine.record import Container, now
from tether.engine.seams import ExecProcess, ImageConfig
from tether.errors import BadRequest, TetherError

log = logging.getLogger("tether.health")

NS = 1_000_000_000
MIN_DURATION_NS = 1_000_000  # Docker's containertypes.MinimumDuration (1ms)
DEFAULT_INTERVAL_NS = 30 * NS
DEFAULT_TIMEOUT_NS = 30 * NS
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")
SHELL = ("/bin/sh", "-c")


# ---- the config: Docker's checks, merge and probe command ------------------------------------
def go_duration(ns: int) -> str:
    """A duration as Go's ``time.Duration.String`` writes it (``1ms``, ``30s``, ``1m30s``)."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)

    def frac(v: int, div: int) -> str:
        whole, rest = divmod(v, div)
        digits = str(rest).rjust(len(str(div)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{frac(u, 1000)}µs"
    if u < NS:
        return f"{sign}{frac(u, 1_000_000)}ms"
    hours, rest = divmod(u, 3600 * NS)
    minutes, rest = divmod(rest, 60 * NS)
    head = f"{hours}h{minutes}m" if hours else f"{minutes}m" if minutes else ""
    return f"{sign}{head}{frac(rest, NS)}s"


def check(raw: Any) -> dict[str, Any] | None:
    """The request's ``Healthcheck`` checked (Docker's verifyContainerSettings texts), with
    its zero fields left out as Docker's JSON shows it; None when not sent."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest("Healthcheck must be an object")
    test = raw.get("Test")
    if test is not None and not (isinstance(test, list) and all(isinstance(t, str) for t in test)):
        raise BadRequest("Healthcheck.Test must be a list of strings")
    for key in FIELDS[1:]:
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadRequest(f"Healthcheck.{key} must be an integer")
    for key in ("Interval", "Timeout"):
        value = raw.get(key) or 0
        if value != 0 and value < MIN_DURATION_NS:
            raise BadRequest(
                f"{key} in Healthcheck cannot be less than {go_duration(MIN_DURATION_NS)}"
            )
    if (raw.get("Retries") or 0) < 0:
        raise BadRequest("Retries in Healthcheck cannot be negative")
    start = raw.get("StartPeriod") or 0
    if start != 0 and start < MIN_DURATION_NS:
        raise BadRequest(
            f"StartPeriod in Healthcheck cannot be less than {go_duration(MIN_DURATION_NS)}"
        )
    return {k: raw[k] for k in FIELDS if raw.get(k)}


def merge(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """Docker's merge: the image's healthcheck when none was sent, else each zero field of the
    sent one taken from the image's."""
    if user is None:
        return dict(image) if image else None
    out = dict(user)
    for key in FIELDS:
        if not out.get(key) and image and image.get(key):
            out[key] = image[key]
    return out


def apply(cfg: dict[str, Any], body: dict[str, Any], image: ImageConfig) -> None:
    """Put the merged ``Healthcheck`` into a container config (left out when there is none)."""
    hc = merge(check(body.get("Healthcheck")), image.healthcheck)
    if hc is not None:
        cfg["Healthcheck"] = hc


def probe_command(hc: dict[str, Any] | None) -> list[str] | None:
    """The probe's argv (None: no probe: no test, ``NONE``, or an unknown type)."""
    test = (hc or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD" and len(test) > 1:
        return list(test[1:])
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return [*SHELL, *test[1:]]
    log.warning("unknown healthcheck type %r", test[0])
    return None


# ---- the state machine ------------------------------------------------------------------------
def new_state(old: dict[str, Any] | None) -> dict[str, Any]:
    """``State.Health`` at a start: ``starting``, no failing streak, the old log kept."""
    return {"Status": "starting", "FailingStreak": 0, "Log": list((old or {}).get("Log") or [])}


def record(
    health: dict[str, Any], hc: dict[str, Any], result: dict[str, Any], since_start: float
) -> bool:
    """Docker's handleProbeResult: add ``result`` (started ``since_start`` seconds after the
    container) to ``health``; True when the status changed."""
    retries = hc.get("Retries") or DEFAULT_RETRIES
    old = health["Status"]
    health["Log"] = [*health["Log"], result][-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = "healthy"
    else:
        in_start_period = old == "starting" and since_start < (hc.get("StartPeriod") or 0) / NS
        if not in_start_period:
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
    return bool(health["Status"] != old)


def ps_suffix(health: dict[str, Any] | None) -> str:
    """What ``docker ps`` STATUS adds after ``Up 5 seconds`` (Docker's Health.String)."""
    if not health:
        return ""
    status = health["Status"]
    return " (health: starting)" if status == "starting" else f" ({status})"


def _started(c: Container) -> float:
    try:
        t = dt.datetime.strptime(c.state.started_at[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return time.time()
    return t.replace(tzinfo=dt.UTC).timestamp()


class _Output:
    """Docker's limitedBuffer: the first 4096 bytes of stdout and stderr, ``...`` if cut."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.cut = False

    def write(self, chunk: bytes) -> None:
        keep = max(0, MAX_OUTPUT_LEN - len(self.data))
        self.data += chunk[:keep]
        self.cut = self.cut or keep < len(chunk)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace") + ("..." if self.cut else "")


# ---- the probe tasks --------------------------------------------------------------------------
class HealthChecks:
    """One probe task per running container that has a probe."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, c: Container) -> None:
        """A run began: ``starting``, and the probe task (the old one, if any, cancelled)."""
        self._cancel(c.id)
        hc = c.config.get("Healthcheck")
        argv = probe_command(hc)
        if hc is None or argv is None:
            return
        c.state.health = new_state(c.state.health)
        self.tasks[c.id] = self.core.spawn(self._monitor(c, hc, argv))

    def _cancel(self, cid: str) -> asyncio.Task[None] | None:
        task = self.tasks.pop(cid, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            return task
        return None

    async def stop(self, c: Container) -> None:
        """The run ended (or the container goes): the task is cancelled and waited for, and
        the status reads ``unhealthy`` (Docker's CloseMonitorChannel)."""
        task = self._cancel(c.id)
        if task is None:
            return
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if c.state.health is not None:
            c.state.health["Status"] = "unhealthy"

    async def _monitor(self, c: Container, hc: dict[str, Any], argv: list[str]) -> None:
        interval = (hc.get("Interval") or DEFAULT_INTERVAL_NS) / NS
        timeout_ns = hc.get("Timeout") or DEFAULT_TIMEOUT_NS
        started = _started(c)
        while True:
            await asyncio.sleep(interval)
            begin = time.time()
            result = await self._probe(c, argv, timeout_ns)
            health = c.state.health
            if health is None or self.tasks.get(c.id) is not asyncio.current_task():
                return
            if record(health, hc, result, begin - started):
                self.core.emit(f"health_status: {health['Status']}", c)
            try:
                await self.core.save(c)
            except TetherError as exc:
                log.warning("health of %s: %s", c.id[:12], exc.message)

    async def _probe(self, c: Container, argv: list[str], timeout_ns: int) -> dict[str, Any]:
        """One probe: ``{Start, End, ExitCode, Output}`` (ExitCode -1: it could not run)."""
        start = now()
        if c.state.paused:
            return _result(
                start, -1, f"Container {c.id} is paused, unpause the container before exec"
            )
        exec_id = os.urandom(32).hex()
        what = argv[0] + " " + " ".join(argv[1:])
        self.core.emit(f"exec_create: {what}", c, execID=exec_id)
        self.core.emit(f"exec_start: {what}", c, execID=exec_id)
        try:
            proc = await self.core.runtime.exec(
                c.id,
                argv,
                env=list(c.config.get("Env") or []),
                cwd=c.config.get("WorkingDir") or None,
                user=c.config.get("User") or None,
            )
        except TetherError as exc:
            return _result(start, -1, exc.message)
        out = _Output()
        try:
            code = await asyncio.wait_for(_run(proc, out), timeout_ns / NS)
        except TimeoutError:
            await _reap(proc)
            text = f"Health check exceeded timeout ({go_duration(timeout_ns)})"
            return _result(start, -1, text)
        except asyncio.CancelledError:
            await _reap(proc)  # no dying probes left behind (Docker waits for them too)
            raise
        self.core.emit("exec_die", c, execID=exec_id, exitCode=str(code))
        return _result(start, code, out.text())


async def _run(proc: ExecProcess, out: _Output) -> int:
    async for _stream, data in proc.output():
        out.write(data)
    return await proc.wait()


async def _reap(proc: ExecProcess) -> None:
    proc.kill()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(proc.wait(), 5)


def _result(start: str, code: int, output: str) -> dict[str, Any]:
    return {"Start": start, "End": now(), "ExitCode": code, "Output": output}
