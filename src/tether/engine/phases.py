"""Wall-clock phases of one operation, for the debug log (``start <id> phases: netns=0.1 ...``).

A container start logs where its time went at debug level (``--debug``), so a slow or growing
start can be attributed without a profiler: ``bench/scale_probe.py --phases`` reads these
lines to show which phase grows with the number of containers.
"""

from __future__ import annotations

import time


class Phases:
    """Marks the end of each named phase; ``str()`` renders ``name=ms`` pairs."""

    __slots__ = ("_last", "_parts")

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._parts: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self._parts.append((name, (now - self._last) * 1000.0))
        self._last = now

    def note(self, name: str, ms: float) -> None:
        """A span that overlapped the marked ones (rendered among them; not on the clock)."""
        self._parts.append((name, ms))

    def items(self) -> list[tuple[str, float]]:
        return list(self._parts)

    def __str__(self) -> str:
        return " ".join(f"{n}={ms:.1f}" for n, ms in self._parts)


def parse(line: str) -> dict[str, float]:
    """The ``name=ms`` pairs after ``phases:`` in a log line (empty when there are none)."""
    _, sep, rest = line.partition("phases:")
    out: dict[str, float] = {}
    if not sep:
        return out
    for part in rest.split():
        name, eq, value = part.partition("=")
        if eq:
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out
