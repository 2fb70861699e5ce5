"""EtcdStore's endpoint failover, with fake member connections (no etcd, no network)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
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
            raft_term = 2

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
    with pytest.raises(
        Unavailable,
        match=r"^cluster store etcd://a:2379,etcd://b:2379 is unreachable: no member could "
        r"serve the request \(etcd://a:2379: connection refused; etcd://b:2379: connection",
    ):
        asyncio.run(store.current_revision())
    # both members, again after each back-off (50, 100, 200, 400 ms) until the 1 s timeout
    assert sorted(set(calls)) == ["a:2379", "b:2379"] and 4 <= len(calls) <= 12


def test_failover_policy() -> None:
    from tether.store.etcdconn import Failover

    refused = _error("UNAVAILABLE", REFUSED)
    late = _error("DEADLINE_EXCEEDED", "Deadline Exceeded")
    # three members: the next one at once, a back-off after each round, none past the deadline
    f = Failover(0.0, 3.0, 3, member_lost=-1e9)
    assert [f.next(refused, 0.0, in_flight=True) for _ in range(6)] == [
        0.0, 0.0, 0.05, 0.0, 0.0, 0.1,
    ]  # fmt: skip
    assert f.next(refused, 3.0, in_flight=True) is None
    # a timeout under overload is final; after a member was lost it gets one more timeout
    assert Failover(0.0, 3.0, 3, member_lost=-1e9).next(late, 3.0, in_flight=True) is None
    f = Failover(0.0, 3.0, 3, member_lost=-1e9)
    assert f.next(refused, 0.1, in_flight=True) == 0.0  # a member refused: lost
    assert f.next(late, 3.1, in_flight=True) == 0.0
    assert f.deadline == pytest.approx(6.1)
    assert f.next(late, 6.1, in_flight=True) is None
    # a Txn's first attempt is never repeated after a timeout or a broken call
    broken = _error("UNAVAILABLE", BROKEN)
    assert Failover(0.0, 3.0, 3, member_lost=0.0).next(late, 3.0, in_flight=False) is None
    assert Failover(0.0, 3.0, 3, member_lost=0.0).next(broken, 1.0, in_flight=False) is None
    assert Failover(0.0, 3.0, 3, member_lost=0.0).next(broken, 1.0, in_flight=True) == 0.0


BROKEN = "Stream removed (recvmsg:Connection reset by peer (104))"


class TxnKV:
    """Member a breaks every call in flight (having applied a Txn); member b answers."""

    def __init__(self, name: str, book: dict[str, Any]) -> None:
        self.name, self.book = name, book

    async def Range(self, request: Any, **kw: Any) -> Any:
        self.book["calls"].append(f"{self.name} Range")
        if self.name == "a:2379":
            raise _error("UNAVAILABLE", BROKEN)
        return SimpleNamespace(header=SimpleNamespace(revision=3, raft_term=2), kvs=[])

    async def Txn(self, request: Any, **kw: Any) -> Any:
        self.book["calls"].append(f"{self.name} Txn")
        header = SimpleNamespace(revision=9, raft_term=2)
        if self.name == "a:2379":
            self.book["stored"] = self.book["value"]  # applied, then the member died
            raise _error("UNAVAILABLE", BROKEN)
        stored = self.book.get("stored")
        if stored is None:
            return SimpleNamespace(header=header, succeeded=True, responses=[])
        kv = SimpleNamespace(value=stored.encode(), mod_revision=8)
        reply = SimpleNamespace(response_range=SimpleNamespace(kvs=[kv]))
        return SimpleNamespace(header=header, succeeded=False, responses=[reply])


def _txn_store(book: dict[str, Any]) -> EtcdStore:
    store = EtcdStore(["a:2379", "b:2379"], timeout=1.0)

    def open_client(endpoint: Endpoint) -> Any:
        return FakeConnection(TxnKV(f"{endpoint.host}:{endpoint.port}", book))  # type: ignore[arg-type]

    store._open_client = open_client  # type: ignore[method-assign]
    return store


@pytest.mark.parametrize(
    "detail",
    [
        BROKEN,
        "etcdserver: leader changed",
        "etcdserver: request timed out, possibly due to previous leader failure",
    ],
)
def test_calls_broken_in_flight_are_ambiguous(detail: str) -> None:
    from tether.store.etcdconn import ambiguous, broken

    error = _error("UNAVAILABLE", detail)
    assert broken(error) and ambiguous(error, since_loss=1e9)
    assert not broken(_error("UNAVAILABLE", REFUSED))


def test_a_read_broken_in_flight_is_read_again_elsewhere() -> None:
    book: dict[str, Any] = {"calls": []}
    assert asyncio.run(_txn_store(book).current_revision()) == 3
    assert book["calls"] == ["a:2379 Range", "b:2379 Range"]


def test_a_create_broken_in_flight_that_was_applied_is_a_success() -> None:
    from tether.store.base import Op
    from tether.store.codec import encode_value

    mine = {"container": "c1", "host": "198.18.0.11"}
    book: dict[str, Any] = {"calls": [], "value": encode_value(mine)}
    result = asyncio.run(_txn_store(book).txn([Op("create", "ip/10.0.0.2", mine)]))
    assert result.ok
    assert book["calls"] == ["a:2379 Txn", "b:2379 Txn"]
    # someone else's value under the key: a real conflict, named
    book.update(calls=[], value=encode_value({"container": "other"}))
    result = asyncio.run(_txn_store(book).txn([Op("create", "ip/10.0.0.2", mine)]))
    assert not result.ok and result.failed_key == "ip/10.0.0.2"


def test_a_tls_refusal_is_tried_on_each_member_once_and_named() -> None:
    from tether.store.etcdconn import EtcdSecurity, StoreAccessRefused

    calls: list[str] = []
    refused = _error(
        "UNAVAILABLE",
        "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:x: "
        "Unwrap failed (TSI_DATA_CORRUPTED)",
    )
    store = _store({"a:2379": refused, "b:2379": refused}, calls)
    store.security = EtcdSecurity(tls=True)
    with pytest.raises(StoreAccessRefused, match=r"^TLS: cluster store etcd://b:2379 refused"):
        asyncio.run(store.current_revision())
    assert calls == ["a:2379", "b:2379"]
