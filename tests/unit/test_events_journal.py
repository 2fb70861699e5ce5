"""The events history survives a daemon restart (a journal under the data root)."""

from __future__ import annotations

import os
from pathlib import Path

from tether.engine.events import Events


def test_history_survives_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    first = Events(history=5, journal=journal)
    first.emit("container", "create", "c1", {"name": "a", "image": "alpine"})
    first.emit("network", "connect", "n1", {"container": "c1", "name": "net", "type": "bridge"})
    first.close()
    assert os.stat(journal).st_mode & 0o777 == 0o600
    second = Events(history=5, journal=journal)
    assert [(e["Type"], e["Action"]) for e in second.history] == [
        ("container", "create"),
        ("network", "connect"),
    ]
    assert second.history[0]["status"] == "create" and second.history[0]["from"] == "alpine"
    second.close()


def test_journal_stays_bounded(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    ev = Events(history=3, journal=journal)
    for i in range(20):
        ev.emit("container", "start", f"c{i}", {"name": f"n{i}"})
    ev.close()
    lines = journal.read_text().splitlines()
    assert len(lines) < 6  # rewritten from memory at twice the history
    again = Events(history=3, journal=journal)
    assert [e["id"] for e in again.history] == ["c17", "c18", "c19"]
    again.close()


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    ev = Events(history=3, journal=journal)
    ev.emit("container", "start", "c1", {})
    ev.close()
    with open(journal, "a") as f:
        f.write('{"Type": "contai')  # a crash mid-write
    again = Events(history=3, journal=journal)
    assert [e["id"] for e in again.history] == ["c1"]
    again.close()
