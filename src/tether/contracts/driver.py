"""The driver contract: what a network type does in the kernel.

A driver makes a network's kernel objects (``create``/``delete``, and
``restore`` to re-make them after a reboot or someone else's cleanup) and wires
an endpoint into a sandbox namespace (``join``/``leave``). Drivers never touch
the store: the network controller owns state, drivers own kernel objects.
"""

from __future__ import annotations

from typing import Protocol

from tether.contracts.model import Endpoint, Network


class Driver(Protocol):
    name: str
    scope: str

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
