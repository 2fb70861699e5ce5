"""Supervision: a container's runs, exits and restarts, and the user's start/stop/kill/rm.

Exits arrive from the runtime's exit watcher (``exit_loop``); each is recorded and, by the
restart policy (Docker's restart manager: 100 ms doubling up to 1 min, back to 100 ms once a
run lasted 10 s), followed by a restart that reuses the kept sandbox. ``--rm`` containers are
removed after their exit. ``remove`` marks the record ``removing`` first, so start-up
reconcile finishes an ``rm`` the daemon did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import signal as _signal
import time

from tether.engine.core import EngineCore
from tether.engine.hostports import HostPorts
from tether.engine.netsandbox import Sandboxes
from tether.engine.networks import NetworkController
from tether.engine.record import Container, now, parse_signal
from tether.engine.run import Runner
from tether.errors import Conflict, Internal, NotFound, NotModified, TetherError
from tether.store.base import Op

log = logging.getLogger("tether.containers")


def _ran_for(c: Container) -> float:
    """Seconds the run that just ended lasted (0 when its start time is unreadable)."""
    try:
        started = dt.datetime.strptime(c.state.started_at[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return 0.0
    return time.time() - started.replace(tzinfo=dt.UTC).timestamp()


class Supervisor:
    def __init__(
        self, core: EngineCore, runner: Runner, sandboxes: Sandboxes, ports: HostPorts
    ) -> None:
        self.core = core
        self.runner = runner
        self.sandboxes = sandboxes
        self.ports = ports
        self.exit_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self.restart_timers: dict[str, asyncio.Task[None]] = {}
        self.backoff: dict[str, float] = {}

    # ---- start ---------------------------------------------------------------------
    async def start_container(self, ref: str, from_policy: bool = False) -> Container:
        c = self.core.table.get(ref)
        async with self.core.lock(c.id):
            if c.running:
                raise NotModified("container already started")
            if not from_policy:
                await self.cancel_restart(c)
                c.restart_count = 0  # a user's start (or restart) resets it, as Docker's does
            failure: Exception | None = None
            try:
                await self.runner.start(c)
            except Exception as exc:
                failure = exc
        if failure is not None:
            # Docker removes an AutoRemove container whose start failed (`run --rm` waits
            # for the removal); it has no restart policy, so nothing else will.
            if c.host_config.get("AutoRemove"):
                with contextlib.suppress(TetherError):
                    await self.remove(c.id, force=True, volumes=True)
            raise failure
        self.core.emit_sandbox("connect", c)
        self.core.emit("start", c)
        return c

    async def alive(self, c: Container) -> bool:
        """True when the container's recorded process still runs (after a daemon restart)."""
        if c.state.pid <= 0:
            return False
        try:
            os.kill(c.state.pid, 0)
        except OSError:
            return False
        return self.core.runtime.exit_code(c.id) is None

    async def safe_start(self, cid: str) -> None:
        try:
            await self.start_container(cid, from_policy=True)
        except TetherError as exc:
            log.warning("restart of %s failed: %s", cid[:12], exc.message)

    # ---- exits and restarts ------------------------------------------------------------
    async def exit_loop(self) -> None:
        async for cid, code in self.core.runtime.watch_exits():
            c = self.core.containers.get(cid)
            if c is None:
                continue
            try:
                async with self.core.lock(cid):
                    if c.state.status == "running":
                        await self.handle_exit(c, code)
            except Exception:
                log.exception("handling exit of %s", cid[:12])

    async def handle_exit(self, c: Container, code: int, from_restart: bool = False) -> None:
        """Record an exit; schedule a restart by policy (Docker's restart manager rules).

        When a restart will follow, the sandbox (namespace, veths, DNS listener) is kept
        for it, and the backoff delay counts from the exit: the runtime clean-up below
        runs inside that delay, not before it.
        """
        core = self.core
        exited_at = asyncio.get_running_loop().time()
        await self.runner.health.stop(c)
        ran = _ran_for(c)
        restart = not c.host_config.get("AutoRemove") and self._should_restart(c, code)
        c.state.pid = 0
        c.state.paused = False
        c.state.exit_code = code
        c.state.finished_at = now()
        c.state.status = "restarting" if restart else "exited"
        delay = self._next_delay(c, ran) if restart else 0.0
        # Announce the exit as soon as the state says so: a client that sees
        # "exited" in inspect must also find the die event.
        core.emit("die", c, exitCode=str(code))
        await core.runtime.delete(c.id)
        had_ports = bool(c.ports)
        if restart and not from_restart:
            core.kept.add(c.id)
        else:
            core.kept.discard(c.id)
            await self.sandboxes.teardown(c)
            self.ports.drop(c)
            core.emit_sandbox("disconnect", c)
        core.invalidate_dns()
        await core.save(c)
        if had_ports:
            await core.ports_changed.sync(c.id)
        self._settle_waiters(c.id, code)
        if c.host_config.get("AutoRemove"):
            core.spawn(self._auto_remove(c.id))
            return
        if restart:
            self.restart_timers[c.id] = core.spawn(self.restart_later(c.id, delay, exited_at))

    def _next_delay(self, c: Container, ran: float) -> float:
        # 100 ms, doubling up to 1 min; back to 100 ms once a run lasted 10 s.
        prev = self.backoff.get(c.id, 0.0)
        delay = 0.1 if ran >= 10 or prev <= 0 else min(prev * 2, 60.0)
        self.backoff[c.id] = delay
        c.restart_count += 1
        return delay

    def _settle_waiters(self, cid: str, code: int) -> None:
        for fut in self.exit_waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(code)

    def _should_restart(self, c: Container, code: int) -> bool:
        if c.manually_stopped:
            return False
        pol = c.restart_policy
        if pol["Name"] in ("always", "unless-stopped"):
            return True
        if pol["Name"] == "on-failure" and code != 0:
            limit = int(pol["MaximumRetryCount"])
            return limit == 0 or c.restart_count < limit
        return False

    async def restart_later(self, cid: str, delay: float, exited_at: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, exited_at + delay - loop.time()))
        c = self.core.containers.get(cid)
        if self.restart_timers.get(cid) is asyncio.current_task():
            self.restart_timers.pop(cid, None)
        if c is None or c.state.status != "restarting":
            return
        async with self.core.lock(cid):
            if c.state.status != "restarting":
                return
            try:
                await self.runner.start(c, reuse_sandbox=cid in self.core.kept)
            except TetherError as exc:
                log.warning("restart of %s failed: %s", cid[:12], exc.message)
                c.state.status = "exited"
                await self.core.save(c)
                return
            finally:
                self.core.kept.discard(cid)
        self.core.emit("start", c)

    async def cancel_restart(self, c: Container) -> None:
        """Stop a pending policy restart; the kept sandbox goes with it."""
        t = self.restart_timers.pop(c.id, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()
        if c.state.status == "restarting":
            c.state.status = "exited"
        if c.id in self.core.kept:
            self.core.kept.discard(c.id)
            await self.sandboxes.teardown(c)
            self.ports.drop(c)
            self.core.invalidate_dns()
            self.core.emit_sandbox("disconnect", c)

    async def _stop_restarting(self, c: Container) -> bool:
        """Cancel a pending policy restart as a user's stop/kill does; True when there was one."""
        async with self.core.lock(c.id):
            if c.state.status != "restarting":
                return False
            await self.cancel_restart(c)
            c.manually_stopped = True
            await self.core.save(c)
            return True

    async def _auto_remove(self, cid: str) -> None:
        with contextlib.suppress(NotFound):
            await self.remove(cid, force=True, volumes=True)  # --rm: anonymous volumes too

    def exit_future(self, c: Container) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    # ---- stop / kill / restart -------------------------------------------------------------
    async def stop(self, ref: str, timeout: int | None) -> Container:
        c = self.core.table.get(ref)
        if await self._stop_restarting(c):
            self.core.emit("stop", c)
            return c
        if not c.running:
            raise NotModified("container already stopped")
        c.manually_stopped = True
        fut = self.exit_future(c)
        if timeout is None:
            timeout = int(c.config.get("StopTimeout") or 10)
        sig = parse_signal(c.config.get("StopSignal") or "SIGTERM")
        runtime = self.core.runtime
        # The process may exit (and its exit be handled) at any await below: a kill that
        # finds it stopped or deleted is that exit, and ``fut`` reports it.
        # each kill event goes out before its signal: the exit it causes may be handled while
        # runc's kill is still being awaited, and Docker's order is kill before die
        self.core.emit("kill", c, signal=str(sig))
        with contextlib.suppress(Conflict, NotFound):
            await runtime.kill(c.id, sig)
        await self.thaw(c)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=max(timeout, 0))
        except TimeoutError:
            if c.running:  # it did not die of the first signal meanwhile (Docker: no event then)
                self.core.emit("kill", c, signal=str(int(_signal.SIGKILL)))
            with contextlib.suppress(Conflict, NotFound):
                await runtime.kill(c.id, _signal.SIGKILL)
            try:
                await asyncio.wait_for(fut, timeout=10)
            except TimeoutError:
                raise Internal(f"container {c.id} did not stop") from None
        self.core.emit("stop", c)
        return c

    async def kill(self, ref: str, sig: str | None) -> Container:
        c = self.core.table.get(ref)
        signum = parse_signal(sig or "SIGKILL")
        if await self._stop_restarting(c):
            self.core.emit("kill", c, signal=str(signum))
            return c
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        c.manually_stopped = True
        await self.core.save(c)
        fut = self.exit_future(c)
        await self.core.runtime.kill(c.id, signum)
        self.core.emit("kill", c, signal=str(signum))
        stop_sig = parse_signal(c.config.get("StopSignal") or "SIGTERM")
        if signum in (_signal.SIGKILL, stop_sig):
            await self.thaw(c)  # Docker: the signal is delivered once the container resumes
        if signum == _signal.SIGKILL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout=10)
        return c

    async def thaw(self, c: Container) -> None:
        """Resume a paused container (a stop or kill of a paused one), as Docker does."""
        if not c.state.paused:
            return
        try:
            await self.core.runtime.resume(c.id)
        except TetherError as exc:
            log.warning("cannot unpause %s: %s", c.id[:12], exc.message)
            return
        c.state.paused = False
        await self.core.save(c)
        self.core.emit("unpause", c)

    async def restart(self, ref: str, timeout: int | None) -> Container:
        c = self.core.table.get(ref)
        if c.running or c.state.status == "restarting":
            await self.stop(c.id, timeout)
        await self.start_container(c.id)
        self.core.emit("restart", c)
        return c

    # ---- remove ---------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool, volumes: bool = False) -> None:
        c = self.core.table.get(ref)
        if c.running or c.state.status == "restarting":
            if not force:
                procedure = "Stop the container before attempting removal or force remove"
                if c.status == "paused":
                    procedure = "Unpause and then " + procedure.lower()
                raise Conflict(f"You cannot remove a {c.status} container {c.id}. {procedure}")
            await self._stop_restarting(c)
            if c.running:
                await self._kill_for_remove(c)
        async with self.core.lock(c.id):
            if self.core.containers.get(c.id) is not c:
                # removed meanwhile (``--rm`` after the kill above): once only, and the
                # lock this call made anew goes too
                self.core.locks.pop(c.id, None)
                return
            await self.destroy(c, volumes)
        self.core.emit("destroy", c)

    async def _kill_for_remove(self, c: Container) -> None:
        c.manually_stopped = True
        fut = self.exit_future(c)
        if c.running:
            self.core.emit("kill", c, signal=str(int(_signal.SIGKILL)))  # before: kill, then die
        with contextlib.suppress(Conflict, NotFound):  # exited meanwhile: fut says so
            await self.core.runtime.kill(c.id, _signal.SIGKILL)
        await self.thaw(c)
        try:
            await asyncio.wait_for(fut, timeout=10)
        except TimeoutError:
            async with self.core.lock(c.id):
                await self.handle_exit(c, 137)

    async def destroy(self, c: Container, volumes: bool = False) -> None:
        """Remove a container. Marked ``removing`` first, so reconcile finishes a crashed rm.
        ``volumes``: its anonymous volumes go too (``rm -v``, ``--rm``)."""
        core = self.core
        t = self.restart_timers.pop(c.id, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()
        await self.runner.health.stop(c)
        core.kept.discard(c.id)
        if c.state.status != "removing":
            c.state.status = "removing"
            await core.save(c)
        await core.runtime.delete(c.id)
        await self.sandboxes.teardown(c)
        try:
            await core.images.unmount_rootfs(c.id)
            await core.images.remove_rootfs(c.id)
        except Exception as exc:
            log.warning("rootfs of %s: %s", c.id[:12], exc)
        ops = [Op("delete", f"containers/{c.id}"), Op("delete", f"cnames/{c.name}")]
        for ep in c.eps():
            for ip in ep.addresses():
                ops.append(Op("delete", NetworkController.ipam_key(ep.network_id, ip)))
        await core.store.txn(ops)
        for ep in c.eps():
            for ip in ep.addresses():
                core.networks.release(ep.network_id, ip)
                await core.release_global(ep.network_id, ip)
        self.ports.drop(c)
        core.containers.pop(c.id, None)
        # Every table keyed by the id forgets it (a daemon must not grow with churn).
        core.locks.pop(c.id, None)
        core.attach_hooks.pop(c.id, None)  # attached, never started
        self.backoff.pop(c.id, None)
        shutil.rmtree(core.files_dir(c), ignore_errors=True)
        core.invalidate_dns()
        if volumes:
            anonymous = [
                m["Name"] for m in c.mounts if m["Type"] == "volume" and not m.get("Named")
            ]
            await core.volumes.release(anonymous, c.id)
        self._settle_waiters(c.id, c.state.exit_code)
