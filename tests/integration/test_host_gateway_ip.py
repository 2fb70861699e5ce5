"""The ``host-gateway-ip`` daemon option (issue 16): ``--add-host NAME:host-gateway``
resolves to it instead of the default bridge's address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import LabFactory
from .portlab import import_image, ok

pytestmark = pytest.mark.lab


def test_daemon_json_host_gateway_ip(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab = lab_factory(["host1"], daemons=False)
    h = lab.host("host1")
    Path(h.config_file).write_text(json.dumps({"host-gateway-ip": "192.0.2.9"}))
    lab.start_daemon("host1")
    import_image(h, tmp_path)
    out = ok(h, "run", "--rm", "--add-host", "gw:host-gateway", "alpine", "cat", "/etc/hosts")
    assert "192.0.2.9\tgw" in out.splitlines()
