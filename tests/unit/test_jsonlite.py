"""tether.jsonlite gives what json gives, for the JSON the API sends and odd cases."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tether import jsonlite

DOCS: list[Any] = [
    {},
    [],
    {"a": {}, "b": [], "c": [{}], "d": [[]]},
    {
        "Name": "bridge",
        "Id": "0965f47f34fe",
        "Labels": {},
        "IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]},
    },
    [1, -2, 3.5, 1e300, -0.0, 1.0, 12345678901234567890, True, False, None],
    {"ünï": "cødé ☃ \U0001f600", "ctl": '\x00\x1f\x7f"\\/\n\t', "html": "<a&b>"},
    {"nested": {"deeper": {"deepest": [1, {"x": [None, "y"]}]}}},
    "plain",
    3,
    None,
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("indent", [None, 4, 2])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_dumps_as_json(doc: Any, indent: int | None, ascii_only: bool) -> None:
    want = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
    assert jsonlite.dumps(doc, indent=indent, ensure_ascii=ascii_only) == want


@pytest.mark.parametrize("doc", DOCS)
def test_loads_as_json(doc: Any) -> None:
    text = json.dumps(doc, indent=2)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(text.encode()) == json.loads(text.encode())
    assert jsonlite.loads(f" \n{text}\r\n\t") == doc


def test_odd_values_fall_back_to_json() -> None:
    doc = {1: "int key", None: 2}
    assert jsonlite.dumps(doc) == json.dumps(doc)
    assert jsonlite.dumps([float("nan"), math.inf, -math.inf]) == "[NaN, Infinity, -Infinity]"
    assert math.isnan(jsonlite.loads("[NaN]")[0]) and jsonlite.loads("-Infinity") == -math.inf
    with pytest.raises(TypeError):
        jsonlite.dumps({"x": object()})


@pytest.mark.parametrize("bad", ["", "   ", "{", '{"a": }', "[1,]", "1 2", "nul", '"\x01"'])
def test_not_json_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        jsonlite.loads(bad)
