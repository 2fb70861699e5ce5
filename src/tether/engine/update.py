"""``POST /containers/{id}/update`` (issue 16, P3): resources and the restart policy.

Docker's order: the resources are checked (``verifyContainerSettings`` with ``update``), merged
into the record (``UpdateContainer``: what an update may not change, with its texts), applied
to a running or paused container's cgroup (``runc update``), and only then saved: a refusal
or a runtime failure leaves the record as it was.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tether.engine import resources
from tether.engine.core import EngineCore
from tether.engine.record import Container, parse_restart
from tether.errors import Conflict, Internal, TetherError


class Updater:
    def __init__(self, core: EngineCore) -> None:
        self.core = core

    async def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        """Apply an update body; returns Docker's warnings."""
        c = self.core.table.get(ref)
        async with self.core.lock(c.id):
            new_hc, warnings = resources.check_update(
                c.id, c.host_config, body, resources.host_limits()
            )
            rp = body.get("RestartPolicy")
            if isinstance(rp, dict) and rp.get("Name"):
                new_hc["RestartPolicy"] = self._restart_policy(c, rp)
            if c.running and c.state.status != "restarting" and resources.touches(body):
                await self._apply(c, new_hc, body)
            c.host_config = new_hc
            await self.core.save(c)
        self.core.emit("update", c)
        return warnings

    @staticmethod
    def _restart_policy(c: Container, rp: dict[str, Any]) -> dict[str, Any]:
        policy = parse_restart(rp)
        if c.host_config.get("AutoRemove") and policy["Name"] != "no":
            raise Conflict(
                f"Cannot update container {c.id}: Restart policy cannot be updated because "
                "AutoRemove is enabled for the container"
            )
        return policy

    async def _apply(self, c: Container, new_hc: dict[str, Any], body: dict[str, Any]) -> None:
        spec = resources.resource_spec(new_hc)
        pids = body.get("PidsLimit")
        if isinstance(pids, int) and pids <= 0:
            spec = dataclasses.replace(spec, pids_limit=-1)  # back to unlimited
        try:
            await self.core.runtime.update(c.id, spec)
        except TetherError as exc:
            raise Internal(f"Cannot update container {c.id}: {exc.message}") from None
