"""Per-container bookkeeping is forgotten with the container (issue 16: daemon RSS must not
grow with churn). After create/start/stop/rm, ``run --rm``, restart policies, health
checks and attach hooks, every dict or set keyed by container id is empty again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_container_controller import REAL_SLEEP, Clock, World, aio, clock, started, until

from tether.runtime.monitor import Runtime
from tether.store.sqlite import HISTORY, SqliteStore

__all__ = ["clock"]  # the fixture, imported for the tests below


def leftovers(w: World) -> dict[str, Any]:
    """Every per-container table of the engine that still holds something (tasks: but the
    engine's own long-lived ones, e.g. the exit loop)."""
    core = w.ctl.core
    sup = w.ctl.supervisor
    tables: dict[str, Any] = {
        "containers": core.containers,
        "locks": core.locks,
        "kept": core.kept,
        "attach_hooks": core.attach_hooks,
        "exit_waiters": sup.exit_waiters,
        "restart_timers": sup.restart_timers,
        "backoff": sup.backoff,
        "health tasks": sup.runner.health.tasks,
        "tasks": {t for t in core.tasks if not t.done() and t.get_coro().__name__ != "exit_loop"},
        "dns listeners": w.dns.listeners,
        "netns": w.netns.namespaces,
        "runtime": w.rt.containers,
    }
    return {name: t for name, t in tables.items() if t}


async def settle() -> None:
    for _ in range(50):
        await REAL_SLEEP(0)


@aio
async def test_create_start_stop_rm_leaves_nothing(tmp_path: Path) -> None:
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.run("web", network="n1", ports={"80/tcp": "8080"})
    await w.ctl.stop("web", timeout=1)
    await w.ctl.start_container("web")
    await w.ctl.kill("web", "SIGKILL")
    await settle()
    await w.ctl.remove("web", force=True)
    await settle()
    assert leftovers(w) == {}
    assert c.id not in w.ctl.core.locks
    await w.close()


@aio
async def test_run_rm_and_created_never_started_leave_nothing(tmp_path: Path) -> None:
    w = await started(tmp_path)
    for i in range(3):
        c = await w.ctl.create({"Image": "alpine", "HostConfig": {"AutoRemove": True}}, f"t{i}")
        fut = w.ctl.exit_future(c)
        await w.ctl.start_container(c.id)
        w.rt.exit(c.id, 0)
        assert await fut == 0
        await until(lambda: w.ctl.find(f"t{i}") is None, "auto-removed")  # noqa: B023
    # rm -f of a running --rm container: the kill's exit removes it first
    r = await w.ctl.create({"Image": "alpine", "HostConfig": {"AutoRemove": True}}, "rmf")
    await w.ctl.start_container(r.id)
    await w.ctl.remove("rmf", force=True)
    await settle()
    assert r.id not in w.ctl.core.locks
    # `docker run` attaches before the start: a hook waits for it; rm without a start.
    d = await w.ctl.create({"Image": "alpine"}, "never")

    async def hook() -> None:
        return None

    w.ctl.attach_hooks.setdefault(d.id, []).append(hook)
    await w.ctl.remove("never", force=False)
    await settle()
    assert leftovers(w) == {}
    await w.close()


@aio
async def test_restart_policy_and_health_leave_nothing(tmp_path: Path, clock: Clock) -> None:
    w = await started(tmp_path)
    c = await w.run("always", restart="always")
    w.rt.exit(c.id, 1)
    await until(lambda: c.restart_count == 1 and c.running, "restarted")
    assert w.ctl.supervisor.backoff  # the backoff of a living container is kept
    h = await w.ctl.create(
        {"Image": "alpine", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10**9}}, "hc"
    )
    await w.ctl.start_container(h.id)
    await settle()
    for name in ("always", "hc"):
        await w.ctl.remove(name, force=True)
    await settle()
    assert leftovers(w) == {}
    await w.close()


def test_runtime_forgets_exit_waiters_and_deleted_ids(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "rt")

    async def runc(*args: str) -> tuple[int, str, str]:
        return 0, "", ""

    rt._runc = runc  # type: ignore[method-assign]

    async def main() -> None:
        try:
            cid = "c" * 64
            assert await rt.wait_exit(cid, timeout=0.01) is None  # timed out
            (rt.exits_dir / cid).write_text("3")
            assert await rt.wait_exit(cid) == 3  # already exited
            await rt.delete(cid)
            assert rt._waiters == {} and rt._deleted == set() and rt._delivered == {}
        finally:
            rt.close()

    asyncio.run(main())


def test_sqlite_watch_history_is_bounded(tmp_path: Path) -> None:
    """The replay history holds decoded records: bounded, or a daemon grows ~5 KiB a write."""
    assert HISTORY <= 1000

    async def main() -> None:
        store = SqliteStore(tmp_path / "t.db")
        try:
            for i in range(HISTORY + 50):
                await store.put(f"k/{i % 7}", {"i": i})
            assert len(store._hub._history) == HISTORY
        finally:
            await store.close()

    asyncio.run(main())
