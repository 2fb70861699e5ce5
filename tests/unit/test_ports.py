"""Port spec parsing (Docker API shapes) and the host port allocator."""

from __future__ import annotations

import pytest

from tether.engine.firewall import PortRule
from tether.engine.ports import (
    PortAllocator,
    PortBinding,
    PortRequest,
    exposed_keys,
    parse_bindings,
    parse_host_port,
    parse_port_key,
    port_rules,
    ports_json,
)
from tether.errors import BadRequest, Conflict


def test_parse_port_key() -> None:
    assert parse_port_key("80/tcp") == (80, "tcp")
    assert parse_port_key("53/UDP") == (53, "udp")
    assert parse_port_key("443") == (443, "tcp")
    assert parse_port_key("9/sctp") == (9, "sctp")


@pytest.mark.parametrize("key", ["", "abc/tcp", "0/tcp", "65536/tcp", "80/icmp", "80-90/tcp"])
def test_parse_port_key_invalid(key: str) -> None:
    with pytest.raises(BadRequest, match="invalid port specification"):
        parse_port_key(key)


def test_parse_host_port() -> None:
    assert parse_host_port("") == (0, 0)
    assert parse_host_port("8080") == (8080, 8080)
    assert parse_host_port("8000-8010") == (8000, 8010)
    for bad in ("x", "8010-8000", "70000", "1-", "-5"):
        with pytest.raises(BadRequest, match=f'invalid port specification: "{bad}"'):
            parse_host_port(bad)


def test_parse_bindings_docker_shapes() -> None:
    reqs = parse_bindings(
        {
            "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
            "53/udp": [{"HostIp": "10.0.0.1", "HostPort": "8000-8010"}],
            "81/tcp": None,
        }
    )
    assert reqs == [
        PortRequest("tcp", 80, "0.0.0.0", 8080, 8080),
        PortRequest("tcp", 80, "127.0.0.1", 0, 0),
        PortRequest("udp", 53, "10.0.0.1", 8000, 8010),
    ]


def test_publish_all_binds_every_unbound_exposed_port() -> None:
    reqs = parse_bindings(
        {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        {"80/tcp": {}, "443/tcp": {}, "53/udp": {}},
        publish_all=True,
    )
    assert reqs == [
        PortRequest("tcp", 80, "0.0.0.0", 8080, 8080),
        PortRequest("tcp", 443),
        PortRequest("udp", 53),
    ]
    assert parse_bindings(None, {"80/tcp": {}}, publish_all=False) == []


def test_host_ip_validation() -> None:
    # IPv6 host addresses (issue 18; published for dual-stack containers, see test_ipv6_ports)
    assert parse_bindings({"80/tcp": [{"HostIp": "::", "HostPort": "1"}]})[0].host_ip == "::"
    with pytest.raises(BadRequest, match="invalid host IP"):
        parse_bindings({"80/tcp": [{"HostIp": "nope", "HostPort": "1"}]})


def test_exposed_keys_include_bound_ports() -> None:
    assert exposed_keys({"81/tcp": {}}, {"80": []}) == ["80/tcp", "81/tcp"]


def test_ports_json_shape() -> None:
    got = ports_json(
        ["80/tcp", "81/tcp", "443/tcp"],
        [PortBinding("tcp", 80, "0.0.0.0", 8080), PortBinding("tcp", 80, "127.0.0.1", 9090)],
    )
    assert got == {
        "443/tcp": None,
        "80/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": "8080"},
            {"HostIp": "127.0.0.1", "HostPort": "9090"},
        ],
        "81/tcp": None,
    }
    assert list(got) == ["443/tcp", "80/tcp", "81/tcp"]  # Go's sorted map keys


def test_port_rules() -> None:
    rules = port_rules([PortBinding("udp", 53, "0.0.0.0", 5353)], "172.20.0.2", "tth-a")
    assert rules == [PortRule("udp", "0.0.0.0", 5353, "172.20.0.2", 53, "tth-a")]


# ---------------------------------------------------------------- allocator


