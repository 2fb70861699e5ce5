"""The table of known networks: what the network controller, the cluster view and the
gateway bridge share.

One ``NetworkTable`` is built first by the composition root and given to each of them, so
none needs another's object: the controller validates and decides, the cluster view adds
and drops global networks seen in the cluster store, the gateway bridge makes its own
local bridge network. The table holds the networks by id, the per-network
``AddressSpace`` that decides the next address, and the lock that serialises network
creation and removal; it writes a local network's records (``networks/<id>``,
``netnames/<name>``) in the local store.
"""

from __future__ import annotations

import asyncio
import ipaddress

from tether.contracts.model import Network
from tether.engine.ipam import AddressSpace
from tether.errors import BadRequest, Conflict, Forbidden
from tether.store.base import Op, Store


class NetworkTable:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.networks: dict[str, Network] = {}
        self.spaces: dict[str, list[AddressSpace]] = {}
        self.lock = asyncio.Lock()  # held while a network is created or removed

    def index(self, net: Network) -> None:
        """Known from now on, with fresh address spaces (nothing reserved)."""
        self.networks[net.id] = net
        label = f"{net.name} ({net.id})"
        spaces = [AddressSpace(p, label) for p in net.pools]
        if net.dual_stack:  # IPv6 addresses only with EnableIPv6 (Docker keeps the config)
            spaces += [AddressSpace(p, label) for p in net.pools6]
        self.spaces[net.id] = spaces

    def drop(self, net_id: str) -> Network | None:
        self.spaces.pop(net_id, None)
        return self.networks.pop(net_id, None)

    def by_name(self, name: str) -> Network | None:
        for net in self.networks.values():
            if net.name == name:
                return net
        return None

    def used_subnets(self) -> list[ipaddress.IPv4Network]:
        """Every network's subnets: one local address space, macvlan's included (Docker
        refuses a macvlan subnet that overlaps any other network's, too)."""
        return [p.subnet for net in self.networks.values() for p in net.pools]

    def used_subnets6(self) -> list[ipaddress.IPv6Network]:
        """Every network's IPv6 subnets (dual-stack or not: the config is held)."""
        return [p.subnet for net in self.networks.values() for p in net.pools6]

    def used_vnis(self) -> set[int]:
        return {n.vni for n in self.networks.values() if n.vni}

    # ---- addresses -----------------------------------------------------------
    def reserve(self, net_id: str, ip: str, held: bool) -> None:
        """Mark ``ip`` held (by a record: never handed out) or free again."""
        addr = ipaddress.ip_address(ip)
        for space in self.spaces.get(net_id, []):
            if addr in space.cfg.subnet:
                if held:
                    space.reserve(addr)
                else:
                    space.release(addr)

    def allocate(self, net: Network, static: str | None, version: int = 4) -> tuple[str, int, str]:
        """Pick an address (the caller persists ``ipam/<net>/<ip>`` in its transaction).

        Returns (ip, prefixlen, gateway). Raises before anything is held on error.
        ``version`` 6: from the network's IPv6 pools (dual-stack networks only).
        """
        spaces = [s for s in self.spaces.get(net.id, []) if s.version == version]
        if not spaces:
            raise Forbidden(f"network {net.name} has no address pool")
        if static:
            if not net.user_subnet and version == 4:
                raise BadRequest(
                    "user specified IP address is supported only when connecting to "
                    "networks with user configured subnets"
                )
            ip = ipaddress.ip_address(static)
            for space in spaces:
                if ip in space.cfg.subnet:
                    space.claim_static(ip)
                    return str(ip), space.cfg.subnet.prefixlen, str(space.cfg.gateway)
            raise BadRequest(
                f"Invalid address {static}: It does not belong to any of this network's subnets"
            )
        last: Exception | None = None
        for space in spaces:
            try:
                got = space.claim_next()
            except Forbidden as exc:
                last = exc
                continue
            return str(got), space.cfg.subnet.prefixlen, str(space.cfg.gateway)
        assert last is not None
        raise last

    def release(self, net_id: str, ip: str) -> None:
        if ip:
            self.reserve(net_id, ip, False)

    # ---- local records -------------------------------------------------------
    async def persist_new(self, net: Network) -> None:
        """Write a new local network's name and record (Docker's error if the name is
        taken), then know it."""
        res = await self.store.txn(
            [
                Op("create", f"netnames/{net.name}", {"id": net.id}),
                Op("create", f"networks/{net.id}", net.to_dict()),
            ]
        )
        if not res.ok:
            raise Conflict(f"network with name {net.name} already exists")
        self.index(net)

    async def save(self, net: Network) -> None:
        await self.store.put(f"networks/{net.id}", net.to_dict())

    async def forget(self, net: Network) -> None:
        """Delete a local network's name and record (its kernel objects are gone)."""
        await self.store.txn(
            [Op("delete", f"networks/{net.id}"), Op("delete", f"netnames/{net.name}")]
        )
        self.drop(net.id)
