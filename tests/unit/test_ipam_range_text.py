"""IPRange is shown as the user wrote it (Docker: ``172.26.1.100/28``) and survives a reload."""

from __future__ import annotations

from ipaddress import IPv4Network

from tether.contracts.pools import PoolConfig
from tether.engine.ipam import validate_config


def test_ip_range_text_kept_and_reloaded() -> None:
    cfg = validate_config("172.26.1.0/24", "172.26.1.254", "172.26.1.100/28", None)
    assert cfg.ip_range == IPv4Network("172.26.1.96/28")
    js = cfg.to_json()
    assert js == {
        "Subnet": "172.26.1.0/24",
        "IPRange": "172.26.1.100/28",
        "Gateway": "172.26.1.254",
    }
    again = PoolConfig.from_json(js)
    assert again.ip_range == IPv4Network("172.26.1.96/28")
    assert again.to_json() == js
