"""``host-gateway-ip`` (issue 16): the flag, daemon.json, Docker's text for a bad value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tether.config import load_config
from tether.daemon_cli import daemon
from tether.errors import BadRequest


def _cfg(tmp_path: Path, flag: str | None, file_value: str | None) -> str | None:
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"host-gateway-ip": file_value} if file_value else {}))
    return load_config(None, None, None, str(f), None, None, host_gateway_ip=flag).host_gateway_ip


def test_flag_wins_over_the_file_and_none_is_the_default(tmp_path: Path) -> None:
    assert _cfg(tmp_path, None, None) is None
    assert _cfg(tmp_path, None, "192.0.2.9") == "192.0.2.9"
    assert _cfg(tmp_path, "fd00:0::9", "192.0.2.9") == "fd00::9"
    with pytest.raises(BadRequest, match=r'^invalid argument "nope" for "--host-gateway-ip" flag'):
        _cfg(tmp_path, "nope", None)
    assert "--host-gateway-ip" in CliRunner().invoke(daemon, ["--help"]).output
