"""Shutdown (issue 20): every closing step is bounded, so a part that hangs (an etcd that
does not answer, a request that never ends) cannot hold the daemon; the rest still close."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tests.unit.test_container_controller import aio

from tether import daemon


class _Hangs:
    def __init__(self) -> None:
        self.closing = False

    async def close(self) -> None:
        self.closing = True
        await asyncio.sleep(3600)


class _Closes:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Server:
    async def close(self, grace: float) -> None:
        await asyncio.sleep(3600)  # a handler that never finishes


@aio
async def test_a_hanging_step_is_left_behind_and_the_rest_still_close(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(daemon, "STEP_BOUND", 0.05)
    monkeypatch.setattr(daemon, "HTTP_GRACE", 0.02)
    engine, cluster, after = _Hangs(), _Hangs(), _Closes()
    with caplog.at_level(logging.WARNING, logger="tether.daemon"):
        await asyncio.wait_for(
            daemon._shut_down(engine, [cluster, after], [_Server()]),  # type: ignore[arg-type]
            30,
        )
    assert engine.closing and cluster.closing and after.closed
    left = [r.getMessage() for r in caplog.records if "left behind" in r.getMessage()]
    assert len(left) == 3, left  # the API, the engine, the hanging part
