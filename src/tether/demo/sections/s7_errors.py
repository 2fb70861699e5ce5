"""Section 7: the four error texts the note lists, word for word."""

from __future__ import annotations

from tether.demo.expect import fails, ok
from tether.demo.sections.base import HEX64, Ctx, remove_containers, remove_networks

LINK = r"Cannot link to a non running container: /edb AS /\S+/mysql"


def run(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    try:
        r.note("1/4 linking to a stopped container")
        r.docker(h, "run -itd --name edb alpine")
        r.docker(h, "stop -t 0 edb", ok("edb"))
        r.docker(h, "run --rm --link edb:mysql alpine true", fails(regex=LINK))

        r.note("2/4 a subnet inside an existing network's subnet")
        r.docker(h, "network create --subnet 10.77.0.0/16 enet", ok(regex=HEX64))
        r.docker(
            h,
            "network create --subnet 10.77.1.0/24 enet2",
            fails("Pool overlaps with other one on this address space"),
        )

        r.note("3/4 a network name that is taken")
        r.docker(
            h,
            "network create --subnet 10.78.0.0/16 enet",
            fails("network with name enet already exists"),
        )

        r.note("4/4 a second endpoint with the same name in one network")
        r.docker(h, "run -itd --name e1 --network enet alpine")
        r.docker(
            h,
            "network connect enet e1",
            fails("endpoint with name e1 already exists in network enet"),
        )
    finally:
        remove_containers(ctx, h, "edb", "e1")
        remove_networks(ctx, h, "enet", "enet2")
