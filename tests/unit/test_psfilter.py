"""Docker's ps filters over in-memory containers (no root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tether.engine.psfilter import matcher
from tether.errors import BadRequest, NotFound


@dataclass
class St:
    status: str = "running"
    exit_code: int = 0


@dataclass
class C:
    name: str
    id: str
    created: str
    state: St = field(default_factory=St)
    config: dict[str, Any] = field(default_factory=dict)
    host_config: dict[str, Any] = field(default_factory=dict)
    ports: list[dict[str, Any]] = field(default_factory=list)
    image: str = "alpine"
    image_id: str = "sha256:1"

    def eps(self) -> list[Any]:
        return []


R1 = C("r1", "a1" * 32, "2026-01-01T00:00:01Z")
R10 = C("r10", "b2" * 32, "2026-01-01T00:00:02Z",
        host_config={"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}},
        config={"ExposedPorts": {"80/tcp": {}, "53/udp": {}}})  # fmt: skip
PB = {"container_port": 8090, "proto": "tcp", "host_ip": "", "host_port": 8090}
WEB = C("web", "c3" * 32, "2026-01-01T00:00:03Z", state=St("exited", 3), ports=[PB])
ALL = [R1, R10, WEB]


def find(ref: str) -> C:
    for c in ALL:
        if ref in (c.name, c.id) or c.id.startswith(ref):
            return c
    raise NotFound(f"No such container: {ref}")


def names(**filters: list[str]) -> list[str]:
    f = {k.replace("_", "-"): v for k, v in filters.items()}
    ok = matcher(f, find)
    return [c.name for c in ALL if ok(c)]


def test_name_and_id_are_regular_expressions() -> None:
    assert names(name=["^r1$"]) == ["r1"]
    assert names(name=["^/r1"]) == ["r1", "r10"]
    assert names(name=["r1"]) == ["r1", "r10"]
    assert names(name=["[unclosed"]) == []
    assert names(id=["^c3c3"]) == ["web"]
    assert names(id=["b2b2", "^a1"]) == ["r1", "r10"]


def test_before_and_since() -> None:
    assert names(before=["web"]) == ["r1", "r10"]
    assert names(since=["r1"]) == ["r10", "web"]
    assert names(since=["r1"], before=["web"]) == ["r10"]
    with pytest.raises(NotFound, match=r"^No such container: nope$"):
        names(before=["nope"])


def test_publish_and_expose() -> None:
    assert names(publish=["80"]) == ["r10"]
    assert names(publish=["8000-8100/tcp"]) == ["web"]
    assert names(publish=["80-8090"]) == ["r10", "web"]
    assert names(publish=["80/udp"]) == []
    assert names(expose=["53/udp"]) == ["r10"]
    with pytest.raises(BadRequest, match="should not contain ':'"):
        names(publish=["8080:80"])
    with pytest.raises(BadRequest, match="error while looking up for expose x"):
        names(expose=["x"])


def test_fixed_value_keys_and_refusals() -> None:
    assert names(status=["exited"], exited=["3"]) == ["web"]
    assert names(health=["none"]) == ["r1", "r10", "web"]
    assert names(health=["healthy"]) == []
    assert names(is_task=["false"]) == ["r1", "r10", "web"]
    assert names(volume=["data"]) == []
    for key, value, text in (
        ("status", "sleeping", "Invalid filter 'status=sleeping'"),
        ("health", "ok", "Invalid filter 'health=ok'"),
        ("colour", "red", "invalid filter 'colour'"),
    ):
        with pytest.raises(BadRequest, match=f"^{text}$"):
            matcher({key: [value]}, find)
