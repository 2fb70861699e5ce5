"""The ``network create`` body, without click: the click command and the fast path
(:mod:`tether.cli.fast`) both build it here, so both send the same bytes.

``ipaddress`` costs ~3.5 ms of a CLI command: a plain IPv4 subnet, gateway or range (the
common case) is checked by hand, with ``ipaddress``'s own rules for what is an IPv4
address and a prefix length; anything else (IPv6, a netmask prefix, a bad value) goes
through ``ipaddress`` as before, and its errors are the ones printed.
"""

from __future__ import annotations

from tether.cli.text import UsageFailure

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def split_strings(values: Sequence[str]) -> list[str]:
    """pflag ``strings`` semantics: each value may hold several, comma separated."""
    return [p for v in values for p in v.split(",") if p != ""]


def _v4(text: str) -> int | None:
    """An IPv4 address as ``ipaddress.IPv4Address`` accepts it (no leading zeros), or None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for p in parts:
        if not (p.isascii() and p.isdigit()) or len(p) > 3 or (p != "0" and p[0] == "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        n = n << 8 | v
    return n


def _v4_prefix(text: str) -> tuple[int, int] | None:
    """``A.B.C.D[/N]`` with a decimal prefix length (what ``ip_network`` reads as IPv4)."""
    addr, slash, plen = text.partition("/")
    ip = _v4(addr)
    if ip is None:
        return None
    if not slash:
        return ip, 32
    if not (plen.isascii() and plen.isdigit()) or int(plen) > 32:
        return None
    return ip, int(plen)


def _contains_v4(subnet: str, data: str) -> bool | None:
    """:func:`subnet_contains` for plain IPv4 values; None: not that case."""
    net = _v4_prefix(subnet)
    if net is None:
        return None
    if "/" in data:
        got = _v4_prefix(data)
        ip = None if got is None else got[0]
    else:
        ip = _v4(data)
    if ip is None:
        return None
    mask = (0xFFFFFFFF << (32 - net[1])) & 0xFFFFFFFF
    return (ip & mask) == (net[0] & mask)


def subnet_contains(subnet: str, data: str) -> bool:
    """Whether ``data`` (an address, or an address/prefix) lies in ``subnet``, as docker checks."""
    fast = _contains_v4(subnet, data)
    if fast is not None:
        return fast
    return contains_ipaddress(subnet, data)


def contains_ipaddress(subnet: str, data: str) -> bool:
    """:func:`subnet_contains` by ``ipaddress`` alone (every form, and the error texts)."""
    import ipaddress

    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise UsageFailure(f"invalid subnet: invalid CIDR address: {subnet}") from None
    try:
        ip = ipaddress.ip_interface(data).ip if "/" in data else ipaddress.ip_address(data)
    except ValueError:
        if "/" in data:
            raise UsageFailure(f"invalid CIDR address: {data}") from None
        return False
    return ip in net


def consolidate_ipam(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """Group subnet/range/gateway/aux flags into IPAM configs, checking them as docker does."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise UsageFailure("every ip-range or gateway must have a corresponding subnet")
    data: dict[str, dict[str, Any]] = {}
    for s in subnets:
        for k in data:
            if subnet_contains(s, k.split("/")[0]) or subnet_contains(k, s.split("/")[0]):
                raise UsageFailure("multiple overlapping subnet configuration is not supported")
        data[s] = {"Subnet": s}
    for r in ranges:
        _place(data, subnets, "IPRange", r, "range", "ranges", "on")
    for g in gateways:
        _place(data, subnets, "Gateway", g, "gateway", "gateways", "for")
    for key, addr in aux.items():
        match = False
        for s in subnets:
            if subnet_contains(s, addr):
                data[s].setdefault("AuxiliaryAddresses", {})[key] = addr
                match = True
        if not match:
            raise UsageFailure(f"no matching subnet for aux-address {addr}")
    return list(data.values())


def _place(
    data: dict[str, dict[str, Any]],
    subnets: list[str],
    key: str,
    value: str,
    what: str,
    plural: str,
    prep: str,
) -> None:
    """Put an ip-range or gateway on every subnet holding it (the docker CLI's texts)."""
    match = False
    for s in subnets:
        if not subnet_contains(s, value):
            continue
        if data[s].get(key):
            raise UsageFailure(
                f"cannot configure multiple {plural} ({value}, {data[s][key]}) "
                f"{prep} the same subnet ({s})"
            )
        data[s][key] = value
        match = True
    if not match:
        raise UsageFailure(f"no matching subnet for {what} {value}")


def create_body(
    name: str,
    driver: str,
    subnets: list[str],
    gateways: list[str],
    ip_ranges: list[str],
    aux: dict[str, str],
    internal: bool,
    labels: dict[str, str],
    opts: dict[str, str],
    attachable: bool,
    ipam_driver: str,
    ipam_opts: dict[str, str],
    ipv6: bool,
    scope: str,
    ingress: bool,
    config_only: bool,
    config_from: str,
) -> dict[str, Any]:
    """The POST /networks/create body docker sends for these flags."""
    body: dict[str, Any] = {
        "Name": name,
        "CheckDuplicate": True,
        "Driver": driver,
        "Scope": scope,
        "EnableIPv6": ipv6,
        "IPAM": {
            "Driver": ipam_driver,
            "Options": ipam_opts,
            "Config": consolidate_ipam(subnets, ip_ranges, gateways, aux),
        },
        "Internal": internal,
        "Attachable": attachable,
        "Ingress": ingress,
        "ConfigOnly": config_only,
        "Options": opts,
        "Labels": labels,
    }
    if config_from:
        body["ConfigFrom"] = {"Network": config_from}
    return body


def body_from_flags(
    name: str,
    *,
    attachable: bool,
    aux_address: Sequence[str],
    config_from: str,
    config_only: bool,
    driver: str,
    gateway: Sequence[str],
    ingress: bool,
    internal: bool,
    ip_range: Sequence[str],
    ipam_driver: str,
    ipam_opt: Sequence[str],
    ipv6: bool,
    label: Sequence[str],
    opt: Sequence[str],
    scope: str,
    subnet: Sequence[str],
) -> dict[str, Any]:
    """The body of ``network create`` from its flags as given (click's names)."""
    from tether.cli.text import kv_list

    return create_body(
        name,
        driver,
        split_strings(subnet),
        split_strings(gateway),
        split_strings(ip_range),
        kv_list(aux_address),
        internal,
        kv_list(label),
        kv_list(opt),
        attachable,
        ipam_driver,
        kv_list(ipam_opt),
        ipv6,
        scope,
        ingress,
        config_only,
        config_from,
    )
