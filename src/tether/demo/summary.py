"""The end-of-run summary: one row per section, the failed steps, and the exit status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tether.demo.model import SectionInfo, Status, StepResult


@dataclass(frozen=True)
class SectionRow:
    key: str
    title: str
    passed: int
    failed: int
    skipped: int

    @property
    def verdict(self) -> str:
        if self.failed:
            return "FAIL"
        if self.passed == 0:
            return "skipped" if self.skipped else "empty"
        return "pass" if not self.skipped else "partial"


def rows(sections: Sequence[SectionInfo]) -> list[SectionRow]:
    """Counts per section (sections with no step at all are left out)."""
    out: list[SectionRow] = []
    for s in sections:
        if not s.results:
            continue
        count = {st: sum(1 for r in s.results if r.status is st) for st in Status}
        out.append(
            SectionRow(s.key, s.title, count[Status.PASS], count[Status.FAIL], count[Status.SKIP])
        )
    return out


def exit_status(results: Sequence[StepResult]) -> int:
    """0 when no step failed (skips alone do not fail the demo), else 1."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def render(sections: Sequence[SectionInfo], width: int = 100) -> str:
    """The summary table, then the failed steps with their reasons."""
    table = rows(sections)
    title_w = max([len("section")] + [len(f"{r.key}. {r.title}") for r in table])
    title_w = min(title_w, width - 32)
    head = f"{'section':<{title_w}}  {'pass':>4}  {'fail':>4}  {'skip':>4}  result"
    lines = [head, "-" * len(head)]
    for r in table:
        name = f"{r.key}. {r.title}"
        if len(name) > title_w:
            name = name[: title_w - 3] + "..."
        lines.append(
            f"{name:<{title_w}}  {r.passed:>4}  {r.failed:>4}  {r.skipped:>4}  {r.verdict}"
        )
    total = [sum(getattr(r, a) for r in table) for a in ("passed", "failed", "skipped")]
    lines.append("-" * len(head))
    lines.append(f"{'total':<{title_w}}  {total[0]:>4}  {total[1]:>4}  {total[2]:>4}")
    failed = [r for s in sections for r in s.results if r.status is Status.FAIL]
    if failed:
        lines.append("")
        lines.append("failed steps:")
        for f in failed:
            detail = f.detail if len(f.detail) <= width else f.detail[: width - 3] + "..."
            lines.append(f"  [{f.section}] {f.title}")
            if detail:
                lines.append(f"      {detail}")
    return "\n".join(lines)
