"""Plain records shared by the demo's runner, targets and summary."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    """One process to run for a step.

    ``shown`` is what the transcript prints after ``+ [host] `` (the docker CLI is shown as
    ``docker`` whatever its path); ``argv`` is what really runs.
    """

    host: str
    argv: tuple[str, ...]
    shown: str
    env: Mapping[str, str] | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class Output:
    """What a command did: exit code (124 on timeout, 127 when it could not start)."""

    code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def text(self) -> str:
        """stdout then stderr, as a terminal would show them."""
        if self.stdout and self.stderr and not self.stdout.endswith("\n"):
            return self.stdout + "\n" + self.stderr
        return self.stdout + self.stderr


Executor = Callable[[Command], Output]


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class StepResult:
    section: str
    title: str
    status: Status
    detail: str = ""
    seconds: float = 0.0


@dataclass
class SectionInfo:
    key: str
    title: str
    results: list[StepResult] = field(default_factory=list)
