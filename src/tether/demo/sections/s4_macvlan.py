"""Section 4: macvlan across the two hosts, with static addresses.

The network is created on each host (macvlan is local scope) with ``-o parent=eth0`` (inside
the lab, eth0 is the host's veth on the lab underlay, never the machine's real uplink).
Containers get manual ``--ip`` addresses because automatic assignment could collide between
hosts; a container on docker201 pings one on docker202 through the underlay. A second
container asking for a taken address fails with ``Address already in use``.
"""

from __future__ import annotations

from tether.demo.expect import fails, ok
from tether.demo.sections.base import HEX64, Ctx, remove_containers, remove_networks

NET = "oldboyedu_macvlan"
CREATE = (
    f"network create -d macvlan --subnet=172.29.0.0/16 --gateway=172.29.0.254 -o parent=eth0 {NET}"
)


def run(ctx: Ctx) -> None:
    r, h1, h2 = ctx.r, ctx.h1, ctx.h2
    ip1, ip2 = "172.29.0.201", "172.29.0.202"
    try:
        for h in (h1, h2):
            r.docker(h, CREATE, ok(regex=HEX64), critical=True)
        r.docker(h1, CREATE, fails(f"network with name {NET} already exists"))
        r.docker(h2, "network ls", ok(regex=rf"\s{NET}\s+macvlan\s+local$"))
        r.docker(h1, f"run -itd --name kod --network {NET} --ip {ip1} alpine", critical=True)
        r.docker(h2, f"run -itd --name kod2 --network {NET} --ip {ip2} alpine", critical=True)
        r.docker(h1, "exec kod ip -4 addr show eth0", ok(f"inet {ip1}/16"))
        r.note(f"across hosts, over {h1}'s and {h2}'s eth0")
        r.docker(h1, f"exec kod ping -c1 -W2 {ip2}", ok("1 packets received"), retry_for=4)
        r.docker(h2, f"exec kod2 ping -c1 -W2 {ip1}", ok("1 packets received"), retry_for=4)
        r.note("a static address that is already taken on this host")
        r.docker(
            h1,
            f"run -itd --name kod3 --network {NET} --ip {ip1} alpine",
            fails("Address already in use"),
        )
    finally:
        remove_containers(ctx, h1, "kod", "kod3")
        remove_containers(ctx, h2, "kod2")
        for h in (h1, h2):
            remove_networks(ctx, h, NET)
