"""The event bus behind ``GET /events``: container and network events as Docker emits them.

Container events carry ``name``, ``image`` and the container's labels as attributes (so
``--filter label=...`` works); network events carry ``name`` and ``type``, plus
``container`` for connect/disconnect. A policy restart shows as ``die`` then ``start``
(Docker's restart manager); ``restart`` is emitted by ``docker restart`` only. Filters
follow Docker's: ``type``/``event``/``scope`` exact, ``container``/``network`` by id prefix
or name (and they select their own event type), ``image`` with or without tag, ``label``.
The history kept for ``--since`` is bounded (the last 1000 events). With a ``journal`` file
(``<data-root>/events.jsonl``, 0600) the history survives a daemon restart: each event is
appended as one JSON line, the last ``history`` lines are read back at start, and the file is
rewritten from memory once it holds twice that many. (dockerd keeps its events in memory only;
tether keeps them so ``docker events --since`` still answers after a restart.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("tether.events")


class Events:
    def __init__(self, history: int = 1000, journal: Path | None = None) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._journal = journal
        self._file: IO[str] | None = None
        self._lines = 0
        if journal is not None:
            self._load(journal)
            self._rewrite()

    def _load(self, journal: Path) -> None:
        with contextlib.suppress(FileNotFoundError), open(journal, encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    ev = json.loads(line)
                    if isinstance(ev, dict) and "Type" in ev:
                        self.history.append(ev)

    def _rewrite(self) -> None:
        """The journal made equal to the history in memory (atomic), then opened to append."""
        if self._journal is None:
            return
        if self._file is not None:
            self._file.close()
        tmp = self._journal.with_name(self._journal.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(ev, separators=(",", ":")) + "\n" for ev in self.history)
        os.replace(tmp, self._journal)
        self._lines = len(self.history)
        self._file = open(self._journal, "a", encoding="utf-8")  # noqa: SIM115 (owned; close())

    def _append(self, ev: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(ev, separators=(",", ":")) + "\n")
            self._file.flush()
            self._lines += 1
            if self.history.maxlen is not None and self._lines >= 2 * self.history.maxlen:
                self._rewrite()
        except OSError as exc:  # a full disk must not stop the engine: the history stays in memory
            log.warning("events journal: %s", exc)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

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
        self._append(ev)
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
