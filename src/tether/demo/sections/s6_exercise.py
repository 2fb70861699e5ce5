"""Section 6: the note's class exercise.

oldboyedu-linux77 (172.30.1.0/24, gateway .254) holds the container oldboyedu-network; it is
then connected to oldboyedu-linux78 (172.31.100.0/24) too, inspected, and the networks are
removed. 172.30.1.0/24 lies inside section 5's overlay (172.30.0.0/16), and containers on both
would have two routes for the same addresses; so the section runs after that overlay has been
removed (section 5 removes it and checks it is gone from both hosts). If the overlay is still
there, the section says so first, since ``Pool overlaps ...`` would then be the expected answer.
"""

from __future__ import annotations

from tether.demo.expect import fails, ok
from tether.demo.sections.base import HEX64, Ctx, remove_containers, remove_networks

N77, N78, C = "oldboyedu-linux77", "oldboyedu-linux78", "oldboyedu-network"
NETS = "'{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}'"
BOTH = rf"^{N77}=172\.30\.1\.\d+ {N78}=172\.31\.100\.\d+ $"
LEGS = (r"inet 172\.30\.1\.\d+/24 .*eth0", r"inet 172\.31\.100\.\d+/24 .*eth1")


def run(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    left = r.quiet(h, "network ls --format '{{.Name}}'")
    if "oldboyedu_overlay" in left.stdout:
        r.note("section 5's overlay (172.30.0.0/16) is still there: 172.30.1.0/24 overlaps it")
    try:
        r.docker(
            h,
            f"network create -d bridge --subnet 172.30.1.0/24 --gateway 172.30.1.254 {N77}",
            ok(regex=HEX64),
            critical=True,
        )
        r.docker(h, f"run -itd --name {C} --network {N77} alpine", critical=True)
        r.docker(
            h,
            f"network create --subnet 172.31.100.0/24 --gateway 172.31.100.254 {N78}",
            ok(regex=HEX64),
        )
        r.docker(h, f"network connect {N78} {C}")
        r.docker(h, f"inspect -f {NETS} {C}", ok(regex=BOTH))
        r.docker(h, f"exec {C} ip -4 addr", ok(regex=LEGS))
        r.docker(
            h,
            f"network inspect {N78}",
            ok('"Subnet": "172.31.100.0/24"', '"Gateway": "172.31.100.254"', f'"Name": "{C}"'),
        )
        r.docker(h, f"exec {C} ping -c1 -W1 172.31.100.254", ok("1 packets received"))
        r.note("a network with a container on it cannot be removed")
        r.docker(h, f"network rm {N77}", fails("has active endpoints"))
        r.docker(h, f"network disconnect {N78} {C}")
        r.docker(h, f"rm -f {C}", ok(C))
        r.docker(h, f"network rm {N77} {N78}", ok(N77, N78))
        r.docker(h, "network ls", ok(lacks=("oldboyedu-linux",)))
    finally:
        remove_containers(ctx, h, C)
        remove_networks(ctx, h, N77, N78)
