"""EtcdStore pieces that need no etcd: endpoint parsing, key ranges."""

from __future__ import annotations

import pytest

from tether.store.etcd import Endpoint, EtcdStore, parse_endpoint, range_end


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("etcd://10.0.0.1:2379", "10.0.0.1", 2379),
        ("http://etcd.example:4001/", "etcd.example", 4001),
        ("127.0.0.1:23790", "127.0.0.1", 23790),
        ("node1", "node1", 2379),
        ("etcd://[fd00::1]:2380", "fd00::1", 2380),
        ("[fd00::1]", "fd00::1", 2379),
    ],
)
def test_parse_endpoint(text: str, host: str, port: int) -> None:
    assert parse_endpoint(text) == Endpoint(host, port)


@pytest.mark.parametrize("text", ["", "etcd://", "h:port", "h:0", "h:70000"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_endpoint_names_the_store() -> None:
    assert str(Endpoint("10.0.0.1", 2379)) == "etcd://10.0.0.1:2379"
    assert str(Endpoint("fd00::1", 2379)) == "etcd://[fd00::1]:2379"
    store = EtcdStore(["a", "b:1"])
    assert store.name == "etcd://a:2379,etcd://b:1"


def test_range_end() -> None:
    assert range_end(b"/tether/net/") == b"/tether/net0"
    assert range_end(b"a\xff") == b"b"
    assert range_end(b"\xff\xff") == b"\0"
    assert range_end(b"") == b"\0"


def test_store_needs_an_endpoint() -> None:
    with pytest.raises(ValueError):
        EtcdStore([])
