"""The step runner: prints each command and its output, checks it, records pass/fail.

A step is one command (built by a :class:`Targets` from a host name and arguments), run by an
:class:`~tether.demo.model.Executor`, and an :class:`~tether.demo.expect.Expect`. Steps belong
to the current section (``with runner.section("3", "title"):``). A section that raises is
closed with a failure (an unexpected exception) or a skip line (:class:`SectionAbort`, raised
by a failing ``critical`` step: later steps would only repeat its failure), and the next
section runs anyway. Cleanup commands are printed but not judged.

Polling (``retry_for``) re-runs a command until it meets its expectation or the time is up;
only the last attempt's output is printed. Every wait is bounded.
"""

from __future__ import annotations

import shlex
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TextIO

from tether.demo.expect import Expect, ok
from tether.demo.model import Command, Executor, Output, SectionInfo, Status, StepResult

MAX_OUTPUT_LINES = 60
SETUP_SECTION = "0"


Words = str | Sequence[str]


def words(line: Words) -> list[str]:
    """A shell-quoted command line (or an already split one) as a word list."""
    return shlex.split(line) if isinstance(line, str) else list(line)


class Targets(Protocol):
    """Turns (host, arguments) into a :class:`Command`."""

    def docker(self, host: str, args: Sequence[str], timeout: float) -> Command: ...

    def shell(self, host: str, args: Sequence[str], timeout: float) -> Command: ...


class SectionAbort(Exception):
    """Stop the current section (its remaining steps depend on a step that failed)."""


