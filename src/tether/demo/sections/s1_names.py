"""Section 1: why containers find each other by name.

A recreated container gets a new address (another container took the old one meanwhile), so
addresses cannot be configured into peers. ``--link NAME:ALIAS`` writes the linked container's
address, alias, id and name into the new container's /etc/hosts (one-way), and refuses a
linked container that is not running.
"""

from __future__ import annotations

from tether.demo.expect import fails, ok
from tether.demo.sections.base import HEX64, Ctx, ip_of, remove_containers

NAMES = ("web1", "filler", "newcomer", "db", "app")
IP_ONLY = "inspect -f '{{.NetworkSettings.IPAddress}}' web1"
BRIDGE_IP = ok(regex=r"^172\.17\.\d+\.\d+$")
LINK_ERROR = r"Cannot link to a non running container: /db AS /\S+/mysql"


def run(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    try:
        r.note("a container's IP is not fixed: recreate it and it can get another one")
        r.docker(h, "run -itd --name web1 alpine", critical=True)
        r.docker(h, "run -itd --name filler alpine")
        first = ip_of(ctx, h, "web1")
        r.docker(h, IP_ONLY, BRIDGE_IP)
        r.docker(h, "rm -f web1", ok("web1"))
        r.docker(h, "run -itd --name newcomer alpine")
        r.docker(h, "run -itd --name web1 alpine")
        second = ip_of(ctx, h, "web1")
        r.docker(h, IP_ONLY, BRIDGE_IP)
        r.check(
            f"recreated web1 has a new IP ({first} -> {second})",
            bool(first) and bool(second) and first != second,
            f"first {first or '?'}, then {second or '?'}",
        )

        r.note("--link needs a running container")
        r.docker(h, "run -itd --name db alpine")
        r.docker(h, "stop -t 0 db", ok("db"))
        r.docker(h, "run --rm --link db:mysql alpine true", fails(regex=LINK_ERROR))
        r.docker(h, "start db", ok("db"))
        db_ip = ip_of(ctx, h, "db") or "172.17.0.0"
        r.note("the link line in /etc/hosts: IP, alias, id, name")
        r.docker(h, "run -itd --name app --link db:mysql alpine", ok(regex=HEX64))
        link_line = "^" + db_ip.replace(".", r"\.") + r"\s+mysql [0-9a-f]{12} db$"
        r.docker(h, "exec app cat /etc/hosts", ok(regex=link_line))
        r.docker(h, "exec app ping -c1 -W1 mysql", ok("1 packets received"))
        r.note("one-way: db's /etc/hosts does not know app")
        r.docker(h, "exec db cat /etc/hosts", ok(lacks=("app", "mysql")))
    finally:
        remove_containers(ctx, h, *NAMES)
