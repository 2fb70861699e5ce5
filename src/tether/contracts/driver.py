"""The driver contract: what a network type does in the kernel.

A driver makes a network's kernel objects (``create``/``delete``, and
``restore`` to re-make them after a reboot or someone else's cleanup) and wires
an endpoint into a sandbox namespace (``join``/``leave``). Drivers never touch
the store: the network controller owns state, drivers own kernel objects.

What the container engine would otherwise decide by a driver's name, the driver says
itself, as class attributes:

* ``extra_interfaces``: interfaces a join adds in the sandbox after the endpoint's own
  ``eth<n>`` on a network that is not internal (overlay: the gateway ``eth<n+1>``), so the
  next endpoint's name skips them;
* ``publishes_ports``: a container's published ports are forwarded (DNAT) to its address on
  this network's ``ifname`` (bridge);
* ``restores_endpoints``: an endpoint's host side is the veth ``veth_name(ep)``; at start-up
  the engine joins again a live container's endpoint whose veth is gone and deletes the
  veth of a container that is not running (bridge);
* ``sandbox_mode``: ``""`` for a network containers join; ``"host"`` when a container on it
  shares the host's namespace, ``"none"`` when it gets a namespace with no interface (the
  ``host`` and ``none`` networks: never joined, connected or disconnected).
"""

from __future__ import annotations

from typing import Protocol

from tether.contracts.model import Endpoint, Network


def veth_name(ep: Endpoint) -> str:
    """The host-side name of an endpoint's veth (drivers with ``restores_endpoints``)."""
    return "tv" + ep.id[:13]


class Driver(Protocol):
    name: str
    scope: str
    extra_interfaces: int
    publishes_ports: bool
    restores_endpoints: bool
    sandbox_mode: str

    def validate(self, net: Network) -> None: ...

    async def create(self, net: Network) -> None: ...

    async def delete(self, net: Network) -> None: ...

    async def restore(self, net: Network) -> None: ...

    async def join(self, net: Network, ep: Endpoint, ns_path: str) -> None: ...

    async def leave(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        """Undo ``join``. ``ns_path`` is the sandbox's namespace when it lives on (disconnect,
        a failed connect), "" when the sandbox is being torn down with everything in it."""
        ...

    def owned_links(self, net: Network) -> set[str]: ...
