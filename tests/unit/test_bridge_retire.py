"""A removed network's bridge: its name free at once, the kernel object deleted after."""

from __future__ import annotations

import asyncio

from tether.contracts.model import Network
from tether.drivers.bridge import BridgeDriver
from tether.errors import Internal
from tether.testing.netlink import FakeNetlink


def _net(nid: str = "ab" * 32) -> Network:
    return Network(id=nid, name="n1", driver="bridge", scope="local", created="")


def test_delete_retires_then_reaps() -> None:
    async def go() -> None:
        nl = FakeNetlink()
        drv = BridgeDriver(nl)
        net = _net()
        await drv.create(net)
        assert "tbr-abababababa" in nl.links
        await drv.delete(net)
        # the name is free at once (a network made now may take it), the bridge is down
        assert "tbr-abababababa" not in nl.links
        assert nl.links["tbx-abababababa"].info["down"]
        await drv.close()  # the deletion under way finishes
        assert "tbx-abababababa" not in nl.links
        assert ("delete_link", "tbx-abababababa", None) in nl.calls

    asyncio.run(go())


def test_delete_in_line_when_the_rename_fails() -> None:
    class NoRename(FakeNetlink):
        async def retire_link(self, name: str, new_name: str) -> bool:
            raise Internal("cannot retire link")

    async def go() -> None:
        nl = NoRename()
        drv = BridgeDriver(nl)
        net = _net()
        await drv.create(net)
        await drv.delete(net)
        assert not [n for n in nl.links if n.startswith(("tbr-", "tbx-"))]

    asyncio.run(go())


def test_restore_reaps_bridges_left_retired() -> None:
    async def go() -> None:
        nl = FakeNetlink()
        await nl.ensure_bridge("tbx-0123456789a", None, 1500)
        drv = BridgeDriver(nl)
        await drv.restore(_net())
        await drv.close()
        assert "tbx-0123456789a" not in nl.links and "tbr-abababababa" in nl.links

    asyncio.run(go())
