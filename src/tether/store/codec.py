"""The stores' value codec: canonical JSON text for values, validated transactions.

Shared by the SQLite, etcd and in-memory stores so all three store and compare
exactly the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tether.store.base import Op, Value


def encode_value(value: Value) -> str:
    """The canonical JSON text of a value (also validates it is JSON-able)."""
    if not isinstance(value, dict):
        raise TypeError(f"store values must be dicts, not {type(value).__name__}")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def decode_value(text: str) -> Value:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored value is not a JSON object")
    return value


def encode_ops(ops: Sequence[Op]) -> list[str | None]:
    """Validate every op before anything is applied (all or nothing)."""
    out: list[str | None] = []
    written: set[str] = set()
    for op in ops:
        if op.kind != "check":
            if op.key in written:
                raise ValueError(f"duplicate key {op.key!r} in transaction")
            written.add(op.key)
        if op.kind in ("put", "create"):
            if op.value is None:
                raise ValueError(f"{op.kind} of {op.key!r} needs a value")
            out.append(encode_value(op.value))
        elif op.kind in ("delete", "check"):
            out.append(None)
        else:
            raise ValueError(f"unknown op kind {op.kind!r}")
    return out
