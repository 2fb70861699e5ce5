"""The spec checker itself: it must catch what it is there to catch."""

from __future__ import annotations

import pytest
from tests.compat.schema import SchemaViolation, load_spec

NET = {
    "Name": "n",
    "Id": "0" * 64,
    "Created": "2024-01-01T00:00:00Z",
    "Scope": "local",
    "Driver": "bridge",
    "EnableIPv6": False,
    "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "10.0.0.0/24"}]},
    "Internal": False,
    "Attachable": False,
    "Ingress": False,
    "Containers": None,
    "Options": {},
    "Labels": None,
}


def test_routes_map_to_spec_templates() -> None:
    spec = load_spec()
    assert spec.template("/v1.41/networks/abc") == "/networks/{id}"
    assert spec.template("/networks/create") == "/networks/create"
    assert spec.template("/images/library/busybox:1/json") == "/images/{name}/json"
    assert spec.template("/containers/x/exec") == "/containers/{id}/exec"
    assert spec.template("/nope") is None


def test_conforming_answers_pass_and_null_maps_are_accepted() -> None:
    spec = load_spec()
    spec.check("GET", "/networks", 200, [NET])
    spec.check("GET", "/exec/x/json", 200, {"ExitCode": None, "Running": True})
    spec.check("GET", "/nope", 404, {"message": "page not found"})


@pytest.mark.parametrize(
    ("status", "body", "needle"),
    [
        (200, [{**NET, "Internal": "no"}], "$[0].Internal"),
        (200, [{**NET, "Name": None}], "null where the spec wants string"),
        (200, [{**NET, "IPAM": {"Config": "x"}}], "$[0].IPAM.Config"),
        (200, {"Name": "n"}, "where the spec wants array"),
        (404, {"msg": "x"}, "without a message"),
        (400, {"message": ""}, "empty message"),
    ],
)
def test_violations_are_caught(status: int, body: object, needle: str) -> None:
    with pytest.raises(SchemaViolation, match=None) as exc:
        load_spec().check("GET", "/networks", status, body)
    assert needle in str(exc.value)
