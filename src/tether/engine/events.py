"""The event bus behind ``GET /events``: container and network events as Docker emits them.

Container events carry ``name``, ``image`` and the container's labels as attributes (so
``--filter label=...`` works); network events carry ``name`` and ``type``, plus
``container`` for connect/disconnect. A policy restart shows as ``die`` then ``start``
(Docker's restart manager); ``restart`` is emitted by ``docker restart`` only. Filters
follow Docker's: ``type``/``event``/``scope`` exact, ``container``/``network`` by id prefix
or name (and they select their own event type), ``image`` with or without tag, ``label``.
The history kept for ``--since`` is bounded (the last 1000 events).
"""

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
        if key == "event" and not _event_match(ev["Action"], values):
            return False
        if key in ("container", "network"):
            if ev["Type"] != key:
                return False
            actor = ev["Actor"]
            if not any(
                actor["ID"].startswith(v) or actor["Attributes"].get("name") == v for v in values
            ):
                return False
        if key == "scope" and ev.get("scope") not in values:
            return False
        if key == "image":
            attrs = ev["Actor"]["Attributes"]
            name = attrs.get("name" if ev["Type"] == "image" else "image", "")
            cands = {ev["Actor"]["ID"], name, _strip_tag(ev["Actor"]["ID"]), _strip_tag(name)}
            if not cands & set(values):
                return False
        if key == "label":
            attrs = ev["Actor"]["Attributes"]
            for v in values:
                k, eq, val = v.partition("=")
                if k not in attrs or (eq and attrs[k] != val):
                    return False
    return True


def _strip_tag(ref: str) -> str:
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


_FUZZY = {"health_status", "exec_create", "exec_start"}


def _event_match(action: str, values: list[str]) -> bool:
    """Docker's: exact, except that a filter naming ``exec_create``, ``exec_start`` or
    ``health_status`` (actions that carry ``: detail``) matches by prefix."""
    if _FUZZY & set(values):
        return any(action.startswith(v) for v in values)
    return action in values
