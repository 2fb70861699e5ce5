"""Health checks and logs through the real docker CLI against a tether daemon in a lab host.

``--health-cmd`` probes run as execs in the container; ``docker ps`` shows ``(healthy)``,
``docker inspect`` ``State.Health``, ``docker events`` ``health_status``; an image's
HEALTHCHECK (``docker import -c``) is merged; ``docker logs --until``; ``--log-opt
max-size`` applied through conmon, and the options tether does not apply refused by name.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tether.lab.lab import LabHost

from .helpers import container_inspect, docker, docker_fails, docker_ok, wait_until
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

A = "alpine"


ok = docker_ok


def fails(host: LabHost, *args: str, code: int = 1) -> str:
    return docker_fails(host, *args, code=code)


cinspect = container_inspect


def health(host: LabHost, name: str) -> dict[str, Any] | None:
    out: dict[str, Any] | None = cinspect(host, name)["State"].get("Health")
    return out


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    r = docker(
        host1,
        *("import", "-c", 'CMD ["/bin/sh"]'),
        *("-c", "HEALTHCHECK --interval=1s --retries=2 CMD test -f /tmp/img-ok"),
        *(str(tar), "probed:latest"),
    )
    assert r.returncode == 0, r.stderr
    return host1


def test_health_cmd_starting_then_healthy(h: LabHost) -> None:
    since = str(int(time.time()))
    ok(
        h,
        *("run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok"),
        *("--health-interval", "1s", "--health-retries", "2", A, "sleep", "600"),
    )
    cfg = cinspect(h, "hc")["Config"]["Healthcheck"]
    assert cfg == {
        "Test": ["CMD-SHELL", "test -f /tmp/ok"],
        "Interval": 1_000_000_000,
        "Retries": 2,
    }
    first = health(h, "hc")
    assert first is not None and first["Status"] == "starting"
    assert "(health: starting)" in ok(h, "ps", "--filter", "name=hc", "--format", "{{.Status}}")
    wait_until(lambda: (health(h, "hc") or {}).get("Status") == "unhealthy", timeout=15,
               what="unhealthy after 2 failures")  # fmt: skip
    ok(h, "exec", "hc", "touch", "/tmp/ok")
    wait_until(lambda: (health(h, "hc") or {}).get("Status") == "healthy", timeout=10,
               what="healthy after touch")  # fmt: skip
    state = health(h, "hc")
    assert state is not None and state["FailingStreak"] == 0
    last = state["Log"][-1]
    assert last["ExitCode"] == 0 and last["Start"] <= last["End"]
    assert any(e["ExitCode"] == 1 for e in state["Log"])
    assert len(state["Log"]) <= 5
    status = ok(h, "ps", "--filter", "name=hc", "--format", "{{.Status}}").strip()
    assert status.startswith("Up ") and status.endswith("(healthy)"), status
    assert ok(h, "ps", "-q", "--filter", "health=healthy").split() == [cinspect(h, "hc")["Id"][:12]]
    assert ok(h, "ps", "-q", "--filter", "health=none").split() == []
    until = str(int(time.time()) + 1)
    events = ok(
        h,
        *("events", "--since", since, "--until", until, "--filter", "container=hc"),
        *("--filter", "event=health_status", "--format", "{{.Action}}"),
    ).split("\n")
    assert "health_status: unhealthy" in events and "health_status: healthy" in events, events


def test_stop_reads_unhealthy_and_restart_starts_over(h: LabHost) -> None:
    ok(h, "stop", "-t", "1", "hc")
    state = health(h, "hc")
    assert state is not None and state["Status"] == "unhealthy"  # Docker's, once stopped
    ok(h, "start", "hc")
    state = health(h, "hc")
    assert state is not None and state["Status"] == "starting" and state["Log"]
    ok(h, "rm", "-f", "hc")


def test_image_healthcheck_and_no_healthcheck(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "img", "probed", "sleep", "600")
    cfg = cinspect(h, "img")["Config"]["Healthcheck"]
    assert cfg == {
        "Test": ["CMD-SHELL", "test -f /tmp/img-ok"],
        "Interval": 1_000_000_000,
        "Retries": 2,
    }
    ok(h, "exec", "img", "touch", "/tmp/img-ok")
    wait_until(lambda: (health(h, "img") or {}).get("Status") == "healthy", timeout=10,
               what="the image's probe healthy")  # fmt: skip
    ok(h, "run", "-d", "--name", "off", "--no-healthcheck", "probed", "sleep", "600")
    # Docker's merge: the image's other fields stay, the probe is off
    assert cinspect(h, "off")["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert health(h, "off") is None
    assert "health" not in ok(h, "ps", "--filter", "name=off", "--format", "{{.Status}}")
    ok(h, "rm", "-f", "img", "off")


def test_probe_timeout_output(h: LabHost) -> None:
    ok(
        h,
        *("run", "-d", "--name", "slow", "--health-cmd", "sleep 5"),
        *("--health-interval", "1s", "--health-timeout", "200ms", "--health-retries", "1"),
        *(A, "sleep", "600"),
    )
    wait_until(lambda: (health(h, "slow") or {}).get("Status") == "unhealthy", timeout=15,
               what="unhealthy by timeout")  # fmt: skip
    state = health(h, "slow")
    assert state is not None
    assert state["Log"][0]["ExitCode"] == -1
    assert state["Log"][0]["Output"] == "Health check exceeded timeout (200ms)"
    ok(h, "rm", "-f", "slow")


def test_dockers_texts_for_bad_healthchecks(h: LabHost) -> None:
    err = fails(h, "create", "--health-cmd", "true", "--health-interval", "500us", A)
    assert "Interval in Healthcheck cannot be less than 1ms" in err
    err = fails(h, "create", "--health-cmd", "true", "--health-timeout", "10us", A)
    assert "Timeout in Healthcheck cannot be less than 1ms" in err
    err = fails(h, "create", "--health-cmd", "true", "--health-start-period", "1us", A)
    assert "StartPeriod in Healthcheck cannot be less than 1ms" in err
    assert "bad" not in ok(h, "ps", "-a", "--format", "{{.Names}}")


def test_logs_until(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "talk", A, "sh", "-c", "echo one; sleep 2; echo two; sleep 600")
    wait_until(lambda: "two" in ok(h, "logs", "talk"), timeout=10, what="both lines")
    ts = ok(h, "logs", "-t", "talk").split("\n")
    first = datetime.strptime(ts[0].split()[0][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    cut = datetime.fromtimestamp(first.timestamp() + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ok(h, "logs", "--until", cut, "talk") == "one\n"
    assert ok(h, "logs", "--since", cut, "talk") == "two\n"
    later = datetime.fromtimestamp(time.time() + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ok(h, "logs", "--until", later, "talk") == "one\ntwo\n"
    ok(h, "rm", "-f", "talk")


def test_log_opts(h: LabHost) -> None:
    script = (
        "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done;"
        " sleep 600"
    )
    ok(h, "run", "-d", "--name", "small", "--log-opt", "max-size=2k", A, "sh", "-c", script)
    hc = cinspect(h, "small")["HostConfig"]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "2k"}}
    wait_until(lambda: "line-399" in ok(h, "logs", "small"), timeout=10, what="the last line")
    out = ok(h, "logs", "small")
    assert "line-0-" not in out  # the log started again past 2k, as Docker's json-file
    assert len(out) < 4000
    log_path = cinspect(h, "small")["LogPath"]
    assert log_path  # conmon's file, kept under max-size
    ok(h, "rm", "-f", "small")
    err = fails(h, "create", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", A)
    assert "tether does not support HostConfig.LogConfig.Config.max-file 3" in err
    err = fails(h, "create", "--log-opt", "labels=a", A)
    assert "tether does not support HostConfig.LogConfig.Config.labels" in err
    err = fails(h, "create", "--log-opt", "nope=1", A)
    assert "unknown log opt 'nope' for json-file log driver" in err
    err = fails(h, "create", "--log-driver", "local", A)
    assert "tether does not support HostConfig.LogConfig.Type local" in err
    assert ok(h, "ps", "-aq") == ""


def test_logs_follow_across_max_size(h: LabHost) -> None:
    script = (
        "sleep 1; i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx;"
        " i=$((i+1)); [ $((i % 50)) -eq 0 ] && sleep 0.2; done; echo done"
    )
    ok(h, "run", "-d", "--name", "follow", "--log-opt", "max-size=2k", A, "sh", "-c", script)
    r = docker(h, "logs", "-f", "follow", timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("line-299-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\ndone\n"), r.stdout[-300:]
    ok(h, "rm", "-f", "follow")
