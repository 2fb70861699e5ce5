"""Starting a container: sandbox, files, bundle, then ``runc create`` and ``runc start``.

One ``start`` per run, under the container's lock: the checks Docker makes first (the
container whose network it shares runs, its links' targets run), the host ports, the
sandbox (or the one kept across a policy restart), the files and bundle, the runtime. A
failure undoes what this start made and records the error; success records the run and
tells the firewall when ports were published. The debug log has the time of each phase.
"""

from __future__ import annotations

import asyncio
import logging

from tether.engine import logconfig
from tether.engine.bundle import BundleStep
from tether.engine.core import EngineCore
from tether.engine.health import HealthChecks
from tether.engine.hostports import HostPorts
from tether.engine.netsandbox import Sandboxes
from tether.engine.phases import Phases
from tether.engine.record import ZERO_TIME, Container, network_mode, now
from tether.engine.sandboxfiles import SandboxFiles
from tether.errors import Conflict, TetherError
from tether.linux.nsthread import PrivateMounts

log = logging.getLogger("tether.containers")


class Runner:
    def __init__(
        self,
        core: EngineCore,
        files: SandboxFiles,
        bundle: BundleStep,
        ports: HostPorts,
        sandboxes: Sandboxes,
    ) -> None:
        self.core = core
        self.files = files
        self.bundle = bundle
        self.ports = ports
        self.sandboxes = sandboxes
        self.health = HealthChecks(core)  # the probe tasks: started with each run

    def _check(self, c: Container, kind: str) -> None:
        if kind == "container":
            other = self.core.table.get(c.network_mode.split(":", 1)[1])
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
        for tid, alias in c.links if self.core.on_default_bridge(c) else []:
            target = self.core.containers.get(tid)
            if target is None or not target.running:
                name = target.name if target else tid
                raise Conflict(
                    f"Cannot link to a non running container: /{name} AS /{c.name}/{alias}"
                )

    async def start(self, c: Container, reuse_sandbox: bool = False) -> None:
        """Make the sandbox (or reuse the one kept across a policy restart) and run.

        A new sandbox's namespace is made, its network (loopback, endpoints) wired and its
        DNS listener opened while the files and the bundle are written and ``runc create``
        runs: ``runc create`` waits only for the namespace, ``runc start`` for the rest (the
        container's process runs only then)."""
        core = self.core
        kind, _target = network_mode(c.host_config)
        self._check(c, kind)
        took_ports = self.ports.take(c)
        made_ns = False
        clock = Phases()
        wiring: asyncio.Task[Phases] | None = None
        ns_made: asyncio.Future[None] | None = None
        try:
            ns_path: str | None = None
            if kind in ("network", "none"):
                name = core.ns_name(c)
                ns_path = core.netns.path(name)
                made_ns = True  # (teardown removes it; a namespace never made is no error)
                if not reuse_sandbox:
                    ns_made = asyncio.get_running_loop().create_future()
                    wiring = asyncio.ensure_future(self._ready(c, kind, name, ns_made))
                    # its first step asks the namespace thread for the namespace now, and
                    # the next ones for the network's part: before the runtime's start,
                    # which holds that thread for a few ms
                    await asyncio.sleep(0)
            elif kind == "container":
                ns_path = core.sandbox_ns(c)
            pid = await self._launch(c, kind, ns_path, reuse_sandbox, clock, wiring, ns_made)
        except BaseException as exc:
            if wiring is not None:  # its kernel objects must exist before they are removed
                await asyncio.shield(asyncio.gather(wiring, return_exceptions=True))
            await core.runtime.delete(c.id)
            await self.sandboxes.teardown(c, made_ns)
            if took_ports:
                self.ports.drop(c)
            c.state.error = exc.message if isinstance(exc, TetherError) else str(exc)
            if c.state.started_at != ZERO_TIME:
                c.state.status = "exited"
                c.state.exit_code = 128
            await core.save(c)
            raise
        await self._record(c, pid, clock)

    async def _ready(
        self, c: Container, kind: str, name: str, ns_made: asyncio.Future[None]
    ) -> Phases:
        """A new sandbox made ready for the container's process, alongside the rest of the
        start: its namespace made (``ns_made`` then done), its network wired and its DNS
        listener opened. Each step asks the namespace thread for its part at once."""
        core = self.core
        clock = Phases()
        try:
            ns_path = await core.netns.create(name)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                ns_made.cancel()
            else:
                ns_made.set_exception(exc)
                ns_made.exception()  # (retrieved: the start sees it through this task)
            raise
        ns_made.set_result(None)
        clock.mark("wire_netns")
        dns = None
        if core.dns is not None and kind == "network" and core.uses_embedded_dns(c):
            dns = asyncio.ensure_future(core.dns_add(c))
        try:
            await self.sandboxes.wire(c, ns_path, clock)
        finally:
            if dns is not None:  # (awaited even when the wiring failed: nothing left running)
                await asyncio.gather(dns, return_exceptions=True)
        if dns is not None:
            dns.result()
            clock.mark("wire_dns")
        return clock

    async def _launch(
        self,
        c: Container,
        kind: str,
        ns_path: str | None,
        reused: bool,
        clock: Phases,
        wiring: asyncio.Task[Phases] | None = None,
        ns_made: asyncio.Future[None] | None = None,
    ) -> int:
        """Files, bundle, then the runtime (``runc start`` once ``wiring``, the sandbox's
        network and DNS listener, is done): returns the container's pid."""
        core = self.core
        self.files.write(c, kind)
        clock.mark("files")
        bundle = self.bundle.write(c, ns_path, await self.bundle.user_mounts(c))
        clock.mark("bundle")
        log_path = core.files_dir(c) / "container.log"
        c.state.error = ""
        overlay = core.images.overlay_for(c.id)
        # None: a root mounted on the host by an older version; runc needs the host's view
        mounts = (
            PrivateMounts(netns_dir=str(core.netns.root), netns_path=ns_path, overlay=overlay)
            if overlay is not None
            else None
        )
        if ns_made is not None:  # the runtime joins the namespace by its path
            await ns_made
            clock.mark("netns")  # what the start still waited for it
        pid = await core.runtime.create(
            c.id,
            bundle,
            log_path,
            stdin=bool(c.config.get("OpenStdin")),
            stdin_once=bool(c.config.get("StdinOnce")),
            tty=c.tty,
            mounts=mounts,
            log_size_max=logconfig.size_max(c.host_config),  # P4: LogConfig max-size
        )
        clock.mark("create")
        if wiring is not None:
            wired = await wiring
            clock.mark("join")  # what the start still waited for the network
            for name, ms in wired.items():  # (the wiring's own time, alongside the above)
                clock.note(name, ms)
        for hook in core.attach_hooks.pop(c.id, []):
            try:
                await hook()
            except Exception as exc:
                log.warning("attach to %s: %s", c.id[:12], exc)
        await core.runtime.start(c.id)
        clock.mark("start")
        return pid

    async def _record(self, c: Container, pid: int, clock: Phases) -> None:
        core = self.core
        c.state.status = "running"
        c.state.pid = pid
        c.state.started_at = now()
        c.state.finished_at = ZERO_TIME
        c.state.exit_code = 0
        c.manually_stopped = False
        self.health.start(c)
        await core.save(c)
        clock.mark("save")
        core.invalidate_dns()
        if c.ports:
            await core.ports_changed.sync(c.id)
            clock.mark("ports")
        log.debug("start %s phases: %s", c.id[:12], clock)
