"""IPAM: validation texts, default pools, and address allocation (no root)."""

from __future__ import annotations

import ipaddress

import pytest

from tether.contracts.pools import PoolConfig
from tether.engine.ipam import AddressSpace, PoolPicker, check_overlap, validate_config
from tether.errors import BadRequest, Conflict, Forbidden


def test_docker_texts_for_bad_configs() -> None:
    with pytest.raises(
        BadRequest,
        match=r"^Invalid subnet 300\.1\.1\.0/24 : invalid CIDR address: 300\.1\.1\.0/24$",
    ):
        validate_config("300.1.1.0/24", None, None, None)
    with pytest.raises(BadRequest, match=r"^no matching subnet for gateway 10.2.2.1$"):
        validate_config("10.1.1.0/24", "10.2.2.1", None, None)
    with pytest.raises(BadRequest, match=r"^no matching subnet for range 10.9.9.0/28$"):
        validate_config("10.1.1.0/24", None, "10.9.9.0/28", None)
    for bad in ("10.0.0.0/33", "10.0.0.0", "nonsense/8", "/24"):
        with pytest.raises(BadRequest):
            validate_config(bad, None, None, None)


def test_gateway_and_aux_cannot_take_reserved_or_taken_addresses() -> None:
    """The subnet's network and broadcast addresses are nobody's; the gateway, then each aux
    address, takes its address (libnetwork's texts)."""
    for gw in ("10.1.1.0", "10.1.1.255"):
        with pytest.raises(
            BadRequest, match=rf"^failed to allocate gateway \({gw}\): Address already in use$"
        ):
            validate_config("10.1.1.0/24", gw, None, None)
    text = r"^failed to allocate secondary ip address \(b:10.1.1.1\): Address already in use$"
    with pytest.raises(BadRequest, match=text):
        validate_config("10.1.1.0/24", None, None, {"b": "10.1.1.1"})  # the default gateway
    with pytest.raises(BadRequest, match=text):
        validate_config("10.1.1.0/24", None, None, {"a": "10.1.1.9", "b": "10.1.1.1"})
    with pytest.raises(BadRequest, match=r"\(b:10.1.1.9\): Address already in use$"):
        validate_config("10.1.1.0/24", None, None, {"a": "10.1.1.9", "b": "10.1.1.9"})
    cfg = validate_config("10.1.1.0/24", "10.1.1.254", None, {"a": "10.1.1.1"})
    assert str(cfg.aux["a"]) == "10.1.1.1"


def test_gateway_defaults_to_first_address() -> None:
    cfg = validate_config("172.28.0.0/16", None, None, None)
    assert str(cfg.gateway) == "172.28.0.1"


def test_overlap_text() -> None:
    with pytest.raises(Forbidden, match=r"^Pool overlaps with other one on this address space$"):
        check_overlap(
            ipaddress.IPv4Network("172.28.0.0/24"), [ipaddress.IPv4Network("172.28.0.0/16")]
        )
    check_overlap(ipaddress.IPv4Network("172.29.0.0/24"), [ipaddress.IPv4Network("172.28.0.0/16")])


def test_default_pools_in_docker_order_skipping_used_and_routes() -> None:
    picker = PoolPicker()
    first = picker.pick([])
    assert str(first) == "172.17.0.0/16"
    used = [first, ipaddress.IPv4Network("172.18.0.0/16")]
    assert str(picker.pick(used)) == "172.19.0.0/16"
    routes = [ipaddress.IPv4Network("172.19.5.0/24")]
    assert str(picker.pick(used, routes)) == "172.20.0.0/16"
    all16 = [ipaddress.IPv4Network(f"172.{n}.0.0/16") for n in range(17, 32)]
    assert str(picker.pick(all16)) == "192.168.0.0/20"
    assert str(picker.pick([*all16, ipaddress.IPv4Network("192.168.0.0/20")])) == "192.168.16.0/20"


def test_custom_default_pools_and_exhaustion() -> None:
    picker = PoolPicker([("10.10.0.0/16", 24)])
    assert str(picker.pick([])) == "10.10.0.0/24"
    with pytest.raises(Forbidden, match=r"could not find an available, non-overlapping"):
        picker.pick([ipaddress.IPv4Network("10.10.0.0/16")])


def space(
    subnet: str, gw: str, rng: str | None = None, aux: dict[str, str] | None = None
) -> AddressSpace:
    return AddressSpace(validate_config(subnet, gw, rng, aux), "n (id)")


def test_allocation_starts_at_range_and_skips_gateway_and_aux() -> None:
    s = space("172.26.1.0/24", "172.26.1.254", "172.26.1.100/28")
    assert str(s.claim_next()) == "172.26.1.96"  # what Docker 20.10 hands out first
    s2 = space("10.0.0.0/29", "10.0.0.1", aux={"a": "10.0.0.2"})
    assert [str(s2.claim_next()) for _ in range(4)] == [
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.5",
        "10.0.0.6",
    ]
    with pytest.raises(Forbidden, match=r"no available IPv4 addresses"):
        s2.claim_next()


def test_release_makes_the_lowest_address_next_again() -> None:
    s = space("10.0.0.0/24", "10.0.0.254")
    a, b, c = s.claim_next(), s.claim_next(), s.claim_next()
    assert [str(x) for x in (a, b, c)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    s.release(b)
    assert s.claim_next() == b
    assert str(s.claim_next()) == "10.0.0.4"


def test_static_addresses() -> None:
    s = space("10.0.0.0/24", "10.0.0.254", "10.0.0.128/25")
    assert (
        str(s.claim_static(ipaddress.IPv4Address("10.0.0.5"))) == "10.0.0.5"
    )  # outside the range is fine
    with pytest.raises(Conflict, match=r"^Address already in use$"):
        s.claim_static(ipaddress.IPv4Address("10.0.0.5"))
    with pytest.raises(Conflict):
        s.claim_static(ipaddress.IPv4Address("10.0.0.254"))  # the gateway
    with pytest.raises(BadRequest, match=r"does not belong"):
        s.claim_static(ipaddress.IPv4Address("10.9.0.5"))


def test_allocation_on_a_slash8_is_fast_per_address() -> None:
    s = space("10.0.0.0/8", "10.0.0.1")
    got = {s.claim_next() for _ in range(5000)}
    assert len(got) == 5000
    assert max(got) == ipaddress.IPv4Address("10.0.19.137")  # dense from the start, gateway skipped


def test_pool_config_round_trip() -> None:
    cfg = validate_config("10.1.0.0/16", "10.1.0.254", "10.1.2.0/24", {"x": "10.1.0.9"})
    back = PoolConfig.from_json(cfg.to_json())
    assert back.to_json() == cfg.to_json()
