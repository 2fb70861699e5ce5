"""The demo's step runner, expectations, summary and command building, without a lab."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import pytest

from tether.demo import summary
from tether.demo.expect import Expect, anything, fails, ok
from tether.demo.model import Command, Output, SectionInfo, Status, StepResult
from tether.demo.runner import Runner, SectionAbort, words
from tether.demo.targets import LabTargets, run_command


class FakeTargets:
    def docker(self, host: str, args: Sequence[str], timeout: float) -> Command:
        return Command(host, ("docker", *args), "docker " + " ".join(args), None, timeout)

    def shell(self, host: str, args: Sequence[str], timeout: float) -> Command:
        return Command(host, tuple(args), " ".join(args), None, timeout)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def scripted(*outputs: Output) -> tuple[Callable[[Command], Output], list[Command]]:
    """An executor answering with ``outputs`` in turn (the last one repeats)."""
    seen: list[Command] = []
    queue = list(outputs)

    def execute(cmd: Command) -> Output:
        seen.append(cmd)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return execute, seen


def make_runner(*outputs: Output) -> tuple[Runner, io.StringIO, list[Command], FakeClock]:
    execute, seen = scripted(*outputs)
    out = io.StringIO()
    clock = FakeClock()
    r = Runner(execute, FakeTargets(), out, clock=clock, sleep=clock.sleep)
    return r, out, seen, clock


# ------------------------------------------------------------------ expectations


def test_ok_needs_exit_zero_and_every_substring() -> None:
    assert ok("a", "b").problems(Output(0, "a b\n")) == []
    assert ok("a").problems(Output(1, "a")) == ["exit code 1, expected 0"]
    assert ok("a", "c").problems(Output(0, "a b")) == ["output lacks 'c'"]


def test_fails_needs_a_nonzero_exit_and_looks_at_stderr() -> None:
    e = fails("already exists")
    assert e.problems(Output(1, "", "Error: network with name x already exists\n")) == []
    assert e.problems(Output(0, "", "already exists")) == ["exit code 0, expected a failure"]


def test_regex_is_multiline_and_lacks_is_checked() -> None:
    e = ok(regex=r"^172\.26\.1\.96 172\.26\.1\.254$", lacks=("eth0",))
    assert e.problems(Output(0, "x\n172.26.1.96 172.26.1.254\n")) == []
    found = e.problems(Output(0, "eth0 172.26.1.97 172.26.1.254\n"))
    assert found == [
        "output has 'eth0'",
        r"output does not match /^172\.26\.1\.96 172\.26\.1\.254$/",
    ]


def test_exact_code_and_anything() -> None:
    assert Expect(code=3).problems(Output(3)) == []
    assert Expect(code=3).problems(Output(0)) == ["exit code 0, expected 3"]
    assert anything().problems(Output(42, "whatever")) == []
    assert "exit 3" in Expect(code=3).describe()
    assert ok("x", regex="y").describe() == "exit 0, 'x', /y/"


def test_output_text_joins_streams() -> None:
    assert Output(0, "out", "err").text == "out\nerr"
    assert Output(0, "out\n", "err").text == "out\nerr"
    assert Output(0, "", "err").text == "err"


# ------------------------------------------------------------------ runner


def test_words_splits_shell_quoting() -> None:
    assert words("inspect -f '{{.A}} {{.B}}' c1") == ["inspect", "-f", "{{.A}} {{.B}}", "c1"]
    assert words(["a b", "c"]) == ["a b", "c"]


def test_step_prints_command_output_and_verdict() -> None:
    r, out, seen, _ = make_runner(Output(0, "NETWORK ID  NAME\n"))
    with r.section("2", "types"):
        r.docker("docker201", "network ls", ok("NAME"))
    assert seen[0].argv == ("docker", "network", "ls")
    text = out.getvalue()
    assert "==== 2. types ====" in text
    assert "+ [docker201] docker network ls\nNETWORK ID  NAME\n  -> ok\n" in text
    assert [(x.section, x.status) for x in r.results] == [("2", Status.PASS)]
    assert summary.exit_status(r.results) == 0


def test_failed_step_is_recorded_with_reasons_and_fails_the_run() -> None:
    r, out, _, _ = make_runner(Output(1, "", "Error: boom\n"))
    with r.section("7", "errors"):
        r.docker("docker201", "network create x", ok(), title="create x")
        r.docker("docker201", "network create x", fails("boom"))
    assert [x.status for x in r.results] == [Status.FAIL, Status.PASS]
    assert r.failed[0].title == "create x"
    assert r.failed[0].detail == "exit code 1, expected 0"
    assert "  -> FAIL create x: exit code 1, expected 0" in out.getvalue()
    assert summary.exit_status(r.results) == 1


def test_retry_polls_until_the_expectation_holds() -> None:
    r, out, seen, clock = make_runner(
        Output(0, "1 restarting"), Output(0, "2 restarting"), Output(0, "3 exited")
    )
    with r.section("3", "restarts"):
        r.docker("h", "inspect flaky", ok(regex="^3 exited$"), retry_for=10, title="flaky")
    assert len(seen) == 3
    assert clock.sleeps == [0.5, 0.5]
    assert r.results[0].status is Status.PASS
    # only the last attempt's output is shown
    assert "1 restarting" not in out.getvalue()
    assert "3 exited" in out.getvalue()


def test_retry_gives_up_at_the_deadline() -> None:
    r, _, seen, clock = make_runner(Output(0, "running"))
    with r.section("3", "restarts"):
        r.docker("h", "inspect x", ok("exited"), retry_for=2)
    assert len(seen) == 5  # t = 0, 0.5, 1.0, 1.5, 2.0
    assert clock.now == 2.0
    assert r.results[0].status is Status.FAIL
    assert r.results[0].detail.endswith("after 5 tries")


def test_critical_failure_skips_the_rest_of_the_section_only() -> None:
    r, out, seen, _ = make_runner(Output(1, "", "no such driver"), Output(0, "ok"))
    with r.section("5", "overlay"):
        r.docker("h", "network create -d overlay o", critical=True)
        r.docker("h", "run never")  # not reached
    with r.section("6", "exercise"):
        r.docker("h", "network ls")
    statuses = [(x.section, x.status) for x in r.results]
    assert statuses == [("5", Status.FAIL), ("5", Status.SKIP), ("6", Status.PASS)]
    assert [c.argv[1:3] for c in seen] == [("network", "create"), ("network", "ls")]
    assert "skip rest of the section" in out.getvalue()


def test_a_crashing_section_is_a_failure_and_the_next_one_runs() -> None:
    r, out, _, _ = make_runner(Output(0))
    with r.section("1", "names"):
        raise KeyError("oops")
    with r.section("2", "types"):
        r.docker("h", "network ls")
    assert [(x.section, x.status) for x in r.results] == [("1", Status.FAIL), ("2", Status.PASS)]
    assert "KeyError" in r.results[0].detail
    assert "Traceback" in out.getvalue()


def test_keyboard_interrupt_is_not_swallowed() -> None:
    r, _, _, _ = make_runner(Output(0))
    with pytest.raises(KeyboardInterrupt), r.section("1", "names"):
        raise KeyboardInterrupt


def test_cleanup_and_quiet_are_not_judged() -> None:
    r, out, seen, _ = make_runner(Output(1, "", "No such container: x\n"))
    with r.section("1", "names"):
        r.cleanup("h", "rm -f x")
        r.quiet("h", "inspect x")
    assert r.results == []
    assert len(seen) == 2
    assert "+ [h] docker rm -f x" in out.getvalue()
    assert "inspect" not in out.getvalue()


def test_check_and_action() -> None:
    r, _, _, _ = make_runner(Output(0))

    def boom() -> None:
        raise RuntimeError("daemon did not come back")

    with r.section("3", "restarts"):
        assert r.check("ips differ", True)
        assert not r.check("ips differ again", False, "both 172.17.0.2")
        assert r.action("h", "restart daemon", lambda: None)
        assert not r.action("h", "restart daemon", boom)
        r.action("h", "restart daemon", boom, critical=True)
        r.check("never reached", True)
    got = [(x.title, x.status, x.detail) for x in r.results]
    assert got[:4] == [
        ("ips differ", Status.PASS, ""),
        ("ips differ again", Status.FAIL, "both 172.17.0.2"),
        ("restart daemon", Status.PASS, ""),
        ("restart daemon", Status.FAIL, "RuntimeError: daemon did not come back"),
    ]
    assert got[5][1] is Status.SKIP and len(got) == 6


def test_long_output_is_cut() -> None:
    r, out, _, _ = make_runner(Output(0, "".join(f"line{i}\n" for i in range(100))))
    with r.section("2", "t"):
        r.docker("h", "network inspect x")
    text = out.getvalue()
    assert "line59\n" in text and "line60\n" not in text
    assert "... (40 more lines)" in text


def test_steps_outside_a_section_go_to_setup() -> None:
    r, _, _, _ = make_runner(Output(0, "sha256:abc"))
    r.docker("docker201", "import x alpine:latest", ok(regex="^sha256:"))
    assert r.results[0].section == "0"


# ------------------------------------------------------------------ summary


def _section(key: str, *statuses: Status) -> SectionInfo:
    s = SectionInfo(key, f"title {key}")
    s.results = [
        StepResult(key, f"step {i}", st, "why" if st is Status.FAIL else "")
        for i, st in enumerate(statuses)
    ]
    return s


def test_summary_rows_and_verdicts() -> None:
    P, F, S = Status.PASS, Status.FAIL, Status.SKIP
    secs = [
        _section("1", P, P),
        _section("4", P, F, S),
        _section("5", S),
        _section("6", P, S),
        SectionInfo("9", "empty"),
    ]
    rows = summary.rows(secs)
    assert [(r.key, r.passed, r.failed, r.skipped, r.verdict) for r in rows] == [
        ("1", 2, 0, 0, "pass"),
        ("4", 1, 1, 1, "FAIL"),
        ("5", 0, 0, 1, "skipped"),
        ("6", 1, 0, 1, "partial"),
    ]
    text = summary.render(secs)
    assert "1. title 1" in text and "9. empty" not in text
    assert "failed steps:\n  [4] step 1\n      why" in text
    lines = text.splitlines()
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1:] == ["4", "1", "3"]


def test_exit_status_ignores_skips() -> None:
    assert summary.exit_status([StepResult("1", "a", Status.SKIP)]) == 0
    assert summary.exit_status([]) == 0
    assert summary.exit_status([StepResult("1", "a", Status.FAIL)]) == 1


def test_summary_without_failures_has_no_failed_list() -> None:
    assert "failed steps" not in summary.render([_section("1", Status.PASS)])


# ------------------------------------------------------------------ targets


class FakeHost:
    def __init__(self, sock: str, netns: str) -> None:
        self.sock, self.netns = sock, netns

    def docker_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONTEXT": "other"}

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *cmd]


def test_lab_targets_point_the_cli_at_the_host_and_show_docker() -> None:
    t = LabTargets({"docker201": FakeHost("/s1", "ns1")}, (("/usr/local/bin/docker",), "docker"))
    c = t.docker("docker201", ["inspect", "-f", "{{.A}} {{.B}}", "c1"], 5.0)
    assert c.argv == ("/usr/local/bin/docker", "inspect", "-f", "{{.A}} {{.B}}", "c1")
    assert c.shown == "docker inspect -f '{{.A}} {{.B}}' c1"
    assert c.env is not None and c.env["DOCKER_HOST"] == "unix:///s1"
    assert "DOCKER_CONTEXT" not in c.env
    s = t.shell("docker201", ["curl", "-sS", "http://127.0.0.1:80/"], 5.0)
    assert s.argv[:2] == ("nsenter", "--net=/run/netns/ns1")
    assert s.shown == "curl -sS http://127.0.0.1:80/"
    with pytest.raises(KeyError):
        t.docker("docker203", ["ps"], 1.0)


def test_run_command_codes() -> None:
    assert run_command(Command("l", ("sh", "-c", "echo hi; echo err >&2; exit 3"), "")) == Output(
        3, "hi\n", "err\n"
    )
    assert run_command(Command("l", ("/nonexistent/prog",), "")).code == 127
    slow = run_command(Command("l", ("sleep", "5"), "", timeout=0.2))
    assert slow.code == 124 and "timed out" in slow.stderr


def test_section_abort_raised_by_a_section_is_a_skip() -> None:
    r, _, _, _ = make_runner(Output(0))
    with r.section("4", "macvlan"):
        raise SectionAbort("no parent interface")
    assert [(x.status, x.detail) for x in r.results] == [
        (Status.SKIP, "not run: no parent interface")
    ]


def test_sections_cover_the_seed_in_order() -> None:
    from tether.demo.sections import SECTIONS

    assert [key for key, _, _ in SECTIONS] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(callable(fn) for _, _, fn in SECTIONS)


def test_demo_refuses_to_run_without_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tether.demo import __main__ as demo_main

    monkeypatch.setattr(demo_main.os, "geteuid", lambda: 1000)
    assert demo_main.main([]) == 2
    assert "needs root" in capsys.readouterr().err
