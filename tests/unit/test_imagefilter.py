"""Image list filters (``docker images --filter`` / ``docker images REPO``), as Docker 20.10."""

from __future__ import annotations

from typing import Any

import pytest

from tether.engine.imagefilter import familiar_match, filter_images
from tether.errors import BadRequest, NotFound


def _img(tags: list[str], created: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Id": f"sha256:{created}",
        "RepoTags": tags or ["<none>:<none>"],
        "Created": created,
        "Labels": labels,
    }


IMAGES = [
    _img(["alpine:latest", "alpine:3"], 100, {"a": "1"}),
    _img(["busybox:latest"], 200, {"a": "2", "b": ""}),
    _img([], 300),
    _img(["library/thing:v1"], 400),
]


def _created(ref: str) -> int:
    for i in IMAGES:
        if ref in i["RepoTags"] or i["Id"] == ref:
            return int(i["Created"])
    raise NotFound(f"No such image: {ref}")


def _tags(flt: dict[str, list[str]]) -> list[list[str]]:
    return [i["RepoTags"] for i in filter_images(IMAGES, flt, _created)]


def test_unknown_reference_lists_nothing() -> None:
    assert _tags({"reference": ["nosuch:tag"]}) == []
    assert _tags({"reference": ["nosuch"]}) == []


def test_reference_narrows_tags_and_matches_repository() -> None:
    assert _tags({"reference": ["alpine"]}) == [["alpine:latest", "alpine:3"]]
    assert _tags({"reference": ["alpine:3"]}) == [["alpine:3"]]
    assert _tags({"reference": ["*:latest"]}) == [["alpine:latest"], ["busybox:latest"]]
    assert _tags({"reference": ["library/*"]}) == [["library/thing:v1"]]
    assert _tags({"reference": ["*"]}) == [["alpine:latest", "alpine:3"], ["busybox:latest"]]


def test_go_pattern_star_stops_at_slash() -> None:
    assert not familiar_match("*", "library/thing:v1")
    assert familiar_match("*/*", "library/thing:v1")
    assert familiar_match("b?sybox", "busybox:latest")
    assert familiar_match("[ab]*", "alpine:3")
    assert not familiar_match("[^ab]*", "alpine:3")


def test_dangling_label_before_since() -> None:
    assert _tags({"dangling": ["true"]}) == [["<none>:<none>"]]
    assert len(_tags({"dangling": ["false"]})) == 3
    assert _tags({"label": ["a=2"]}) == [["busybox:latest"]]
    assert len(_tags({"label": ["a"]})) == 2
    assert _tags({"before": ["busybox:latest"]}) == [["alpine:latest", "alpine:3"]]
    assert _tags({"since": ["busybox:latest"]}) == [["<none>:<none>"], ["library/thing:v1"]]


def test_refusals() -> None:
    with pytest.raises(BadRequest, match="invalid filter 'nope'"):
        _tags({"nope": ["x"]})
    with pytest.raises(BadRequest, match=r"invalid filter 'dangling=\[maybe\]'"):
        _tags({"dangling": ["maybe"]})
    with pytest.raises(NotFound, match="No such image: gone"):
        _tags({"before": ["gone"]})