class Runner:
    def __init__(
        self,
        executor: Executor,
        targets: Targets,
        out: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        color: bool = False,
    ) -> None:
        self._exec = executor
        self._targets = targets
        self._out = out
        self._clock = clock
        self._sleep = sleep
        self._color = color
        self.sections: list[SectionInfo] = [SectionInfo(SETUP_SECTION, "set-up")]
        self._current = self.sections[0]

    # ------------------------------------------------------------------ results

    @property
    def results(self) -> list[StepResult]:
        return [r for s in self.sections for r in s.results]

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.status is Status.FAIL]

    def record(
        self,
        title: str,
        status: Status,
        detail: str = "",
        seconds: float = 0.0,
        *,
        echo_title: bool = True,
    ) -> None:
        """Record a result and print its verdict line (the title is left out when the
        command line just above already names the step)."""
        self._current.results.append(StepResult(self._current.key, title, status, detail, seconds))
        mark = {Status.PASS: "ok", Status.FAIL: "FAIL", Status.SKIP: "skip"}[status]
        colour = {Status.PASS: "32", Status.FAIL: "31;1", Status.SKIP: "33"}[status]
        parts = [f"  -> {mark}"]
        if echo_title:
            parts.append(f" {title}")
        if detail:
            parts.append(f": {detail}")
        self._print(self._paint("".join(parts), colour))

    # ------------------------------------------------------------------ output

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self._color else text

    def _print(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def note(self, text: str) -> None:
        """A comment line in the transcript (``# ...``)."""
        self._print(self._paint(f"# {text}", "36"))

    def _show_output(self, out: Output) -> None:
        lines = out.text.rstrip("\n").splitlines()
        if len(lines) > MAX_OUTPUT_LINES:
            more = len(lines) - MAX_OUTPUT_LINES
            lines = [*lines[:MAX_OUTPUT_LINES], f"... ({more} more lines)"]
        for line in lines:
            self._print(line)

    def _show_command(self, cmd: Command) -> None:
        self._print(self._paint(f"+ [{cmd.host}] {cmd.shown}", "1"))

    # ------------------------------------------------------------------ sections

    @contextmanager
    def section(self, key: str, title: str) -> Iterator[SectionInfo]:
        info = SectionInfo(key, title)
        self.sections.append(info)
        previous, self._current = self._current, info
        self._print()
        self._print(self._paint(f"==== {key}. {title} ====", "1;34"))
        try:
            yield info
        except SectionAbort as exc:
            self.record("rest of the section", Status.SKIP, f"not run: {exc}")
        except Exception as exc:  # a crash in one section must not stop the demo
            self._print(traceback.format_exc().rstrip())
            self.record("section crashed", Status.FAIL, f"{type(exc).__name__}: {exc}")
        finally:
            self._current = previous

    # ------------------------------------------------------------------ steps

    def run(
        self,
        cmd: Command,
        expect: Expect | None = None,
        *,
        title: str | None = None,
        retry_for: float = 0.0,
        interval: float = 0.5,
        critical: bool = False,
    ) -> Output:
        """Run ``cmd``, print it and its output, check ``expect`` (default: exit 0)."""
        exp = expect if expect is not None else ok()
        name = title or cmd.shown
        named = title is not None
        self._show_command(cmd)
        start = self._clock()
        deadline = start + retry_for
        attempts = 0
        while True:
            attempts += 1
            out = self._exec(cmd)
            problems = exp.problems(out)
            if not problems or self._clock() >= deadline:
                break
            self._sleep(interval)
        seconds = self._clock() - start
        self._show_output(out)
        if problems:
            tries = f" after {attempts} tries" if attempts > 1 else ""
            self.record(name, Status.FAIL, "; ".join(problems) + tries, seconds, echo_title=named)
            if critical:
                raise SectionAbort(f"{name!r} failed")
        else:
            self.record(name, Status.PASS, "", seconds, echo_title=named)
        return out

    def docker(
        self,
        host: str,
        line: Words,
        expect: Expect | None = None,
        *,
        title: str | None = None,
        retry_for: float = 0.0,
        critical: bool = False,
        timeout: float = 60.0,
    ) -> Output:
        """A checked step running the docker CLI against ``host``'s daemon.

        ``line`` is the part after ``docker``, either a shell-quoted string or a word list.
        """
        cmd = self._targets.docker(host, words(line), timeout)
        return self.run(cmd, expect, title=title, retry_for=retry_for, critical=critical)

    def sh(
        self,
        host: str,
        line: Words,
        expect: Expect | None = None,
        *,
        title: str | None = None,
        retry_for: float = 0.0,
        critical: bool = False,
        timeout: float = 60.0,
    ) -> Output:
        """A checked step running a command inside ``host`` (its network namespace)."""
        cmd = self._targets.shell(host, words(line), timeout)
        return self.run(cmd, expect, title=title, retry_for=retry_for, critical=critical)

    def cleanup(self, host: str, line: Words, timeout: float = 60.0) -> Output:
        """A docker command that is printed but not judged (tidying up between sections)."""
        cmd = self._targets.docker(host, words(line), timeout)
        self._show_command(cmd)
        out = self._exec(cmd)
        self._show_output(out)
        return out

    def quiet(self, host: str, line: Words, timeout: float = 60.0) -> Output:
        """A docker command run for its answer only (not printed, not judged)."""
        return self._exec(self._targets.docker(host, words(line), timeout))

    def check(self, title: str, passed: bool, detail: str = "") -> bool:
        """Record a computed check (e.g. comparing two earlier outputs)."""
        self.record(title, Status.PASS if passed else Status.FAIL, "" if passed else detail)
        return passed

    def action(
        self, host: str, shown: str, fn: Callable[[], object], *, critical: bool = False
    ) -> bool:
        """A step that is not a command (e.g. restarting a daemon): passes unless it raises."""
        self._print(self._paint(f"+ [{host}] {shown}", "1"))
        start = self._clock()
        try:
            fn()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            self.record(shown, Status.FAIL, why, self._clock() - start, echo_title=False)
            if critical:
                raise SectionAbort(f"{shown!r} failed") from exc
            return False
        self.record(shown, Status.PASS, "", self._clock() - start, echo_title=False)
        return True

    def skip(self, title: str, why: str) -> None:
        self.record(title, Status.SKIP, why)
