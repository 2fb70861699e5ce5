"""EtcdStore's endpoint failover, with fake member connections (no etcd, no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.errors import Unavailable
from tether.store.etcd import Endpoint, EtcdStore


def _error(code: str, details: str) -> BaseException:
    from aetcd import rpc

    return rpc.AioRpcError(getattr(rpc.StatusCode, code), None, None, details=details)  # type: ignore[arg-type]


REFUSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:x: Connection refused"


class FakeKV:
    def __init__(self, failure: BaseException | None, calls: list[str], name: str) -> None:
        self.failure, self.calls, self.name = failure, calls, name

    async def Range(self, request: Any, **kw: Any) -> Any:
        self.calls.append(self.name)
        if self.failure is not None:
            raise self.failure

        class Header:
            revision = 7

        class Response:
            header = Header()
            kvs: list[Any] = []

        return Response()


class FakeConnection:
    def __init__(self, kv: FakeKV) -> None:
        self.kvstub = kv
        self.metadata = ()

    async def connect(self) -> None:
        pass

    def forget_token(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _store(failures: dict[str, BaseException | None], calls: list[str]) -> EtcdStore:
    store = EtcdStore(list(failures), timeout=1.0)

    def open_client(endpoint: Endpoint) -> Any:
        name = f"{endpoint.host}:{endpoint.port}"
        return FakeConnection(FakeKV(failures[name], calls, name))

    store._open_client = open_client  # type: ignore[method-assign]
    return store


def test_a_call_that_never_reached_etcd_is_tried_on_the_next_members() -> None:
    calls: list[str] = []
    down = _error("UNAVAILABLE", REFUSED)
    store = _store({"a:2379": down, "b:2379": down, "c:2379": None}, calls)
    assert asyncio.run(store.current_revision()) == 7
    assert calls == ["a:2379", "b:2379", "c:2379"]
    calls.clear()
    assert asyncio.run(store.current_revision()) == 7  # stays on the member that answered
    assert calls == ["c:2379"]


def test_a_member_without_leader_is_passed_over() -> None:
    calls: list[str] = []
    no_leader = _error("UNAVAILABLE", "etcdserver: no leader")
    store = _store({"a:2379": no_leader, "b:2379": None}, calls)
    assert asyncio.run(store.current_revision()) == 7
    assert calls == ["a:2379", "b:2379"]


def test_a_timeout_is_not_retried_it_may_have_been_applied() -> None:
    calls: list[str] = []
    late = _error("DEADLINE_EXCEEDED", "Deadline Exceeded")
    store = _store({"a:2379": late, "b:2379": None}, calls)
    with pytest.raises(Unavailable, match="etcd://a:2379 is unreachable"):
        asyncio.run(store.current_revision())
    assert calls == ["a:2379"]
    assert asyncio.run(store.current_revision()) == 7  # the next call goes to b
    assert calls == ["a:2379", "b:2379"]


def test_every_member_down_fails_naming_the_store() -> None:
    calls: list[str] = []
    down = _error("UNAVAILABLE", REFUSED)
    store = _store({"a:2379": down, "b:2379": down}, calls)
    with pytest.raises(Unavailable, match="is unreachable: connection refused"):
        asyncio.run(store.current_revision())
    assert sorted(set(calls)) == ["a:2379", "b:2379"] and len(calls) <= 3
