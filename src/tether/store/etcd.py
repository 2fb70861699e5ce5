"""The etcd v3 store (cluster scope), over the asyncio gRPC client aetcd.

``EtcdStore`` implements ``tether.store.base.Store``:

- keys live under ``prefix`` (default ``/tether/``); values are JSON;
- a record's revision is its etcd ``mod_revision``; etcd's revision is
  global, so revisions compare across keys exactly as in the SQLite store;
- ``txn(ops)`` is one etcd transaction: ``create`` compares ``version == 0``,
  ``check`` compares ``mod_revision == rev`` (0 = absent); on failure the
  same transaction reads the compared keys back, so ``failed_key`` names
  the first op whose condition did not hold without a racy second read;
- ``watch`` follows a prefix from a start revision over its own gRPC stream;
  it resumes by itself after etcd restarts (from the last revision seen) and
  raises ``WatchCompacted`` when the history it needs is gone. Cancelling the
  consuming task (or ``aclose()``) cancels the stream: no task is left behind;
- leases: ``grant_lease`` / ``keepalive`` / ``revoke_lease``, ``lease=`` on
  ``put``/``create``/``txn`` (``tether.store.lease.LeaseKeeper`` keeps a lease alive).

The pieces: ``tether.store.etcdcall`` (connections, failover, TLS and errors named, the
overload limiter and counters, "etcd is back"), ``tether.store.etcdwatch`` (the watch
stream), ``tether.store.etcdconn`` (one member's connection and security). Importing this
module sets ``GRPC_ENABLE_FORK_SUPPORT=false`` before gRPC loads (see ``etcdcall``): import
it before anything else that may import grpc.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.errors import Internal, TetherError
from tether.store.base import (
    LeaseExpired,
    Op,
    Record,
    TxnResult,
    Value,
    WatchCompacted,
)
from tether.store.etcdcall import LIMITER_SIZE
from tether.store.etcdconn import Endpoint, EtcdSecurity, landed, parse_endpoint
from tether.store.etcdwatch import EtcdWatches, range_end

__all__ = [
    "LIMITER_SIZE",
    "Endpoint",
    "EtcdStore",
    "LeaseExpired",
    "WatchCompacted",
    "parse_endpoint",
    "range_end",
]


def _lease_gone(error: Internal, lease: int) -> TetherError:
    """``LeaseExpired`` when a write attached to ``lease`` failed because etcd no longer
    has that lease (it expired while etcd or this host was away); else ``error``."""
    from aetcd import rpc

    cause = error.__cause__
    if (
        lease
        and isinstance(cause, rpc.AioRpcError)
        and cause.code() == rpc.StatusCode.NOT_FOUND
        and "lease not found" in (cause.details() or "")
    ):
        return LeaseExpired(lease)
    return error


class EtcdStore(EtcdWatches):
    """The Store over etcd v3. Connects lazily; see the module docstring."""

    @classmethod
    async def connect(
        cls,
        endpoints: Sequence[str],
        prefix: str = "/tether/",
        timeout: float = 3.0,
        security: EtcdSecurity | None = None,
    ) -> EtcdStore:
        """Create a store and check etcd answers (``Unavailable`` if not)."""
        store = cls(endpoints, prefix, timeout, security)
        try:
            await store.current_revision()
        except BaseException:
            await store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"EtcdStore({self.name!r}, prefix={self.prefix!r})"

    def _record(self, kv: Any) -> Record:
        from tether.store.codec import decode_value

        return Record(self._unkey(kv.key), decode_value(kv.value.decode()), int(kv.mod_revision))

    # -- the Store protocol -------------------------------------------------

    async def get(self, key: str) -> Record | None:
        from aetcd import rpc

        request = rpc.RangeRequest(key=self._key(key))
        response = await self._call(
            lambda c: c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata)
        )
        return self._record(response.kvs[0]) if response.kvs else None

    async def snapshot(self, prefix: str) -> tuple[list[Record], int]:
        """``list(prefix)`` and the store revision it was read at.

        Resync pattern: ``records, rev = await store.snapshot(p)`` then
        ``store.watch(p, rev + 1)`` misses nothing and replays nothing.
        """
        from aetcd import rpc

        start = self._key(prefix)
        request = rpc.RangeRequest(
            key=start or b"\0",  # etcd refuses an empty key; "\0" starts every range
            range_end=range_end(start),
            sort_order=rpc.RangeRequest.SortOrder.ASCEND,
            sort_target=rpc.RangeRequest.SortTarget.KEY,
        )
        response = await self._call(
            lambda c: c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata)
        )
        return [self._record(kv) for kv in response.kvs], int(response.header.revision)

    async def list(self, prefix: str) -> list[Record]:
        records, _ = await self.snapshot(prefix)
        return records

    async def current_revision(self) -> int:
        """etcd's current revision (that of the last write cluster-wide)."""
        _, revision = await self.snapshot("\0")  # an empty range: just the header
        return revision

    async def put(self, key: str, value: Value, *, lease: int = 0) -> int:
        from aetcd import rpc

        from tether.store.codec import encode_value

        request = rpc.PutRequest(
            key=self._key(key), value=encode_value(value).encode(), lease=lease
        )
        try:
            response = await self._call(
                lambda c: c.kvstub.Put(request, timeout=self.timeout, metadata=c.metadata)
            )
        except Internal as error:
            raise _lease_gone(error, lease) from error.__cause__
        return int(response.header.revision)

    async def put_with_lease(self, key: str, value: Value, lease: int) -> int:
        """``put`` attaching the key to a lease (deleted when it expires)."""
        return await self.put(key, value, lease=lease)

    async def create(self, key: str, value: Value, *, lease: int = 0) -> bool:
        result = await self.txn([Op("create", key, value)], lease=lease)
        return result.ok

    async def delete(self, key: str) -> bool:
        from aetcd import rpc

        request = rpc.DeleteRangeRequest(key=self._key(key))
        response = await self._call(
            lambda c: c.kvstub.DeleteRange(request, timeout=self.timeout, metadata=c.metadata)
        )
        return int(response.deleted) > 0

    async def txn(self, ops: Sequence[Op], *, lease: int = 0) -> TxnResult:
        """One etcd transaction; ``lease`` attaches every written key."""
        from aetcd import rpc

        from tether.store.codec import encode_ops

        encoded = encode_ops(ops)
        compares: list[Any] = []
        conditioned: list[Op] = []
        success: list[Any] = []
        for op, text in zip(ops, encoded, strict=True):
            raw = self._key(op.key)
            if op.kind == "create":
                compares.append(
                    rpc.Compare(
                        key=raw,
                        target=rpc.Compare.CompareTarget.VERSION,
                        result=rpc.Compare.CompareResult.EQUAL,
                        version=0,
                    )
                )
                conditioned.append(op)
            elif op.kind == "check":
                compares.append(
                    rpc.Compare(
                        key=raw,
                        target=rpc.Compare.CompareTarget.MOD,
                        result=rpc.Compare.CompareResult.EQUAL,
                        mod_revision=op.revision,
                    )
                )
                conditioned.append(op)
            if text is not None:
                put = rpc.PutRequest(key=raw, value=text.encode(), lease=lease)
                success.append(rpc.RequestOp(request_put=put))
            elif op.kind == "delete":
                success.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=raw)))
        # On failure, read back every compared key in the same transaction,
        # to name the op that failed (and to recognise a write of our own).
        failure = [
            rpc.RequestOp(request_range=rpc.RangeRequest(key=self._key(op.key)))
            for op in conditioned
        ]
        request = rpc.TxnRequest(compare=compares, success=success, failure=failure)
        try:
            response, ambiguous = await self._txn_call(request)
        except Internal as error:
            raise _lease_gone(error, lease) from error.__cause__
        revision = int(response.header.revision)
        if response.succeeded:
            return TxnResult(ok=True, revision=revision)
        for op, reply in zip(conditioned, response.responses, strict=True):
            kvs = reply.response_range.kvs
            current = int(kvs[0].mod_revision) if kvs else 0
            if (op.kind == "create" and kvs) or (op.kind == "check" and current != op.revision):
                if ambiguous and landed(ops, encoded, op.key, kvs):
                    return TxnResult(ok=True, revision=revision)
                return TxnResult(ok=False, failed_key=op.key, revision=revision)
        # Only reachable if etcd and this code disagree on a comparison.
        return TxnResult(ok=False, failed_key=conditioned[0].key, revision=revision)

    # -- leases and maintenance ---------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""
        from aetcd import rpc

        request = rpc.LeaseGrantRequest(TTL=ttl)
        response = await self._call(
            lambda c: c.leasestub.LeaseGrant(request, timeout=self.timeout, metadata=c.metadata),
            priority=True,
        )
        if response.error:
            raise Internal(f"cluster store {self.name} refused a lease: {response.error}")
        return int(response.ID)

    async def keepalive(self, lease_id: int) -> int:
        """Refresh a lease once; returns its TTL. ``LeaseExpired`` if gone."""
        from aetcd import rpc

        async def refresh(client: Any) -> Any:
            call = client.leasestub.LeaseKeepAlive(timeout=self.timeout, metadata=client.metadata)
            try:
                await call.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
                return await call.read()
            finally:
                call.cancel()

        response = await self._call(refresh, priority=True)
        if int(response.TTL) <= 0:
            raise LeaseExpired(lease_id)
        return int(response.TTL)

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease now (its keys are deleted); a missing lease is fine."""
        from aetcd import rpc

        request = rpc.LeaseRevokeRequest(ID=lease_id)
        try:
            await self._call(
                lambda c: c.leasestub.LeaseRevoke(
                    request, timeout=self.timeout, metadata=c.metadata
                )
            )
        except Internal as error:
            cause = error.__cause__
            if not (
                isinstance(cause, rpc.AioRpcError) and cause.code() == rpc.StatusCode.NOT_FOUND
            ):
                raise

    async def compact(self, revision: int) -> None:
        """Drop history up to ``revision`` (watches from before it get
        ``WatchCompacted``)."""
        from aetcd import rpc

        request = rpc.CompactionRequest(revision=revision, physical=True)
        await self._call(
            lambda c: c.kvstub.Compact(request, timeout=self.timeout, metadata=c.metadata)
        )
