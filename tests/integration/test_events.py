"""``docker events``: container and network events, filters, --since/--until, like Docker."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import docker, wait_until
from .restart_helpers import import_image, inspect


@pytest.fixture(scope="module")
def lab(module_lab_factory) -> Lab:  # type: ignore[no-untyped-def]
    made: Lab = module_lab_factory(["host1"], daemons=True)
    return made


@pytest.fixture(scope="module")
def h(lab: Lab, tmp_path_factory) -> LabHost:  # type: ignore[no-untyped-def]
    host = lab.host("host1")
    import_image(host, tmp_path_factory.mktemp("img"))
    return host


def events(h: LabHost, since: float, *filters: str) -> list[dict[str, object]]:
    args = ["events", "--format", "{{json .}}", "--since", f"{since:.6f}"]
    args += ["--until", f"{time.time():.6f}"]
    for f in filters:
        args += ["--filter", f]
    r = docker(h, *args, timeout=30)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def actions(evs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["Type"], e["Action"]) for e in evs]


def test_lifecycle_events_in_order(h: LabHost) -> None:
    t0 = time.time()
    docker(h, "network", "create", "evnet", check=True)
    docker(h, "create", "--name", "ev1", "--label", "team=a", "alpine", "sleep", "100", check=True)
    docker(h, "network", "connect", "evnet", "ev1", check=True)
    docker(h, "start", "ev1", check=True)
    docker(h, "network", "disconnect", "evnet", "ev1", check=True)
    docker(h, "rm", "-f", "ev1", check=True)
    docker(h, "network", "rm", "evnet", check=True)
    got = actions(events(h, t0))
    want = [
        ("network", "create"),
        ("container", "create"),
        ("network", "connect"),
        ("container", "start"),
        ("network", "disconnect"),
        ("container", "die"),
        ("container", "destroy"),
        ("network", "destroy"),
    ]
    it = iter(got)
    assert all(w in it for w in want), got  # in this order (others may come between)


def test_filters(h: LabHost) -> None:
    t0 = time.time()
    docker(h, "run", "-d", "--name", "fa", "--label", "team=a", "alpine", "true", check=True)
    docker(h, "run", "-d", "--name", "fb", "alpine", "true", check=True)
    wait_until(
        lambda: all(inspect(h, n)["State"]["Status"] == "exited" for n in ("fa", "fb")),
        what="fa and fb to exit",
    )
    only_fa = events(h, t0, "container=fa")
    assert only_fa and all(e["Actor"]["Attributes"]["name"] == "fa" for e in only_fa)  # type: ignore[index]
    dies = events(h, t0, "event=die")
    assert {e["Actor"]["Attributes"]["name"] for e in dies} == {"fa", "fb"}  # type: ignore[index]
    labelled = events(h, t0, "label=team=a")
    assert labelled and {e["Actor"]["Attributes"]["name"] for e in labelled} == {"fa"}  # type: ignore[index]
    nets = events(h, t0, "type=network")
    assert all(e["Type"] == "network" for e in nets)
    assert events(h, t0, "image=nosuchimage") == []


def test_until_in_the_past_excludes_later_events(h: LabHost) -> None:
    t0 = time.time()
    docker(h, "network", "create", "early", check=True)
    mid = time.time()
    docker(h, "network", "create", "late", check=True)
    r = docker(
        h, "events", "--format", "{{json .}}", "--since", f"{t0:.6f}", "--until", f"{mid:.6f}"
    )
    names = [json.loads(x)["Actor"]["Attributes"]["name"] for x in r.stdout.splitlines()]
    assert "early" in names and "late" not in names


def test_policy_restart_shows_die_then_start(h: LabHost) -> None:
    docker(h, "run", "-d", "--name", "rs", "--restart", "always", "alpine", "sleep", "100")
    t0 = time.time()
    pid = inspect(h, "rs")["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: ("container", "start") in actions(events(h, t0, "container=rs")),
        timeout=10,
        what="rs to start again",
    )
    got = actions(events(h, t0, "container=rs"))
    assert got.index(("container", "die")) < got.index(("container", "start"))
    docker(h, "restart", "-t", "0", "rs", check=True)
    assert ("container", "restart") in actions(events(h, t0, "container=rs"))


def test_history_survives_a_daemon_restart(lab: Lab, h: LabHost) -> None:
    """``docker events --since`` still answers after the daemon restarted (tether keeps a
    journal of the history under its data root; dockerd keeps it in memory only)."""
    t0 = time.time()
    docker(h, "network", "create", "evkeep", check=True)
    docker(h, "network", "rm", "evkeep", check=True)
    lab.restart_daemon("host1")
    got = events(h, t0, "network=evkeep")
    assert actions(got) == [("network", "create"), ("network", "destroy")], got
