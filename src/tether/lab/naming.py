"""Names, paths and addresses of lab objects.

Every network namespace a lab creates is called ``tlab-<lab>-<host>`` (``tlab-<lab>-ul`` for the
underlay), so lab objects are recognisable at a glance; they are still tracked by the state file
and never removed by pattern alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tether.lab.errors import LabError

NETNS_PREFIX = "tlab-"
UNDERLAY_SUFFIX = "ul"
UNDERLAY_BRIDGE = "br0"
HOST_IFNAME = "eth0"

#: Underlay subnet of every lab (inside 198.18.0.0/15, reserved for benchmarks).
UNDERLAY_NET = "198.18.0"
UNDERLAY_PREFIXLEN = 24
GATEWAY_ADDRESS = f"{UNDERLAY_NET}.1"
ETCD_ADDRESS = f"{UNDERLAY_NET}.2"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
FIRST_HOST_INDEX = 11
LAST_HOST_INDEX = 250

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the trailing NUL

_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_RESERVED_HOSTS = frozenset({UNDERLAY_SUFFIX, "etcd"})


def lab_root() -> Path:
    """Folder holding every lab's state file and working folder."""
    return Path(os.environ.get("TETHER_LAB_ROOT", "/run/tether-lab"))


def check_lab_name(name: str) -> str:
    if not _LAB_NAME.match(name):
        raise LabError(
            f"invalid lab name {name!r}: use 1-16 lowercase letters and digits, "
            "starting with a letter"
        )
    return name


def check_host_name(name: str) -> str:
    if not _HOST_NAME.match(name) or name in _RESERVED_HOSTS:
        raise LabError(
            f"invalid host name {name!r}: use 1-20 lowercase letters, digits and '-', "
            f"starting with a letter (not {', '.join(sorted(_RESERVED_HOSTS))})"
        )
    return name


def host_netns(lab: str, host: str) -> str:
    return f"{NETNS_PREFIX}{lab}-{host}"


def underlay_netns(lab: str) -> str:
    return f"{NETNS_PREFIX}{lab}-{UNDERLAY_SUFFIX}"


def host_address(index: int) -> str:
    return f"{UNDERLAY_NET}.{index}"


def underlay_ifname(index: int) -> str:
    """Name of a host's veth end on the underlay bridge (inside the underlay netns)."""
    return f"h{index}"


def state_file(lab: str) -> Path:
    return lab_root() / f"{lab}.json"


def lab_dir(lab: str) -> Path:
    return lab_root() / lab


def host_dir(lab: str, host: str) -> Path:
    return lab_dir(lab) / host


def netns_path(netns: str) -> str:
    return f"/run/netns/{netns}"
