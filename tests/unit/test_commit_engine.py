"""``POST /commit`` in the engine (fakes, no root): a running container is paused for the
copy and unpaused after, with Docker's events; one that exits while being paused is
committed unpaused; a dead one is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_container_controller import REAL_SLEEP, World, aio, started, until

from tether.engine.commit import CommitRequest, commit
from tether.errors import Conflict, NotFound


class Made:
    id = "sha256:" + "cd" * 32


def _catalog(w: World) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def fake_commit(image_id: str, container_id: str, **kw: Any) -> Made:
        calls.append({"image_id": image_id, "container_id": container_id, **kw})
        return Made()

    w.images.commit = fake_commit  # type: ignore[attr-defined]
    return calls


def _actions(w: World, cid: str) -> list[str]:
    return [e["Action"] for e in w.ctl.core.events.history if e.get("id") == cid]  # type: ignore[union-attr]


@aio
async def test_commit_pauses_a_running_container(tmp_path: Path) -> None:
    w = await started(tmp_path)
    calls = _catalog(w)
    c = await w.run("c1")
    req = CommitRequest(container="c1", repo="mine", tag="1", changes=["EXPOSE 80"], author="me")
    image_id = await commit(w.ctl, w.images, req, {"Cmd": ["sh"]})  # type: ignore[arg-type]
    assert image_id == Made.id
    assert calls == [{
        "image_id": c.image_id, "container_id": c.id, "container_config": {"Cmd": ["sh"]},
        "config": {}, "changes": ["EXPOSE 80"], "author": "me", "comment": "", "tag": "mine:1",
    }]  # fmt: skip
    assert [x[0] for x in w.rt.calls if x[0] in ("pause", "resume")] == ["pause", "resume"]
    assert _actions(w, c.id)[-3:] == ["pause", "unpause", "commit"]
    assert c.running and not c.state.paused
    await w.close()


@aio
async def test_commit_without_pause_or_of_a_stopped_container(tmp_path: Path) -> None:
    w = await started(tmp_path)
    _catalog(w)
    c = await w.run("c1")
    await commit(w.ctl, w.images, CommitRequest(container="c1", pause=False), {})  # type: ignore[arg-type]
    w.rt.exit(c.id, 0)
    await until(lambda: not c.running, "exit seen")
    await commit(w.ctl, w.images, CommitRequest(container="c1"), {})  # type: ignore[arg-type]
    assert not [x for x in w.rt.calls if x[0] == "pause"]
    with pytest.raises(NotFound):
        await commit(w.ctl, w.images, CommitRequest(container="nosuch"), {})  # type: ignore[arg-type]
    c.state.status = "dead"
    with pytest.raises(Conflict, match=f"^You cannot commit container {c.id} which is Dead$"):
        await commit(w.ctl, w.images, CommitRequest(container="c1"), {})  # type: ignore[arg-type]
    await w.close()


@aio
async def test_an_exit_during_the_pause_is_not_an_error(tmp_path: Path) -> None:
    w = await started(tmp_path)
    calls = _catalog(w)
    c = await w.run("c1")

    async def pause_fails(cid: str) -> None:
        w.rt.exit(cid, 0)  # runc saw the exit before the daemon did
        await REAL_SLEEP(0)
        raise Conflict("container not running")

    w.rt.pause = pause_fails  # type: ignore[method-assign]
    await commit(w.ctl, w.images, CommitRequest(container="c1"), {})  # type: ignore[arg-type]
    assert len(calls) == 1 and not c.running
    await w.close()
