"""Inspect's view of the identity, privilege and networking run options (issue 16, P1).

Docker shows every ``HostConfig`` field, with its zero value when the request left it out
(docker-py sends only what it sets; the docker CLI sends them all), and ``Config.MacAddress``
only when set (``omitempty``).
"""

from __future__ import annotations

from typing import Any

from tether.engine import runopts

HOST_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("CapAdd", None),
    ("CapDrop", None),
    ("GroupAdd", None),
    ("ExtraHosts", None),
    ("Privileged", False),
    ("ReadonlyRootfs", False),
    ("SecurityOpt", None),
)


def host_config_defaults(hc: dict[str, Any]) -> None:
    for key, default in HOST_DEFAULTS:
        hc.setdefault(key, default)
    if not hc.get("Sysctls"):
        hc.pop("Sysctls", None)


def config_defaults(cfg: dict[str, Any]) -> None:
    if not cfg.get("MacAddress"):
        cfg.pop("MacAddress", None)


def apparmor_profile(hc: dict[str, Any]) -> str:
    """``AppArmorProfile``: ``unconfined`` when the request said so (tether applies none)."""
    return runopts.parse_security_opt(hc.get("SecurityOpt")).apparmor
