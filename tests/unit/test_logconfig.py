"""LogConfig: the json-file options tether applies (max-size through conmon), Docker's texts
for bad ones, the 400 naming the options it does not apply; logs ``since``/``until``."""

from __future__ import annotations

from typing import Any

import pytest

from tether.api import fieldgate
from tether.api.container_logs import parse_time
from tether.engine import logconfig
from tether.errors import BadRequest


def _gate(cfg: dict[str, Any], driver: str = "json-file") -> str | None:
    try:
        fieldgate.check_create({"HostConfig": {"LogConfig": {"Type": driver, "Config": cfg}}})
    except BadRequest as exc:
        return exc.message
    return None


def test_applied_options_pass() -> None:
    for cfg in (
        {"max-size": "10m"},
        {"max-size": "1k", "max-file": "1", "compress": "false"},
        {"max-file": "3"},  # no max-size: nothing rotates, as Docker's
        {"mode": "blocking"},
        {},
    ):
        assert _gate(cfg) is None, cfg
    assert _gate({"max-size": "2m"}, driver="") is None


@pytest.mark.parametrize(
    ("cfg", "text"),
    [
        ({"nope": "1"}, "unknown log opt 'nope' for json-file log driver"),
        ({"max-size": "ten"}, "invalid size: 'ten'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        (
            {"compress": "true", "max-size": "1m"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        ({"mode": "fast"}, 'logger: logger log mode not recognized: "fast"'),
        (
            {"max-buffer-size": "4m"},
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
        ),
        (
            {"max-size": "1m", "max-file": "3"},
            "tether does not support HostConfig.LogConfig.Config.max-file 3 "
            "(conmon keeps one log file)",
        ),
        (
            {"mode": "non-blocking"},
            "tether does not support HostConfig.LogConfig.Config.mode non-blocking",
        ),
        ({"labels": "a"}, "tether does not support HostConfig.LogConfig.Config.labels"),
        ({"tag": "{{.Name}}"}, "tether does not support HostConfig.LogConfig.Config.tag"),
    ],
)
def test_refused_with_texts(cfg: dict[str, Any], text: str) -> None:
    assert _gate(cfg) == text


def test_local_driver_refused() -> None:
    assert _gate({}, driver="local") == "tether does not support HostConfig.LogConfig.Type local"


def test_size_max() -> None:
    assert logconfig.human_size("10m") == 10_000_000
    assert logconfig.human_size("1.5k") == 1500
    assert logconfig.human_size("2MiB") == 2_000_000  # Docker's FromHumanSize is decimal
    assert (
        logconfig.size_max({"LogConfig": {"Type": "json-file", "Config": {"max-size": "1k"}}})
        == 1000
    )
    assert logconfig.size_max({"LogConfig": {"Type": "json-file", "Config": {}}}) is None
    assert logconfig.size_max({}) is None


def test_logs_time_values() -> None:
    assert parse_time("until", None) == 0.0
    assert parse_time("until", "0") == 0.0
    assert parse_time("until", "1600000000.5") == 1600000000.5
    assert parse_time("until", "2020-09-13T12:26:40.123456789Z") == pytest.approx(1600000000.123456)
    assert parse_time("since", "2020-09-13T14:26:40+02:00") == 1600000000.0
    with pytest.raises(BadRequest, match="invalid value for until: 'soon'"):
        parse_time("until", "soon")
