"""What a step expects of a command's result, and the check itself.

An expectation looks at the exit status (zero, non-zero, or an exact code) and at the
combined output (stdout + stderr): substrings that must appear, substrings that must not,
and regular expressions (``re.MULTILINE``) that must match somewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tether.demo.model import Output


@dataclass(frozen=True)
class Expect:
    success: bool | None = True  # True: exit 0; False: non-zero; None: any
    code: int | None = None  # an exact exit code (overrides ``success``)
    contains: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()

    def problems(self, out: Output) -> list[str]:
        """Why ``out`` does not meet the expectation (empty when it does)."""
        found: list[str] = []
        if self.code is not None:
            if out.code != self.code:
                found.append(f"exit code {out.code}, expected {self.code}")
        elif self.success is True and out.code != 0:
            found.append(f"exit code {out.code}, expected 0")
        elif self.success is False and out.code == 0:
            found.append("exit code 0, expected a failure")
        text = out.text
        for s in self.contains:
            if s not in text:
                found.append(f"output lacks {s!r}")
        for s in self.lacks:
            if s in text:
                found.append(f"output has {s!r}")
        for rx in self.regex:
            if re.search(rx, text, re.MULTILINE) is None:
                found.append(f"output does not match /{rx}/")
        return found

    def describe(self) -> str:
        parts: list[str] = []
        if self.code is not None:
            parts.append(f"exit {self.code}")
        elif self.success is True:
            parts.append("exit 0")
        elif self.success is False:
            parts.append("fails")
        parts += [repr(s) for s in self.contains]
        parts += [f"no {s!r}" for s in self.lacks]
        parts += [f"/{rx}/" for rx in self.regex]
        return ", ".join(parts)


def ok(*contains: str, regex: str | tuple[str, ...] = (), lacks: tuple[str, ...] = ()) -> Expect:
    """Exit 0 and every substring in ``contains`` (and every regex) in the output."""
    return Expect(True, None, contains, lacks, (regex,) if isinstance(regex, str) else regex)


def fails(*contains: str, regex: str | tuple[str, ...] = ()) -> Expect:
    """A non-zero exit with every substring in ``contains`` in the output."""
    return Expect(False, None, contains, (), (regex,) if isinstance(regex, str) else regex)


def anything() -> Expect:
    return Expect(success=None)
