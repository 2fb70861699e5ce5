"""Health checks: Docker's config checks and merge, the probe state machine, and the probe
task of a container (FakeRuntime's exec), started with each run and cancelled with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_container_controller import World, aio

from tether.api.containers import inspect_json, status_text, summary_json
from tether.engine import health, psfilter
from tether.engine.containers import Container
from tether.errors import BadRequest
from tether.runtime.changes import apply_changes
from tether.testing.runtime import FakeImage

MS = 1_000_000

# ---------------------------------------------------------------------------- the config


def test_go_duration() -> None:
    cases = {0: "0s", MS: "1ms", 500 * MS: "500ms", 1500 * MS: "1.5s", 30_000 * MS: "30s"}
    cases |= {90_000 * MS: "1m30s", 3_600_000 * MS: "1h0m0s", 1500: "1.5µs", 7: "7ns"}
    for ns, text in cases.items():
        assert health.go_duration(ns) == text


@pytest.mark.parametrize(
    ("hc", "text"),
    [
        ({"Interval": 500_000}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Timeout": 1}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
        ({"StartPeriod": 999}, "StartPeriod in Healthcheck cannot be less than 1ms"),
        ({"Test": "true"}, "Healthcheck.Test must be a list of strings"),
        ({"Interval": "1s"}, "Healthcheck.Interval must be an integer"),
    ],
)
def test_dockers_texts(hc: dict[str, Any], text: str) -> None:
    with pytest.raises(BadRequest) as err:
        health.check(hc)
    assert err.value.message == text


def test_check_leaves_zero_fields_out() -> None:
    assert health.check(None) is None
    sent = {"Test": ["CMD", "true"], "Interval": 0, "Timeout": MS, "Retries": 0}
    assert health.check(sent) == {"Test": ["CMD", "true"], "Timeout": MS}


def test_merge_as_docker() -> None:
    image = {"Test": ["CMD-SHELL", "img"], "Interval": 5 * MS, "Retries": 7}
    assert health.merge(None, image) == image
    assert health.merge(None, None) is None
    assert health.merge({"Interval": 2 * MS}, image) == {**image, "Interval": 2 * MS}
    assert health.merge({"Test": ["NONE"]}, image) == {**image, "Test": ["NONE"]}
    assert health.merge({"Test": ["CMD", "x"]}, None) == {"Test": ["CMD", "x"]}


def test_probe_command() -> None:
    assert health.probe_command({"Test": ["CMD", "true", "x"]}) == ["true", "x"]
    assert health.probe_command({"Test": ["CMD-SHELL", "test -f /ok"]}) == [
        "/bin/sh",
        "-c",
        "test -f /ok",
    ]
    for test in ([], ["NONE"], ["WHAT", "x"], ["CMD"]):
        assert health.probe_command({"Test": test}) is None
    assert health.probe_command(None) is None


def test_import_changes_healthcheck() -> None:
    cfg = apply_changes(["HEALTHCHECK --interval=1s --start-period=1m30s --retries=2 CMD true"])
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 1000 * MS,
        "StartPeriod": 90_000 * MS,
        "Retries": 2,
    }
    assert apply_changes(['HEALTHCHECK CMD ["true", "a"]'])["Healthcheck"] == {
        "Test": ["CMD", "true", "a"]
    }
    assert apply_changes(["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    for bad, text in (
        ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=1x CMD true", 'time: invalid duration "1x"'),
    ):
        with pytest.raises(BadRequest) as err:
            apply_changes([bad])
        assert err.value.message == text


# ---------------------------------------------------------------------------- the state machine


def _res(code: int) -> dict[str, Any]:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": ""}


def test_starting_to_healthy_to_unhealthy_after_retries() -> None:
    h = health.new_state(None)
    hc = {"Retries": 2}
    assert h == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert health.record(h, hc, _res(0), 1.0) is True
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    assert health.record(h, hc, _res(1), 2.0) is False  # one failure: still healthy
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    assert health.record(h, hc, _res(1), 3.0) is True
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    assert health.record(h, hc, _res(0), 4.0) is True
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)


def test_start_period_does_not_count_failures_while_starting() -> None:
    h = health.new_state(None)
    hc = {"StartPeriod": 10_000 * MS, "Retries": 1}
    assert health.record(h, hc, _res(1), 9.9) is False
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    assert health.record(h, hc, _res(1), 10.1) is True  # past it: counts
    assert h["Status"] == "unhealthy"


def test_default_retries_and_log_keeps_five() -> None:
    h = health.new_state(None)
    for i in range(7):
        health.record(h, {}, {**_res(1), "Output": str(i)}, 1.0)
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 7
    assert [e["Output"] for e in h["Log"]] == ["2", "3", "4", "5", "6"]
    again = health.new_state(h)  # a new run: starting, the log kept
    assert (again["Status"], again["FailingStreak"], len(again["Log"])) == ("starting", 0, 5)


def test_output_is_cut_at_4096_bytes() -> None:
    out = health._Output()
    out.write(b"a" * 4000)
    out.write(b"b" * 200)
    assert out.text() == "a" * 4000 + "b" * 96 + "..."


# ---------------------------------------------------------------------------- the probe task


async def _until(cond: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.001)


async def _world(tmp: Path) -> World:
    w = World(tmp)
    await w.start()
    return w


async def _run(w: World, hc: dict[str, Any] | None, image: str = "alpine") -> Container:
    body: dict[str, Any] = {"Image": image, "Cmd": ["sleep", "1d"]}
    if hc is not None:
        body["Healthcheck"] = hc
    c = await w.ctl.create(body, None)  # type: ignore[call-arg]
    await w.ctl.start_container(c.id)
    return c


def _events(w: World) -> list[str]:
    return [e["Action"] for e in w.engine.events.history if e["Type"] == "container"]


def _checks(w: World) -> health.HealthChecks:
    return w.ctl.supervisor.runner.health


@aio
async def test_probe_task_becomes_healthy_then_unhealthy(tmp_path: Path) -> None:
    w = await _world(tmp_path)
    hc = {"Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": MS, "Retries": 2}
    w.rt.exec_results["/bin/sh"] = ([("stdout", b"no\n")], 1)
    c = await _run(w, hc)
    assert c.state.health is not None and c.state.health["Status"] == "starting"
    assert status_text(c).endswith(" (health: starting)")
    await _until(lambda: c.state.health["Status"] == "unhealthy", "unhealthy")  # type: ignore[index]
    assert c.state.health["FailingStreak"] >= 2
    assert c.state.health["Log"][-1]["Output"] == "no\n"
    assert next(c[2] for c in w.rt.calls if c[0] == "exec") == ["/bin/sh", "-c", "test -f /tmp/ok"]
    w.rt.exec_results["/bin/sh"] = ([], 0)
    await _until(lambda: c.state.health["Status"] == "healthy", "healthy")  # type: ignore[index]
    assert status_text(c).endswith(" (healthy)")
    actions = _events(w)
    assert "health_status: unhealthy" in actions and "health_status: healthy" in actions
    assert any(a.startswith("exec_create: /bin/sh -c test -f /tmp/ok") for a in actions)
    state = inspect_json(w.engine, c)["State"]
    assert state["Health"]["Status"] == "healthy"
    assert set(state["Health"]["Log"][0]) == {"Start", "End", "ExitCode", "Output"}
    assert inspect_json(w.engine, c)["Config"]["Healthcheck"] == hc
    match = psfilter.matcher({"health": ["healthy"]}, w.ctl.get)
    assert match(c) and summary_json(w.engine, c)["Status"].endswith("(healthy)")
    assert not psfilter.matcher({"health": ["none"]}, w.ctl.get)(c)
    await w.close()


@aio
async def test_timeout_kills_the_probe(tmp_path: Path) -> None:
    w = await _world(tmp_path)
    w.rt.exec_hang.add("slow")
    hc = {"Test": ["CMD", "slow"], "Interval": MS, "Timeout": 5 * MS, "Retries": 1}
    c = await _run(w, hc)
    await _until(lambda: c.state.health["Status"] == "unhealthy", "unhealthy")  # type: ignore[index]
    entry = c.state.health["Log"][0]  # type: ignore[index]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (5ms)")
    assert w.rt.execs[0].signals  # the probe was killed
    await w.close()


@aio
async def test_exit_and_remove_cancel_the_task(tmp_path: Path) -> None:
    w = await _world(tmp_path)
    w.rt.exec_hang.add("slow")
    c = await _run(w, {"Test": ["CMD", "slow"], "Interval": MS, "Timeout": 10_000 * MS})
    task = _checks(w).tasks[c.id]
    await _until(lambda: bool(w.rt.execs), "a probe running")
    w.rt.exit(c.id, 0)
    await _until(lambda: not c.running, "the exit handled")
    await _until(task.done, "the task ended")
    assert task.cancelled() and c.id not in _checks(w).tasks
    assert w.rt.execs[0].signals  # the running probe was killed, not left behind
    assert c.state.health is not None and c.state.health["Status"] == "unhealthy"  # Docker's
    assert status_text(c).startswith("Exited")
    await w.ctl.start_container(c.id)  # a new run: starting again, a new task
    assert c.state.health["Status"] == "starting"
    task2 = _checks(w).tasks[c.id]
    await w.ctl.remove(c.id, force=True)
    await _until(task2.done, "the second task ended")
    assert _checks(w).tasks == {}
    await w.close()


@aio
async def test_daemon_close_cancels_every_task(tmp_path: Path) -> None:
    w = await _world(tmp_path)
    c = await _run(w, {"Test": ["CMD", "true"], "Interval": 60_000 * MS})
    task = _checks(w).tasks[c.id]
    await w.close()
    assert task.cancelled()


@aio
async def test_image_healthcheck_merged_and_none_disables(tmp_path: Path) -> None:
    w = await _world(tmp_path)
    image_hc = {"Test": ["CMD", "img-probe"], "Interval": 60_000 * MS, "Retries": 5}
    w.images.add("probed", FakeImage(healthcheck=image_hc))
    c = await _run(w, {"Interval": 2 * MS}, image="probed")
    assert c.config["Healthcheck"] == {**image_hc, "Interval": 2 * MS}
    assert c.id in _checks(w).tasks
    off = await _run(w, {"Test": ["NONE"]}, image="probed")
    assert off.state.health is None and off.id not in _checks(w).tasks
    assert "Health" not in inspect_json(w.engine, off)["State"]
    plain = await _run(w, None)
    assert "Healthcheck" not in inspect_json(w.engine, plain)["Config"]
    assert psfilter.matcher({"health": ["none"]}, w.ctl.get)(plain)
    await w.close()
