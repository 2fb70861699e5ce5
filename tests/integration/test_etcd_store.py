"""EtcdStore against a private etcd on 127.0.0.1 (random ports, temp data dir).

Needs /usr/bin/etcd (skipped with a reason when missing); no root, no lab:
everything stays on loopback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.storecontract import GUARD, StoreContract, aclose, summary, take

from tether.errors import Unavailable
from tether.store.base import Event, Op, Store, WatchCompacted
from tether.store.etcd import EtcdStore, LeaseExpired
from tether.store.lease import LeaseKeeper

ETCD = "/usr/bin/etcd"

pytestmark = pytest.mark.skipif(
    not os.access(ETCD, os.X_OK), reason=f"{ETCD} is not installed (Debian package etcd-server)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """One private etcd member; stop() and start() keep ports and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.root / "etcd.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                ETCD,
                "--name=default",
                f"--data-dir={self.data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {(self.root / 'etcd.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as resp:
                    if b'"true"' in resp.read():
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not become healthy within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A server this test may stop and restart."""
    server = EtcdServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))


def new_prefix() -> str:
    return f"/tether-test/{uuid.uuid4().hex}/"


class TestEtcdStoreContract(StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, etcd_server: EtcdServer) -> None:
        self.endpoint = etcd_server.endpoint

    @asynccontextmanager
    async def open_store(self) -> AsyncIterator[Store]:
        store = await EtcdStore.connect([self.endpoint], prefix=new_prefix(), timeout=3.0)
        try:
            yield store
        finally:
            await store.close()

    async def compact(self, store: Store, revision: int) -> None:
        assert isinstance(store, EtcdStore)
        await store.compact(revision)


def test_keys_live_under_the_prefix_and_values_are_json(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        prefix = new_prefix()
        store = EtcdStore([f"etcd://{etcd_server.endpoint}"], prefix=prefix)
        other = EtcdStore([etcd_server.endpoint], prefix=prefix + "sub/")
        try:
            await store.put("sub/x", {"a": [1, "b"]})
            rec = await other.get("x")
            assert rec is not None and rec.key == "x" and rec.value == {"a": [1, "b"]}
            raw = EtcdStore([etcd_server.endpoint], prefix="")
            try:
                got = await raw.get(prefix + "sub/x")
                assert got is not None and got.value == {"a": [1, "b"]}
                assert await raw.list(prefix + "sub/") != []
                everything = await raw.list("")  # an empty prefix: the whole keyspace
                assert prefix + "sub/x" in [r.key for r in everything]
                events = raw.watch("")
                await store.put("sub/y", {})
                assert [e.key for e in await take(events, 1)] == [prefix + "sub/y"]
                await aclose(events)
            finally:
                await raw.close()
        finally:
            await store.close()
            await other.close()

    run(main())


def test_snapshot_then_watch_misses_nothing(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        try:
            await store.put("s/a", {})
            await store.put("s/b", {})
            await store.delete("s/a")
            records, rev = await store.snapshot("s/")
            assert [r.key for r in records] == ["s/b"]
            assert rev == await store.current_revision()
            events = store.watch("s/", rev + 1)
            await store.put("s/c", {"v": 1})
            assert summary(await take(events, 1)) == [("put", "s/c", {"v": 1})]
            await aclose(events)
        finally:
            await store.close()

    run(main())


def test_concurrent_creates_from_two_clients(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        prefix = new_prefix()
        stores = [EtcdStore([etcd_server.endpoint], prefix=prefix) for _ in range(2)]
        try:
            for round_ in range(5):
                key = f"names/web{round_}"
                results = await asyncio.gather(
                    *(s.create(key, {"host": i}) for i, s in enumerate(stores))
                )
                assert sorted(results) == [False, True]
                rec = await stores[0].get(key)
                assert rec is not None and rec.value == {"host": results.index(True)}
        finally:
            for s in stores:
                await s.close()

    run(main())


def test_failed_key_reported_from_same_transaction(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        try:
            r1 = await store.put("a", {})
            await store.put("b", {})
            result = await store.txn(
                [
                    Op("check", "a", revision=r1),
                    Op("create", "c", {}),
                    Op("check", "b", revision=r1),
                    Op("create", "a", {}),
                ]
            )
            assert not result.ok and result.failed_key == "b"
        finally:
            await store.close()

    run(main())


def test_lease_expiry_removes_the_key(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        try:
            lease = await store.grant_lease(2)
            await store.put_with_lease("hosts/h1", {"vtep": "198.18.0.1"}, lease)
            assert await store.create("hosts/h2", {}, lease=lease)
            events = store.watch("hosts/", await store.current_revision() + 1)
            got: list[Event] = []
            while len(got) < 2:  # ends when etcd expires the lease (bounded by GUARD)
                got += await take(events, 1)
            await aclose(events)
            assert sorted((e.kind, e.key) for e in got) == [
                ("delete", "hosts/h1"),
                ("delete", "hosts/h2"),
            ]
            assert await store.list("hosts/") == []
            with pytest.raises(LeaseExpired):
                await store.keepalive(lease)
        finally:
            await store.close()

    run(main())


def test_lease_keeper_keeps_key_alive_and_revokes_on_close(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        before = asyncio.all_tasks()
        try:
            keeper = LeaseKeeper(store, ttl=2)
            lease = await keeper.start()
            assert keeper.running
            await store.txn([Op("create", "m/h1", {"ip": "198.18.0.1"})], lease=lease)
            await asyncio.sleep(5)  # > 2 x ttl: without refreshes the key would be gone
            assert await store.get("m/h1") is not None
            assert await store.keepalive(lease) > 0
            await keeper.close()
            assert not keeper.running
            assert await store.get("m/h1") is None
            assert asyncio.all_tasks() <= before
        finally:
            await store.close()

    run(main())


def test_lease_keeper_regrants_after_expiry(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        regranted: asyncio.Queue[int] = asyncio.Queue()

        async def register(lease: int) -> None:
            await store.put_with_lease("m/h1", {"again": True}, lease)
            regranted.put_nowait(lease)

        keeper = LeaseKeeper(store, ttl=2, on_regrant=register)
        try:
            first = await keeper.start()
            await store.revoke_lease(first)  # as if it had expired
            second = await asyncio.wait_for(regranted.get(), GUARD)
            assert second != first and keeper.lease_id == second
            rec = await store.get("m/h1")
            assert rec is not None and rec.value == {"again": True}
        finally:
            await keeper.close()
            await store.close()

    run(main())


def test_a_write_under_a_gone_lease_is_lease_expired_and_the_keeper_replaces_it(
    etcd_server: EtcdServer,
) -> None:
    """etcd answers a put or txn attached to a lease it no longer has with NOT_FOUND
    "requested lease not found": that is ``LeaseExpired`` (not a store failure), and
    ``LeaseKeeper.under`` grants a new lease and writes again."""

    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        keeper = LeaseKeeper(store, ttl=30)
        try:
            first = await keeper.start()
            await store.revoke_lease(first)  # gone; the keeper's keep-alive is 7 s away
            with pytest.raises(LeaseExpired):
                await store.put("m/a", {"x": 1}, lease=first)
            with pytest.raises(LeaseExpired):
                await store.txn([Op("create", "m/b", {"x": 2})], lease=first)

            async def put(lease: int) -> int:
                return await store.put("m/c", {"x": 3}, lease=lease)

            await keeper.under(put)
            assert keeper.lease_id != first
            assert await store.get("m/c") is not None
        finally:
            await keeper.close()  # revokes the new lease: m/c goes with it
            assert await store.get("m/c") is None
            await store.close()

    run(main())


def test_compacted_watch_raises(etcd_server: EtcdServer) -> None:
    async def main() -> None:
        store = EtcdStore([etcd_server.endpoint], prefix=new_prefix())
        try:
            first = await store.put("k", {"v": 1})
            last = await store.put("k", {"v": 2})
            await store.compact(last)
            with pytest.raises(WatchCompacted) as info:
                await take(store.watch("", first), 1)
            assert info.value.compact_revision >= last
        finally:
            await store.close()

    run(main())


def test_unreachable_port_is_unavailable_within_timeout() -> None:
    port = free_port()  # nothing listens there

    async def main() -> None:
        store = EtcdStore([f"127.0.0.1:{port}"], timeout=1.0)
        try:
            await check_all_unavailable(store, f"etcd://127.0.0.1:{port}")
        finally:
            await store.close()
        with pytest.raises(Unavailable):
            await EtcdStore.connect([f"127.0.0.1:{port}"], timeout=1.0)

    run(main())


def test_silent_server_is_unavailable_within_timeout() -> None:
    """A peer that accepts TCP but never answers (a hung etcd)."""

    async def main() -> None:
        conns: list[asyncio.StreamWriter] = []

        async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            conns.append(w)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        store = EtcdStore([f"127.0.0.1:{port}"], timeout=1.0)
        try:
            await check_all_unavailable(store, f"etcd://127.0.0.1:{port}")
        finally:
            await store.close()
            for w in conns:
                w.close()
            server.close()
            await server.wait_closed()

    run(main())


async def check_all_unavailable(store: EtcdStore, name: str) -> None:
    calls: dict[str, Any] = {
        "get": lambda: store.get("a"),
        "list": lambda: store.list("a/"),
        "put": lambda: store.put("a", {}),
        "create": lambda: store.create("a", {}),
        "delete": lambda: store.delete("a"),
        "txn": lambda: store.txn([Op("check", "a"), Op("put", "b", {})]),
        "grant_lease": lambda: store.grant_lease(5),
        "keepalive": lambda: store.keepalive(1),
    }
    for what, call in calls.items():
        # The store's own timeout is 1 s; the guard only turns a hang into a failure.
        with pytest.raises(Unavailable) as info:
            await asyncio.wait_for(call(), store.timeout + 4)
        message = info.value.message
        assert message.startswith(f"cluster store {name} is unreachable: "), (what, message)
        assert info.value.status == 503


def test_etcd_down_then_back(own_etcd: EtcdServer) -> None:
    async def main() -> None:
        store = await EtcdStore.connect([own_etcd.endpoint], prefix=new_prefix(), timeout=1.0)
        follower_store = EtcdStore([own_etcd.endpoint], prefix=store.prefix, timeout=1.0)
        seen: asyncio.Queue[Event] = asyncio.Queue()

        async def follow() -> None:
            async for event in follower_store.watch("n/"):
                seen.put_nowait(event)

        try:
            await store.put("n/before", {"v": 1})
            follower = asyncio.create_task(follow())
            await asyncio.sleep(0.5)  # let the watch stream open
            await store.put("n/one", {"v": 1})
            assert (await asyncio.wait_for(seen.get(), GUARD)).key == "n/one"

            own_etcd.stop()
            await check_all_unavailable(store, f"etcd://{own_etcd.endpoint}")
            assert not follower.done()  # the watch waits for etcd to come back

            own_etcd.start()
            for _ in range(40):  # the same object recovers (bounded wait)
                try:
                    await store.put("n/two", {"v": 2})
                    break
                except Unavailable:
                    await asyncio.sleep(0.25)
            else:
                pytest.fail("store did not recover after etcd restarted")
            rec = await store.get("n/before")
            assert rec is not None and rec.value == {"v": 1}
            event = await asyncio.wait_for(seen.get(), GUARD)
            assert (event.kind, event.key, event.value) == ("put", "n/two", {"v": 2})
            follower.cancel()
            with pytest.raises(asyncio.CancelledError):
                await follower
        finally:
            await store.close()
            await follower_store.close()

    run(main())


def test_second_endpoint_takes_over(etcd_server: EtcdServer) -> None:
    dead = f"127.0.0.1:{free_port()}"

    async def main() -> None:
        store = EtcdStore([dead, etcd_server.endpoint], prefix=new_prefix(), timeout=1.0)
        try:
            # the dead endpoint refuses the connection: the same call goes on to the live one
            await store.put("x", {"ok": True})
            assert store.endpoints[store._active].port == etcd_server.client_port
            rec = await store.get("x")
            assert rec is not None and rec.value == {"ok": True}
        finally:
            await store.close()

    run(main())
