"""Global network records in the cluster store: name, VNI, pools and record, in one
transaction (see ``tether.engine.cluster`` for the keys and why pools are one document,
``cluster/pool-index``, written by compare-and-swap)."""

from __future__ import annotations

import ipaddress

from tether.contracts.cluster import VNI_MIN, requested_vni
from tether.contracts.model import OPT_VXLANID, Network
from tether.contracts.pools import PoolConfig, is_v6_config
from tether.engine.cluster_endpoints import ROOT, ClusterStore
from tether.engine.ipam import PoolPicker, check_overlap
from tether.engine.nettable import NetworkTable
from tether.errors import Conflict, Forbidden
from tether.store.base import Op

POOLS_KEY = ROOT + "pool-index"
GLOBAL_POOL = PoolPicker([("10.0.0.0/8", 24)])


async def write_network(
    store: ClusterStore, table: NetworkTable, net: Network, taken_vni: set[int]
) -> None:
    """Write a new global network: name, VNI, pools and record in one transaction.

    The pools are checked against ``cluster/pool-index`` and the grown index is
    written on the condition that its revision is unchanged; a lost race re-reads and
    re-checks. An automatic pool that turns out to overlap is picked again; a user pool
    gets Docker's overlap error. A VNI another host took is added to ``taken_vni`` and
    the next one tried.
    """
    net.scope = "global"
    wanted = requested_vni(net)
    for _ in range(64):
        rec = await store.get(POOLS_KEY)
        listed = list(rec.value.get("pools", [])) if rec is not None else []
        taken = [ipaddress.ip_network(p["subnet"]) for p in listed]
        pools = _fit_pools(table, net, taken)
        net.vni = wanted or _next_vni(table, taken_vni)
        net.options[OPT_VXLANID] = str(net.vni)
        subnets = [str(p.subnet) for p in pools] + [str(p.subnet) for p in net.pools6]
        grown = listed + [{"subnet": subnet, "network": net.id} for subnet in subnets]
        ops = [
            Op("check", POOLS_KEY, revision=rec.revision if rec is not None else 0),
            Op("put", POOLS_KEY, {"pools": grown}),
            Op("create", f"{ROOT}names/{net.name}", {"id": net.id}),
            Op("create", f"{ROOT}vni/{net.vni}", {"network": net.id}),
            Op("create", f"{ROOT}networks/{net.id}", net.to_dict()),
        ]
        res = await store.txn(ops)
        if res.ok:
            return
        failed = res.failed_key or ""
        if failed == POOLS_KEY:
            continue  # another pool change won: read the index again
        if failed.startswith(f"{ROOT}vni/"):
            if wanted:
                raise Conflict(f"vxlan id {wanted} is already in use")
            taken_vni.add(net.vni)
            continue
        raise Conflict(f"network with name {net.name} already exists")
    raise Conflict("could not create the network: too many concurrent network changes")


def _fit_pools(
    table: NetworkTable, net: Network, taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> list[PoolConfig]:
    """The network's pools, checked against the global ones (re-picked if automatic); its
    IPv6 ones (always given) too, with Docker's overlap error."""
    for p6 in net.pools6:
        check_overlap(p6.subnet, taken)
    pools = net.pools
    if net.user_subnet:
        for p in pools:
            check_overlap(p.subnet, taken)
        return pools
    # Automatic: from the global default pool (Docker's GlobalDefault, 10.0.0.0/8 in /24s),
    # not the local one, whose subnets other hosts pick for their own bridges.
    used = table.used_subnets() + [t for t in taken if isinstance(t, ipaddress.IPv4Network)]
    subnet = GLOBAL_POOL.pick(used)
    cfg = PoolConfig(subnet, subnet.network_address + 1, user_subnet=False)
    net.configs = [cfg.to_json()] + [c for c in net.configs if is_v6_config(c)]  # IPv6: given
    return [cfg]


def _next_vni(table: NetworkTable, taken_vni: set[int]) -> int:
    used = table.used_vnis() | taken_vni
    vni = VNI_MIN
    while vni in used:
        vni += 1
    return vni


async def delete_network(store: ClusterStore, net: Network) -> None:
    """Delete a global network's records (Docker's error while endpoints hold addresses or
    records on it); done too when another host removed it meanwhile."""
    prefix_ipam = f"{ROOT}ipam/{net.id}/"
    prefix_eps = f"{ROOT}endpoints/{net.id}/"
    if await store.list(prefix_ipam) or await store.list(prefix_eps):
        raise Forbidden(
            f"error while removing network: network {net.name} id {net.id} has active endpoints"
        )
    for _ in range(64):
        rec = await store.get(f"{ROOT}networks/{net.id}")
        if rec is None:
            return  # removed by another host meanwhile
        index = await store.get(POOLS_KEY)
        listed = list(index.value.get("pools", [])) if index is not None else []
        kept = [p for p in listed if p.get("network") != net.id]
        ops = [
            Op("check", f"{ROOT}networks/{net.id}", revision=rec.revision),
            Op("check", POOLS_KEY, revision=index.revision if index is not None else 0),
            Op("put", POOLS_KEY, {"pools": kept}),
            Op("delete", f"{ROOT}networks/{net.id}"),
            Op("delete", f"{ROOT}names/{net.name}"),
            Op("delete", f"{ROOT}vni/{net.vni}"),
        ]
        if (await store.txn(ops)).ok:
            return
    raise Conflict("could not remove the network: too many concurrent network changes")
