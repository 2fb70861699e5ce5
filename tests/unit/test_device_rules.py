"""``HostConfig.DeviceCgroupRules`` (``--device-cgroup-rule``): Docker's format and text,
the OCI allow rules the bundle gets, the create gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.api import fieldgate
from tether.contracts.runtime import BundleSpec, device_cgroup_rule
from tether.errors import BadRequest
from tether.runtime.bundle import OciBundles


def test_rules_as_oci_allow_rules() -> None:
    assert device_cgroup_rule("c 7:128 rwm") == {
        "allow": True, "type": "c", "major": 7, "minor": 128, "access": "rwm"
    }  # fmt: skip
    assert device_cgroup_rule("b *:* m") == {"allow": True, "type": "b", "access": "m"}
    assert device_cgroup_rule("a 1:* r") == {"allow": True, "type": "a", "major": 1, "access": "r"}
    for bad in ("x 1:1 r", "c 1:1", "c 1 rwm", "c 1:1 rwmx", " c 1:1 r", "c -1:1 r"):
        with pytest.raises(BadRequest, match=r"^invalid device cgroup rule format: '"):
            device_cgroup_rule(bad)


def test_create_gate_applies_and_checks_them() -> None:
    fieldgate.check_create({"Image": "x", "HostConfig": {"DeviceCgroupRules": ["c 7:128 rwm"]}})
    with pytest.raises(BadRequest, match="invalid device cgroup rule format: 'c 7 r'"):
        fieldgate.check_create({"Image": "x", "HostConfig": {"DeviceCgroupRules": ["c 7 r"]}})


def test_bundle_gets_the_rules_after_the_defaults(tmp_path: Path) -> None:
    spec = BundleSpec(
        rootfs=str(tmp_path), args=["true"], env=[], cwd="/", hostname="h", terminal=False,
        netns_path=None, hosts_path="/h", resolv_conf_path="/r", hostname_path="/n",
        cgroups_path="", device_cgroup_rules=("c 7:128 rwm",),
    )  # fmt: skip
    OciBundles().write_bundle(tmp_path, spec)
    devices = json.loads((tmp_path / "config.json").read_text())["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}  # Docker's deny-all comes first
    assert devices[-1] == {"allow": True, "type": "c", "major": 7, "minor": 128, "access": "rwm"}
