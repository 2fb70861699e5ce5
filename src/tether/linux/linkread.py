"""Reading a namespace's links and a VXLAN device's entries through pyroute2 (read only: the
topology's kernel check and the overlay's reconciliation); split from :mod:`.netlink`."""

from __future__ import annotations

from typing import Any

from tether.linux.linktypes import LinkInfo


async def vxlan_entries(ipr: Any, vxlan: str) -> tuple[dict[str, str], dict[str, str]]:
    """The device's own remote entries: (FDB MAC -> VTEP, neighbour IP -> MAC).

    Only FDB entries with a destination (what ``set_entries`` makes; the bridge's own
    entries for the port have none) and permanent neighbour entries are listed.
    Empty when the device is missing.
    """
    fdb: dict[str, str] = {}
    neigh: dict[str, str] = {}
    found = await ipr.link_lookup(ifname=vxlan)
    if not found:
        return fdb, neigh
    idx = int(found[0])
    async for e in await ipr.fdb("dump", ifindex=idx):
        if e.get("ifindex") == idx and e.get("NDA_DST") and e.get("NDA_LLADDR"):
            fdb[str(e.get("NDA_LLADDR"))] = str(e.get("NDA_DST"))
    for family in (2, 10):  # IPv4, IPv6 (dual-stack overlay networks)
        async for e in await ipr.neigh("dump", ifindex=idx, family=family):
            if e.get("ifindex") == idx and e.get("state") == 0x80 and e.get("NDA_LLADDR"):
                neigh[str(e.get("NDA_DST"))] = str(e.get("NDA_LLADDR"))
    return fdb, neigh


async def link_table(ipr: Any) -> list[LinkInfo]:
    """Every link of the socket's namespace, with its IPv4 addresses."""
    raw = [link async for link in await ipr.link("dump")]
    addrs: dict[int, list[str]] = {}
    async for a in await ipr.addr("dump", family=2):
        addrs.setdefault(int(a["index"]), []).append(f"{a.get('address')}/{a['prefixlen']}")
    names = {int(link["index"]): str(link.get("ifname")) for link in raw}
    return [_link_info(link, names, addrs) for link in raw]


def _link_info(link: Any, names: dict[int, str], addrs: dict[int, list[str]]) -> LinkInfo:
    idx = int(link["index"])
    kind = str(link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "")
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    up = bool(link["flags"] & 1)
    master = link.get("master")
    parent = link.get("link")
    vni = local = None
    if kind == "vxlan" and data is not None:
        vni, local = data.get("IFLA_VXLAN_ID"), data.get("IFLA_VXLAN_LOCAL")
    return LinkInfo(
        name=names[idx],
        kind=kind,
        state=str(link.get("operstate") or "unknown").lower() if up else "down",
        mac=str(link.get("address") or ""),
        mtu=int(link.get("mtu") or 0),
        master=names.get(int(master), "") if master else "",
        parent=(names.get(int(parent)) or f"#{parent}") if parent and parent != idx else "",
        addresses=tuple(addrs.get(idx, ())),
        vni=int(vni or 0),
        local=str(local or ""),
    )
