"""The event bus behind ``GET /events``: container and network events as Docker emits them."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any


class Events:
    def __init__(self, history: int = 1000) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def emit(self, kind: str, action: str, actor_id: str, attrs: dict[str, str]) -> None:
        now = time.time_ns()
        ev: dict[str, Any] = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attrs)},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if kind == "container":
            ev["status"] = action
            ev["id"] = actor_id
            ev["from"] = attrs.get("image", "")
        self.history.append(ev)
        for q in list(self.subscribers):
            q.put_nowait(ev)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(q)


def matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "type" and ev["Type"] not in values:
            return False
        if key == "event" and ev["Action"] not in values:
            return False
        if key in ("container", "network"):
            if ev["Type"] != key:
                return False
            actor = ev["Actor"]
            if not any(
                actor["ID"].startswith(v) or actor["Attributes"].get("name") == v for v in values
            ):
                return False
        if key == "label":
            attrs = ev["Actor"]["Attributes"]
            for v in values:
                k, eq, val = v.partition("=")
                if k not in attrs or (eq and attrs[k] != val):
                    return False
    return True
