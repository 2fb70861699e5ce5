"""The field gate: every Config/HostConfig field of the v1.41 spec, sent with a value other
than its zero value, is either applied (listed in the gate's tables) or refused with a 400
that names it. No field of the spec is accepted and ignored."""

from __future__ import annotations

from typing import Any

import pytest
from tests.compat.schema import SPEC_PATH

from tether.api import fieldgate
from tether.errors import BadRequest

yaml = pytest.importorskip("yaml")


def _definitions() -> dict[str, Any]:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    defs: dict[str, Any] = spec["definitions"]
    return defs


def _props(defs: dict[str, Any], name: str) -> dict[str, Any]:
    node = defs[name]
    out: dict[str, Any] = {}
    for part in node.get("allOf", [node]):
        if "$ref" in part:
            out.update(_props(defs, part["$ref"].rsplit("/", 1)[-1]))
        else:
            out.update(part.get("properties") or {})
    return out


def _sample(schema: dict[str, Any]) -> Any:
    """A value other than the zero value, of the field's type."""
    kind = schema.get("type")
    if "$ref" in schema:
        return {"X": "1"}
    if kind == "string":
        return "x-nondefault"
    if kind == "integer":
        return 7
    if kind == "number":
        return 7.5
    if kind == "boolean":
        return True
    if kind == "array":
        item = schema.get("items") or {}
        return [_sample(item)] if item else ["x"]
    return {"X": "1"}


SAMPLES: dict[str, Any] = {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}


def _refused(body: dict[str, Any]) -> str | None:
    try:
        fieldgate.check_create(body)
    except BadRequest as exc:
        return exc.message
    return None


@pytest.fixture(scope="module")
def defs() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.fail(f"the v1.41 spec is missing at {SPEC_PATH}")
    return _definitions()


def test_every_config_field_applied_or_refused_by_name(defs: dict[str, Any]) -> None:
    for key, schema in _props(defs, "ContainerConfig").items():
        msg = _refused({key: _sample(schema)})
        if key in fieldgate.APPLIED_CONFIG:
            assert msg is None, (key, msg)
        else:
            assert msg == f"tether does not support Config.{key}", (key, msg)


def test_every_host_config_field_applied_or_refused_by_name(defs: dict[str, Any]) -> None:
    own_texts = {"Runtime", "Isolation", "LogConfig"}  # Docker's own refusals first
    for key, schema in _props(defs, "HostConfig").items():
        value = SAMPLES.get(key, _sample(schema))
        msg = _refused({"HostConfig": {key: value}})
        if key in fieldgate.APPLIED_HOST:
            continue  # applied: the value's own checks run later (engine)
        assert msg is not None, key
        if key not in own_texts:
            assert msg == f"tether does not support HostConfig.{key}", (key, msg)


def test_zero_values_the_cli_sends_pass() -> None:
    hc = {
        "Binds": None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "CapAdd": None,
        "CgroupnsMode": "",
        "Devices": [],
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "MemorySwappiness": None,
        "PidsLimit": None,
        "Runtime": "runc",
        "BlkioWeightDevice": [],
        "Ulimits": None,
        "OomKillDisable": False,
        "ShmSize": 0,
    }
    assert _refused({"Image": "alpine", "User": "", "Volumes": {}, "HostConfig": hc}) is None
    assert _refused({"HostConfig": {"LogConfig": {"Type": "json-file"}}}) is None
    assert _refused({"HostConfig": {"MemorySwappiness": -1, "Isolation": "default"}}) is None


def test_dockers_own_texts() -> None:
    assert _refused({"HostConfig": {"Runtime": "nosuch"}}) == "Unknown runtime specified nosuch"
    assert (
        _refused({"HostConfig": {"LogConfig": {"Type": "asdf"}}})
        == "logger: no log driver named 'asdf' is registered"
    )
    assert _refused({"HostConfig": {"Isolation": "hyperv"}}) == (
        "Invalid isolation: 'hyperv' - linux only supports 'default'"
    )


def test_endpoint_settings_and_update() -> None:
    ipam = {"IPv4Address": "10.0.0.2", "IPv6Address": "fd00::2", "LinkLocalIPs": ["fe80::9"]}
    eps = {"net1": {"IPAMConfig": ipam}}
    fieldgate.check_create({"NetworkingConfig": {"EndpointsConfig": eps}})  # all applied
    with pytest.raises(BadRequest, match=r"^tether does not support HostConfig\.KernelMemory$"):
        fieldgate.check_update({"KernelMemory": 1 << 20, "RestartPolicy": {"Name": "always"}})
    fieldgate.check_update({"Memory": 1 << 26, "RestartPolicy": {"Name": "always"}})
    fieldgate.check_update({"Memory": 0, "RestartPolicy": {"Name": "always"}})
