"""``python -m tether daemon``'s hand parse gives click's arguments, or hands over to click."""

from __future__ import annotations

import pytest

from tether.__main__ import daemon_kwargs
from tether.daemon_cli import daemon

CASES = [
    [],
    ["-H", "unix:///tmp/x.sock", "--data-root", "/d", "--exec-root", "/e"],
    ["--host=unix:///tmp/y.sock", "-D", "--config-file", "/c.json"],
    ["--cluster-store", "etcd://1.2.3.4:2379", "--cluster-advertise", "eth0", "--debug"],
    ["--metrics-addr", "127.0.0.1:9323"],
    ["--web-addr=0.0.0.0:80", "-Hunix:///z.sock", "-H", "unix:///last.sock"],
]


@pytest.mark.parametrize("argv", CASES)
def test_same_arguments_as_click(argv: list[str]) -> None:
    ctx = daemon.make_context("daemon", list(argv))
    assert daemon_kwargs(argv) == ctx.params


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--bogus"],
        ["--cluster-store-opt", "kv.certfile=/c.pem"],
        ["-X"],
        ["extra"],
        ["--host"],
        ["--debug=yes"],
        ["--", "-D"],
    ],
)
def test_anything_else_goes_to_click(argv: list[str]) -> None:
    assert daemon_kwargs(argv) is None
