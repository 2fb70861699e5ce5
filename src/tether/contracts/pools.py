"""Validated IPAM pool configuration, shared by the engine, the drivers and the store records.

A leaf of the contracts package: ``PoolConfig`` is part of a stored ``Network``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from tether.errors import BadRequest


def parse_cidr(text: str, what: str = "subnet") -> IPv4Network:
    """Parse ``A.B.C.D/N`` (host bits allowed) with Docker's texts on failure."""
    net = parse_cidr_any(text, what)
    if not isinstance(net, IPv4Network):
        raise BadRequest(f"IPv6 is not supported here: {text}")
    return net


def parse_cidr_any(text: str, what: str = "subnet") -> IPv4Network | IPv6Network:
    """An IPv4 or IPv6 ``ADDRESS/N`` (host bits allowed) with Docker's texts on failure."""
    try:
        if "/" not in text:
            raise ValueError(text)
        iface = ipaddress.ip_interface(text)
    except ValueError:
        if what == "subnet":
            raise BadRequest(f"Invalid subnet {text} : invalid CIDR address: {text}") from None
        raise BadRequest(f"invalid CIDR address: {text}") from None
    return iface.network


def parse_ip(text: str) -> IPv4Address:
    ip = parse_ip_any(text)
    if not isinstance(ip, IPv4Address):
        raise BadRequest(f"IPv6 is not supported here: {text}")
    return ip


def parse_ip_any(text: str) -> IPv4Address | IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(f"invalid IP address: {text}") from None


def is_v6_config(d: dict[str, Any]) -> bool:
    """An IPAM config entry (as stored) of an IPv6 subnet."""
    return ":" in str(d.get("Subnet") or "")


@dataclass(frozen=True)
class PoolConfig:
    """One IPAM config entry of a network, validated."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None
    aux: dict[str, IPv4Address] = field(default_factory=dict)
    user_subnet: bool = True
    ip_range_text: str = ""  # the range as the user wrote it (Docker shows it unmasked)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Subnet": str(self.subnet)}
        if self.ip_range is not None:
            out["IPRange"] = self.ip_range_text or str(self.ip_range)
        out["Gateway"] = str(self.gateway)
        if self.aux:
            out["AuxiliaryAddresses"] = {k: str(v) for k, v in self.aux.items()}
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], user_subnet: bool = True) -> PoolConfig:
        return cls(
            subnet=IPv4Network(d["Subnet"]),
            gateway=IPv4Address(d["Gateway"]),
            ip_range=IPv4Network(d["IPRange"], strict=False) if d.get("IPRange") else None,
            aux={k: IPv4Address(v) for k, v in (d.get("AuxiliaryAddresses") or {}).items()},
            user_subnet=user_subnet,
            ip_range_text=d.get("IPRange") or "",
        )


@dataclass(frozen=True)
class PoolConfig6:
    """One IPv6 IPAM config entry of a dual-stack network, validated (``PoolConfig``'s shape)."""

    subnet: IPv6Network
    gateway: IPv6Address
    ip_range: IPv6Network | None = None
    aux: dict[str, IPv6Address] = field(default_factory=dict)
    user_subnet: bool = True
    ip_range_text: str = ""

    def to_json(self) -> dict[str, Any]:
        return PoolConfig.to_json(self)  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, d: dict[str, Any], user_subnet: bool = True) -> PoolConfig6:
        return cls(
            subnet=IPv6Network(d["Subnet"]),
            gateway=IPv6Address(d["Gateway"]),
            ip_range=IPv6Network(d["IPRange"], strict=False) if d.get("IPRange") else None,
            aux={k: IPv6Address(v) for k, v in (d.get("AuxiliaryAddresses") or {}).items()},
            user_subnet=user_subnet,
            ip_range_text=d.get("IPRange") or "",
        )