def test_fixed_port_conflict_text() -> None:
    a = PortAllocator()
    a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8080, 8080)])
    with pytest.raises(Conflict) as exc:
        a.allocate([PortRequest("tcp", 80, "", 8080, 8080)])
    assert exc.value.message == "Bind for 0.0.0.0:8080 failed: port is already allocated"
    # another protocol is free
    a.allocate([PortRequest("udp", 80, "0.0.0.0", 8080, 8080)])


def test_any_and_specific_ips_collide_both_ways() -> None:
    a = PortAllocator()
    a.allocate([PortRequest("tcp", 80, "10.0.0.1", 8080, 8080)])
    a.allocate([PortRequest("tcp", 80, "10.0.0.2", 8080, 8080)])  # another specific ip is fine
    with pytest.raises(Conflict, match=r"^Bind for 0\.0\.0\.0:8080 failed"):
        a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8080, 8080)])
    with pytest.raises(Conflict) as exc:
        a.allocate([PortRequest("tcp", 80, "10.0.0.1", 8080, 8080)])
    assert exc.value.message == "Bind for 10.0.0.1:8080 failed: port is already allocated"

    b = PortAllocator()
    b.allocate([PortRequest("tcp", 80, "0.0.0.0", 9000, 9000)])
    with pytest.raises(Conflict, match=r"Bind for 10\.0\.0\.1:9000 failed"):
        b.allocate([PortRequest("tcp", 80, "10.0.0.1", 9000, 9000)])


def test_random_ports_come_from_ephemeral_range_round_robin() -> None:
    a = PortAllocator()
    (b1,) = a.allocate([PortRequest("tcp", 80)])
    (b2,) = a.allocate([PortRequest("tcp", 80)])
    assert b1.host_port == 49153 and b2.host_port == 49154
    a.release([b1])
    (b3,) = a.allocate([PortRequest("tcp", 80)])
    assert b3.host_port == 49155  # not reused at once
    (u,) = a.allocate([PortRequest("udp", 80)])
    assert u.host_port == 49153  # per protocol


def test_random_ports_skip_used_and_wrap_then_exhaust() -> None:
    a = PortAllocator(60000, 60002)
    a.allocate([PortRequest("tcp", 1, "0.0.0.0", 60001, 60001)])
    got = [a.allocate([PortRequest("tcp", 80)])[0].host_port for _ in range(2)]
    assert got == [60000, 60002]
    with pytest.raises(Conflict, match="all ports are allocated"):
        a.allocate([PortRequest("tcp", 80)])
    a.release([PortBinding("tcp", 1, "0.0.0.0", 60001)])
    assert a.allocate([PortRequest("tcp", 80)])[0].host_port == 60001


def test_range_request_takes_first_free() -> None:
    a = PortAllocator()
    a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8000, 8000)])
    (b,) = a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8000, 8002)])
    assert b.host_port == 8001
    a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8002, 8002)])
    with pytest.raises(Conflict, match="all ports are allocated"):
        a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8000, 8002)])


def test_allocate_is_all_or_nothing() -> None:
    a = PortAllocator()
    a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8081, 8081)])
    with pytest.raises(Conflict):
        a.allocate(
            [
                PortRequest("tcp", 80, "0.0.0.0", 8080, 8080),
                PortRequest("tcp", 81, "0.0.0.0", 8081, 8081),
            ]
        )
    assert not a.in_use("tcp", "0.0.0.0", 8080)
    a.allocate([PortRequest("tcp", 80, "0.0.0.0", 8080, 8080)])


def test_reserve_all_and_release() -> None:
    a = PortAllocator()
    saved = [PortBinding("tcp", 80, "0.0.0.0", 8080), PortBinding("udp", 53, "10.0.0.1", 53)]
    a.reserve_all(saved)
    assert a.in_use("tcp", "10.0.0.9", 8080)
    assert a.in_use("udp", "0.0.0.0", 53)
    assert not a.in_use("udp", "10.0.0.2", 53)
    with pytest.raises(Conflict):
        a.allocate([PortRequest("tcp", 80, "", 8080, 8080)])
    a.release(saved)
    assert not a.in_use("tcp", "0.0.0.0", 8080)
    a.allocate([PortRequest("tcp", 80, "", 8080, 8080)])
