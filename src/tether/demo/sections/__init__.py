"""The seed's sections, in order; each is ``run(ctx)`` inside its own runner section."""

from __future__ import annotations

from collections.abc import Callable

from tether.demo.sections import (
    s1_names,
    s2_types,
    s3_zabbix,
    s4_macvlan,
    s5_overlay,
    s6_exercise,
    s7_errors,
)
from tether.demo.sections.base import Ctx

Section = tuple[str, str, Callable[[Ctx], None]]

SECTIONS: list[Section] = [
    ("1", "why names: changing IPs, --link", s1_names.run),
    ("2", "network types: bridge, host, none, container:, user-defined", s2_types.run),
    ("3", "Zabbix-shaped stack by names, published port, restart policies", s3_zabbix.run),
    ("4", "macvlan across docker201 and docker202", s4_macvlan.run),
    ("5", "overlay (VXLAN) with etcd", s5_overlay.run),
    ("6", "class exercise (oldboyedu-linux77/78)", s6_exercise.run),
    ("7", "the four error texts", s7_errors.run),
]

__all__ = ["SECTIONS", "Ctx", "Section"]
