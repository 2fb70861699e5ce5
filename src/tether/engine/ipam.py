"""IPAM: address pools for networks and addresses for endpoints.

Two jobs, with Docker's rules and texts:

* **Pools.** A network's subnet is either given (validated, and refused when it
  overlaps another network in the same address space) or picked from the
  default pools (``172.17-31.0.0/16`` then ``192.168.0.0/16`` cut in ``/20``;
  ``default-address-pools`` in daemon.json replaces them), skipping subnets
  used by networks or, for the default bridge, by the host's routes.
* **Addresses.** ``AddressSpace`` hands out the lowest free address of the
  network's range (``--ip-range`` or the whole subnet), skipping the network and
  broadcast addresses, the gateway and aux addresses. It keeps a bitmap-free
  in-memory set plus a "lowest possibly free" hint, so allocation on a /8 costs
  what the allocated prefix costs, not the size of the subnet. The store is the
  truth (``ipam/<network>/<ip>`` keys written by the caller's transaction);
  this class is rebuilt from it at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from tether.contracts.pools import PoolConfig, PoolConfig6, parse_cidr_any, parse_ip_any
from tether.errors import BadRequest, Conflict, Forbidden

DEFAULT_POOLS: list[tuple[str, int]] = [(f"172.{n}.0.0/16", 16) for n in range(17, 32)] + [
    ("192.168.0.0/16", 20)
]


def validate_config(
    subnet: str, gateway: str | None, ip_range: str | None, aux: dict[str, str] | None
) -> PoolConfig:
    """Check one user IPv4 IPAM config with Docker's messages."""
    cfg = validate_any(subnet, gateway, ip_range, aux)
    if not isinstance(cfg, PoolConfig):
        raise BadRequest(f"IPv6 is not supported here: {subnet}")
    return cfg


def validate_any(
    subnet: str, gateway: str | None, ip_range: str | None, aux: dict[str, str] | None
) -> PoolConfig | PoolConfig6:
    """Check one user IPAM config (IPv4 or IPv6, by its subnet) with Docker's messages."""
    net = parse_cidr_any(subnet)
    v6 = isinstance(net, IPv6Network)
    if net.prefixlen > (126 if v6 else 30):
        raise BadRequest(f"Invalid subnet {subnet} : the subnet is too small for a network")
    rng: Any = None
    if ip_range:
        rng = parse_cidr_any(ip_range, what="range")
        if rng.version != net.version or not rng.subnet_of(net):
            raise BadRequest(f"no matching subnet for range {ip_range}")
    if gateway:
        gw = parse_ip_any(gateway)
        if gw not in net:
            raise BadRequest(f"no matching subnet for gateway {gateway}")
    else:
        gw = net.network_address + 1
    # The subnet's network and (IPv4) broadcast addresses are never anyone's; the gateway is
    # taken first, then each aux address in turn (libnetwork's order and texts; it answers
    # 500, tether 400: the request is at fault).
    taken = {net.network_address} | (set() if v6 else {net.broadcast_address})
    if gw in taken:
        raise BadRequest(f"failed to allocate gateway ({gw}): Address already in use")
    taken.add(gw)
    aux_ips: dict[str, Any] = {}
    for name, value in (aux or {}).items():
        ip = parse_ip_any(value)
        if ip not in net:
            raise BadRequest(f"no matching subnet for aux-address {value}")
        if ip in taken:
            raise BadRequest(
                f"failed to allocate secondary ip address ({name}:{value}): Address already in use"
            )
        taken.add(ip)
        aux_ips[name] = ip
    kind = PoolConfig6 if v6 else PoolConfig
    return kind(net, gw, rng, aux_ips, ip_range_text=ip_range or "")  # type: ignore[arg-type]


class PoolPicker:
    """Chooses subnets for networks from the default address pools."""

    def __init__(self, pools: Sequence[tuple[str, int]] | None = None) -> None:
        self.pools = [(IPv4Network(base), size) for base, size in (pools or DEFAULT_POOLS)]

    def candidates(self) -> Iterable[IPv4Network]:
        for base, size in self.pools:
            if size < base.prefixlen:
                yield base
                continue
            yield from base.subnets(new_prefix=size)

    def pick(self, used: Iterable[IPv4Network], avoid: Iterable[IPv4Network] = ()) -> IPv4Network:
        taken = list(used) + list(avoid)
        for cand in self.candidates():
            if not any(cand.overlaps(t) for t in taken):
                return cand
        raise Forbidden(NO_POOL.format(4))


# libnetwork's text (ipam.getPredefinedPool), for IPv6 too: tether, as Docker 20.10, has no
# default IPv6 pools, so ``--ipv6`` needs an IPv6 ``--subnet``
NO_POOL = (
    "could not find an available, non-overlapping IPv{} address pool among the "
    "defaults to assign to the network"
)


def check_overlap(
    new: IPv4Network | IPv6Network, used: Iterable[IPv4Network | IPv6Network]
) -> None:
    for u in used:
        if u.version == new.version and new.overlaps(u):
            raise Forbidden("Pool overlaps with other one on this address space")


class AddressSpace:
    """The addresses of one network: who holds which, and the next free one."""

    def __init__(self, cfg: PoolConfig | PoolConfig6, label: str) -> None:
        self.cfg = cfg
        self.label = label
        self.version = cfg.subnet.version
        rng = cfg.ip_range or cfg.subnet
        net = cfg.subnet
        first = int(rng.network_address)
        last = int(rng.broadcast_address)
        # The subnet's own network and (IPv4) broadcast addresses are never handed out.
        self._lo = max(first, int(net.network_address) + 1)
        self._hi = min(last, int(net.broadcast_address) - (1 if self.version == 4 else 0))
        self._reserved = {int(cfg.gateway)} | {int(a) for a in cfg.aux.values()}
        self._used: set[int] = set()
        self._hint = self._lo

    def reserve(self, ip: IPv4Address | IPv6Address) -> None:
        """Record an address as held (restoring from the store)."""
        self._used.add(int(ip))

    def is_free(self, ip: IPv4Address | IPv6Address) -> bool:
        return int(ip) not in self._used and int(ip) not in self._reserved

    def claim_static(self, ip: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
        """Take a user-chosen address (``--ip``): anywhere in the subnet, not just the range."""
        if ip not in self.cfg.subnet:
            raise BadRequest(
                f"Invalid address {ip}: It does not belong to any of this network's subnets"
            )
        value = int(ip)
        net = self.cfg.subnet
        if (
            value in self._used
            or value in self._reserved
            or ip == net.network_address
            or (self.version == 4 and ip == net.broadcast_address)
        ):
            raise Conflict("Address already in use")
        self._used.add(value)
        return ip

    def claim_next(self) -> IPv4Address | IPv6Address:
        value = self._hint
        while value <= self._hi and (value in self._used or value in self._reserved):
            value += 1
        if value > self._hi:
            raise Forbidden(
                f"no available IPv{self.version} addresses on this network's address pools: "
                f"{self.label}"
            )
        self._used.add(value)
        self._hint = value + 1
        return IPv4Address(value) if self.version == 4 else IPv6Address(value)

    def release(self, ip: IPv4Address | IPv6Address) -> None:
        value = int(ip)
        self._used.discard(value)
        if self._lo <= value < self._hint:
            self._hint = value

    @property
    def used(self) -> int:
        return len(self._used)
