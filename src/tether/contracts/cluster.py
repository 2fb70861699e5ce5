"""The cluster contract: what the overlay driver and the cluster view (engine) share.

The overlay driver owns kernel objects; the cluster view owns the records in the
cluster store. Neither holds the other's object: the composition root
(``tether.daemon``) builds, in this order, the endpoint book (remote endpoints and
this host's records: a :class:`PeerSource` and an :class:`EndpointPublisher`), the
:class:`Gateway` and the :class:`Spaces`, then the driver with those, then the view
with the driver (an :class:`OverlayDataPath`), and last the network controller with
the view (its :class:`GlobalNetworks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tether.contracts.model import OPT_VXLANID, Endpoint, Network
from tether.errors import BadRequest

VNI_MIN = 4096
VNI_MAX = (1 << 24) - 1


def requested_vni(net: Network) -> int | None:
    """The VNI asked for with ``-o com.docker.network.driver.overlay.vxlanid_list=N`` (the
    first of the list: one VNI per network here), or None; Docker's text for a bad one."""
    raw = net.options.get(OPT_VXLANID)
    if not raw:
        return None
    first = raw.split(",")[0]
    try:
        vni = int(first)
    except ValueError:
        raise BadRequest(f'invalid vxlan id value "{first}" passed') from None
    if not 0 < vni <= VNI_MAX:
        raise BadRequest(f"vxlan id {vni} is out of range (1-{VNI_MAX})")
    return vni


@dataclass(frozen=True)
class Peer:
    """A remote endpoint as the data path needs it."""

    endpoint_id: str
    ip: str
    mac: str
    vtep: str
    ip6: str = ""  # on a dual-stack network (issue 18)


class PeerSource(Protocol):
    """The remote endpoints of a network known now (read by the driver when it wires)."""

    def __call__(self, net_id: str) -> list[Peer]: ...


class EndpointPublisher(Protocol):
    """Write (``present``) or remove this host's record of a local endpoint."""

    async def __call__(self, net: Network, ep: Endpoint, present: bool) -> None: ...


class Gateway(Protocol):
    """The per-host gateway bridge: an overlay endpoint's ``eth<n+1>`` with the default route."""

    async def attach(self, ep: Endpoint, ns_path: str) -> None: ...

    async def detach(self, ep: Endpoint) -> None: ...


class Spaces(Protocol):
    """Where each overlay network's bridge and VXLAN device live (one namespace each)."""

    async def ensure(self, net_id: str) -> str:
        """The network's namespace (a path), made if missing."""
        ...

    def delete(self, net_id: str) -> None: ...

    def list(self) -> list[str]:
        """Short ids (12 hex) of the networks that have one."""
        ...


class OverlayDataPath(Protocol):
    """What the cluster view asks of the overlay driver (from its watch and at start)."""

    async def peer_changed(self, net: Network, peer: Peer, present: bool) -> None: ...

    async def peers_changed(self, net: Network, changes: Mapping[str, Peer | None]) -> None:
        """A batch of remote endpoints: endpoint id -> the peer now (None: gone)."""
        ...

    def wired(self, net_id: str) -> bool:
        """Whether the network has a local endpoint here (its data path is wired)."""
        ...

    async def resync(self, net: Network) -> None: ...

    async def delete(self, net: Network) -> None: ...

    async def adopt(self, net: Network, ep: Endpoint) -> None: ...

    async def sweep(self) -> None: ...


class RemoteEndpoints(Protocol):
    """Endpoints of other hosts on a global network (what the embedded DNS answers with)."""

    def remote_endpoints(self, net_id: str) -> list[dict[str, Any]]: ...


class GlobalNetworks(Protocol):
    """What the network controller asks of the cluster view for global networks."""

    async def start(self) -> None: ...

    async def create_network(self, net: Network) -> None: ...

    async def remove_network(self, net: Network) -> None: ...

    async def claim_ip(self, net_id: str, ip: str, container: str) -> bool: ...

    async def release_ip(self, net_id: str, ip: str) -> None: ...

    def is_global(self, net_id: str) -> bool: ...
