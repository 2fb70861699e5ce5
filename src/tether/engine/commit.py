"""``POST /commit`` (``docker commit``): a container's changes become an image.

Docker's order: the container must exist and not be being removed; a running container is
paused for the copy unless ``pause=0`` (and unpaused after, with the pause/unpause events
Docker emits), the image is made by the image store (its own layer over the container's
image) and tagged, then the container's ``commit`` event names the new image.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from tether.engine.containers import ContainerController
from tether.engine.seams import ImageCatalog
from tether.errors import Conflict

EXIT_WAIT_S = 2.0  # how long a failed pause waits for the container's exit to be seen


@dataclass
class CommitRequest:
    """The query and body of ``POST /commit``."""

    container: str
    repo: str = ""
    tag: str = ""
    author: str = ""
    comment: str = ""
    changes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    pause: bool = True

    @property
    def reference(self) -> str | None:
        if not self.repo:
            return None
        return f"{self.repo}:{self.tag}" if self.tag else self.repo


async def commit(
    ctl: ContainerController,
    images: ImageCatalog[Any],
    req: CommitRequest,
    container_config: dict[str, Any],
) -> str:
    """Make the image; return its id. ``container_config`` is the container's Config as
    inspect shows it (the new image's ``container_config``)."""
    c = ctl.get(req.container)
    if c.state.status == "dead":
        raise Conflict(f"You cannot commit container {c.id} which is Dead")
    if c.state.status == "removing":
        raise Conflict(f"You cannot commit container {c.id} which is being removed")
    paused_here = False
    if req.pause and c.running and not c.state.paused:
        try:
            await ctl.ops.pause(c.id)
            paused_here = True
        except Conflict:
            # it may have exited just now (runc saw it before the daemon did): then nothing
            # writes to its files any more, and the commit goes on unpaused
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ctl.exit_future(c)), EXIT_WAIT_S)
            if c.running:
                raise
    try:
        image = await images.commit(
            c.image_id,
            c.id,
            container_config=container_config,
            config=req.config,
            changes=req.changes,
            author=req.author,
            comment=req.comment,
            tag=req.reference,
        )
    finally:
        if paused_here and c.running:
            with contextlib.suppress(Conflict):
                await ctl.ops.unpause(c.id)
    image_id: str = image.id
    attrs = {"comment": req.comment, "imageID": image_id, "imageRef": req.reference or ""}
    ctl.core.emit("commit", c, **{k: v for k, v in attrs.items() if v})
    return image_id
