"""Kernel settings under /proc/sys that tether's networking needs, plus a fake.

Keys are paths below /proc/sys with ``/`` separators
(``net/ipv4/conf/br-1/route_localnet``), never dotted names: interface names
may contain dots. /proc/sys/net is per network namespace, so the values are
those of the namespace the daemon runs in.

- ``enable_ip_forward``: routing between bridges and the uplink (as Docker does).
- ``set_route_localnet(bridge)``: published ports reached on 127.0.0.1 leave
  through the bridge with a loopback source (masqueraded on the way out) and
  their replies come back to 127.0.0.1 through it; without this setting the
  kernel drops both as martians. The firewall's input chain drops new traffic
  from any tether bridge to 127.0.0.0/8, so containers cannot use the setting
  to reach host services bound to loopback (CVE-2020-8558).
- ``disable_ipv6(ifname)``: IPv4-only endpoints carry no IPv6 (``nsthread._make_netns``).
- ``enable_ipv6_forward``: routing IPv6 between dual-stack bridges and the uplink, set only
  once a dual-stack network exists.
- bridge-nf (br_netfilter): tether neither needs nor changes it. Its
  ``bridge-nf-call-iptables`` may be 1 (built in here) or 0; the firewall
  works either way (``bridge_nf_call_iptables`` reads it for diagnostics).
"""

from __future__ import annotations

import os
from typing import Protocol

from tether.errors import Internal, NotFound

PROC_SYS = "/proc/sys"


class Sysctl(Protocol):
    def get(self, key: str) -> str:
        """The value (stripped); ``NotFound`` when the key does not exist."""
        ...

    def set(self, key: str, value: str) -> None:
        """Write the value; ``NotFound`` when the key does not exist."""
        ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise Internal(f"sysctl: invalid key {key!r}")
    return key


class ProcSysctl:
    """Reads and writes /proc/sys (root for writes)."""

    def __init__(self, root: str = PROC_SYS) -> None:
        self._root = root

    def _path(self, key: str) -> str:
        return os.path.join(self._root, _check_key(key))

    def get(self, key: str) -> str:
        try:
            with open(self._path(key)) as f:
                return f.read().strip()
        except FileNotFoundError:
            raise NotFound(f"sysctl {key} does not exist") from None
        except OSError as exc:
            raise Internal(f"sysctl: cannot read {key}: {exc.strerror}") from exc

    def set(self, key: str, value: str) -> None:
        try:
            with open(self._path(key), "w") as f:
                f.write(value)
        except FileNotFoundError:
            raise NotFound(f"sysctl {key} does not exist") from None
        except OSError as exc:
            raise Internal(f"sysctl: cannot set {key}={value}: {exc.strerror}") from exc


IP_FORWARD = "net/ipv4/ip_forward"
IPV6_FORWARD = "net/ipv6/conf/all/forwarding"
BRIDGE_NF_CALL_IPTABLES = "net/bridge/bridge-nf-call-iptables"


def _conf_key(family: str, ifname: str, name: str) -> str:
    if not ifname or "/" in ifname or ifname in (".", "..") or len(ifname) > 15:
        raise Internal(f"sysctl: invalid interface name {ifname!r}")
    return f"net/{family}/conf/{ifname}/{name}"


def route_localnet_key(ifname: str) -> str:
    return _conf_key("ipv4", ifname, "route_localnet")


def _ensure(s: Sysctl, key: str, value: str) -> bool:
    """Set only when different; True when it wrote."""
    if s.get(key) == value:
        return False
    s.set(key, value)
    return True


def enable_ip_forward(s: Sysctl) -> bool:
    """net.ipv4.ip_forward = 1; True when it changed."""
    return _ensure(s, IP_FORWARD, "1")


def enable_ipv6_forward(s: Sysctl) -> bool:
    """net.ipv6.conf.all.forwarding = 1, made when the first dual-stack network is (as
    Docker does with IPv6 networks). It has a cost on the host: interfaces stop taking router
    advertisements unless their ``accept_ra`` is 2, which is why tether sets it only then."""
    return _ensure(s, IPV6_FORWARD, "1")


def set_route_localnet(s: Sysctl, bridge: str) -> bool:
    """net.ipv4.conf.<bridge>.route_localnet = 1; True when it changed."""
    return _ensure(s, route_localnet_key(bridge), "1")


def disable_ipv6(s: Sysctl, ifname: str) -> bool:
    """net.ipv6.conf.<ifname>.disable_ipv6 = 1 (``default``: interfaces made later in this
    namespace); best effort, False when the kernel has no IPv6 or /proc/sys cannot be written
    (the interface keeps IPv6). tether's networks are IPv4-only: see ``nsthread._make_netns``."""
    key = _conf_key("ipv6", ifname, "disable_ipv6")
    try:
        s.set(key, "1")
    except (NotFound, Internal):
        return False
    return True


def bridge_nf_call_iptables(s: Sysctl) -> bool | None:
    """Whether bridged IPv4 goes through the IP hooks; None without br_netfilter."""
    try:
        return s.get(BRIDGE_NF_CALL_IPTABLES) == "1"
    except NotFound:
        return None
