"""The netlink work of a container's endpoint and of a network's bridge, timed alone.

    sudo unshare --net --mount env PYTHONPATH=$PWD/src .venv/bin/python -m bench.endpoint_micro

In the namespace ``unshare`` gives this process (nothing of the machine is touched): a bridge,
then 30 times a sandbox namespace with ``lo`` up and an endpoint joined (``loopback_up`` +
``add_veth``: the veth, its bridge port, the peer's addresses, up and default route), and
30 more bridges (``ensure_bridge`` with an address). Prints the medians. Run it with another
tree's ``src`` on ``PYTHONPATH`` to compare (issue 21: pyroute2 against raw netlink).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tether.linux.netlink import LinkSpec, PyrouteNetlink
from tether.linux.netns import NetnsDir


async def measure(n: int) -> tuple[list[float], list[float]]:
    d = NetnsDir(Path(tempfile.mkdtemp(prefix="tether-micro-")) / "ns")
    nl = PyrouteNetlink()
    bridges: list[float] = []
    endpoints: list[float] = []
    try:
        await nl.ensure_bridge("mbr0", "10.88.0.1/16", 1500)
        for i in range(n):
            t0 = time.perf_counter()
            await nl.ensure_bridge(f"mbr{i + 1}", f"10.{100 + i}.0.1/16", 1500)
            bridges.append((time.perf_counter() - t0) * 1e3)
            path = await d.create(f"s{i}")
            mac = f"02:42:0a:58:{i // 256:02x}:{i % 256:02x}"
            ip = f"10.88.{1 + i // 250}.{1 + i % 250}/16"
            spec = LinkSpec(path, "eth0", mac, ip, "10.88.0.1")
            t0 = time.perf_counter()
            await nl.loopback_up(path)
            await nl.add_veth(f"mvx{i}", "mbr0", spec)
            endpoints.append((time.perf_counter() - t0) * 1e3)
    finally:
        for name in d.list():
            d.delete(name)
        await nl.close()
    return endpoints, bridges


def main() -> int:
    if os.geteuid() != 0:
        print("endpoint_micro: needs root (and unshare --net --mount)", file=sys.stderr)
        return 2
    if os.readlink("/proc/self/ns/net") == os.readlink(f"/proc/{os.getppid()}/ns/net"):
        print("endpoint_micro: run it under `unshare --net --mount`", file=sys.stderr)
        return 2
    eps, brs = asyncio.run(measure(30))
    print(f"lo + add_veth: median {statistics.median(eps):.2f} ms (min {min(eps):.2f}); "
          f"ensure_bridge: median {statistics.median(brs):.2f} ms (min {min(brs):.2f}); "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
