"""Section 2: the single-host network types.

bridge (the default), host (the host's own stack), none (loopback only), container:NAME (a
shared namespace, like a pod), and user-defined bridges with --subnet/--gateway and
--ip-range (172.26.1.100/28 hands out 172.26.1.96 first: the range is the /28 holding .100).
"""

from __future__ import annotations

from tether.demo.expect import fails, ok
from tether.demo.sections.base import HEX64, Ctx, ip_of, remove_containers, remove_networks

IP_GW = "'{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}'"
PREDEFINED = (
    r"^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$",
    r"\sbridge\s+bridge\s+local$",
    r"\shost\s+host\s+local$",
    r"\snone\s+null\s+local$",
)
HOST_PORTS = "Published ports are discarded when using host network mode"


def run(ctx: Ctx) -> None:
    h = ctx.h1
    try:
        _builtin_types(ctx)
        _user_defined(ctx)
    finally:
        remove_containers(ctx, h, "b1", "s1", "r1")
        remove_networks(ctx, h, "oldboyedu2021", "jasonyin2020")


def _builtin_types(ctx: Ctx) -> None:
    """bridge, host, none and container:NAME."""
    r, h = ctx.r, ctx.h1
    r.docker(h, "network ls", ok(regex=PREDEFINED))

    r.note("bridge: the default; NAT to the outside through the host")
    r.docker(h, "run -itd --name b1 alpine")
    b1 = ip_of(ctx, h, "b1")
    r.docker(h, "exec b1 ip -4 addr show eth0", ok(regex=r"inet 172\.17\.\d+\.\d+/16"))
    r.docker(h, "exec b1 ip route", ok(regex=r"^default via 172\.17\.0\.1"))
    r.docker(h, "inspect --format '{{.NetworkSettings.Networks}}' b1", ok(regex=r"^map\[bridge:"))

    r.note(f"host: the host's own interfaces (eth0 has {h}'s lab address)")
    addr = ctx.addresses.get(h, "198.18.0.")
    r.docker(h, "run --rm --network host alpine ip -4 addr show eth0", ok(f"inet {addr}/"))
    r.docker(h, "run --rm --network host -p 9999:80 alpine true", ok(HOST_PORTS))

    r.note("none: loopback only")
    r.docker(h, "run --rm --network none alpine ip -o link", ok("lo:", lacks=("eth0",)))

    r.note("container:NAME: b1's network namespace, shared")
    r.docker(h, "run --rm --network container:b1 alpine ip -4 addr", ok(f"inet {b1}/"))


def _user_defined(ctx: Ctx) -> None:
    """User-defined bridges: --subnet/--gateway/--ip, --ip-range, and their DNS."""
    r, h = ctx.r, ctx.h1
    r.note("user-defined: subnet and gateway, and a static --ip")
    r.docker(
        h,
        "network create -d bridge --subnet 172.28.0.0/16 --gateway 172.28.0.254 jasonyin2020",
        ok(regex=HEX64),
    )
    r.docker(h, "run -itd --name s1 --network jasonyin2020 --ip 172.28.0.100 alpine")
    r.docker(h, f"inspect -f {IP_GW} s1", ok(regex=r"^172\.28\.0\.100 172\.28\.0\.254$"))

    r.note("--ip-range: addresses come from 172.26.1.96/28 (the block holding .100)")
    r.docker(
        h,
        "network create -d bridge --gateway 172.26.1.254 --subnet 172.26.1.0/24"
        " --ip-range 172.26.1.100/28 oldboyedu2021",
        ok(regex=HEX64),
    )
    r.docker(h, "container run -itd --network oldboyedu2021 --name r1 alpine")
    r.docker(h, f"inspect -f {IP_GW} r1", ok(regex=r"^172\.26\.1\.96 172\.26\.1\.254$"))
    r.docker(
        h,
        "network inspect oldboyedu2021",
        ok(
            '"Subnet": "172.26.1.0/24"',
            '"IPRange": "172.26.1.100/28"',
            '"Gateway": "172.26.1.254"',
            '"Name": "r1"',
        ),
    )
    r.docker(
        h,
        "network ls",
        ok(regex=(r"\sjasonyin2020\s+bridge\s+local$", r"\soldboyedu2021\s+bridge\s+local$")),
    )
    r.docker(
        h,
        "container inspect --format='{{.NetworkSettings.Networks}}' r1",
        ok(regex=r"^map\[oldboyedu2021:"),
    )
    r.note("names resolve on a user-defined network (embedded DNS at 127.0.0.11)")
    r.docker(
        h,
        "run --rm --network oldboyedu2021 alpine ping -c1 -W1 r1",
        ok("172.26.1.96", "1 packets received"),
    )
    r.note("... and not on the default bridge")
    r.docker(h, "run --rm --network bridge alpine ping -c1 -W1 b1", fails("bad address 'b1'"))
