"""Section 5: an overlay (VXLAN) network through the lab's etcd.

Created on docker201 only, it is listed on docker202 (global scope: the definition lives in
etcd). One container on each host: they ping each other by address and by name, and each has
eth0 on the overlay plus eth1 (on a local gateway bridge) for the outside. The overlay is
removed at the end, so that section 6's 172.30.1.0/24 does not overlap 172.30.0.0/16.
"""

from __future__ import annotations

from tether.demo.expect import ok
from tether.demo.sections.base import HEX64, Ctx, ip_of, remove_containers

NET = "oldboyedu_overlay"
LISTED = rf"\s{NET}\s+overlay\s+global$"
IP = "'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'"
OVERLAY_IP = ok(regex=r"^172\.30\.\d+\.\d+$")
TWO_LEGS = (r"eth0.*\n(\s+.*\n)*?\s+inet 172\.30\.", r"^\d+: eth1")
ONE_REPLY = ok("1 packets received")


def run(ctx: Ctx) -> None:
    r, h1, h2 = ctx.r, ctx.h1, ctx.h2
    created = False
    try:
        create = f"network create -d overlay --subnet 172.30.0.0/16 --gateway 172.30.0.254 {NET}"
        r.docker(h1, create, ok(regex=HEX64), critical=True)
        created = True
        r.note(f"created on {h1}, seen on {h2}")
        r.docker(h2, "network ls", ok(regex=LISTED), retry_for=10, critical=True)
        r.docker(
            h2,
            f"network inspect -f '{{{{.Scope}}}} {{{{.Driver}}}}' {NET}",
            ok(regex=r"^global overlay$"),
        )
        r.docker(h1, f"run -itd --name ov1 --network {NET} alpine", critical=True)
        r.docker(h2, f"run -itd --name ov2 --network {NET} alpine", critical=True)
        ip1, ip2 = ip_of(ctx, h1, "ov1", NET), ip_of(ctx, h2, "ov2", NET)
        r.docker(h1, f"inspect -f {IP} ov1", OVERLAY_IP)
        r.docker(h2, f"inspect -f {IP} ov2", OVERLAY_IP)
        r.check(
            f"addresses are unique across hosts ({ip1}, {ip2})",
            bool(ip1) and bool(ip2) and ip1 != ip2,
            f"ov1 {ip1 or '?'}, ov2 {ip2 or '?'}",
        )
        r.note("eth0 on the overlay, eth1 for the outside")
        r.docker(h1, "exec ov1 ip -4 addr", ok(regex=TWO_LEGS))
        r.note("across hosts by address, then by name")
        r.docker(h1, f"exec ov1 ping -c1 -W2 {ip2 or 'ov2-has-no-ip'}", ONE_REPLY, retry_for=6)
        r.docker(h2, f"exec ov2 ping -c1 -W2 {ip1 or 'ov1-has-no-ip'}", ONE_REPLY, retry_for=6)
        r.docker(h1, "exec ov1 ping -c1 -W2 ov2", ONE_REPLY, retry_for=6)
        r.docker(h2, "exec ov2 ping -c1 -W2 ov1", ONE_REPLY, retry_for=6)
    finally:
        remove_containers(ctx, h1, "ov1")
        remove_containers(ctx, h2, "ov2")
        if created:
            r.docker(h1, f"network rm {NET}", ok(NET))
            r.docker(
                h2,
                "network ls",
                ok(lacks=(NET,)),
                retry_for=10,
                title=f"the overlay is gone from {h2} too",
            )
