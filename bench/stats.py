"""Samples and how they are summarised (min / median / max) and compared (ratios)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Samples:
    """Measured values of one figure for one engine (unit given by the figure)."""

    values: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def cell(self, fmt: str = "{:.0f}") -> str:
        if not self.values:
            return self.note or "n/a"
        if len(self.values) == 1:
            out = f"**{fmt.format(self.values[0])}**"
        else:
            lo, mid, hi = min(self.values), statistics.median(self.values), max(self.values)
            out = f"{fmt.format(lo)} / **{fmt.format(mid)}** / {fmt.format(hi)}"
        return f"{out} ({self.note})" if self.note else out


def ratio(a: Samples | None, b: Samples | None) -> str:
    """``a``'s median over ``b``'s, as ``0.42×``; n/a when either is missing."""
    if a is None or b is None or a.median is None or b.median is None or b.median == 0:
        return "n/a"
    return f"{a.median / b.median:.2f}×"
