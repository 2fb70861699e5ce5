"""The bundle step's contract between the engine and the runtime.

The engine decides what a container's OCI spec says (``BundleSpec``); a ``Bundles`` of the
runtime writes it as a bundle (``tether.runtime.bundle.OciBundles``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Every capability this kernel knows (up to CAP_CHECKPOINT_RESTORE, cap_last_cap 40), as
# Docker's GetAllCapabilities lists them: ``--cap-add ALL``, ``--privileged``, and the names
# ``--cap-add``/``--cap-drop`` accept.
_CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]  # fmt: skip
ALL_CAPABILITIES: tuple[str, ...] = tuple(f"CAP_{n}" for n in _CAP_NAMES)


@dataclass(frozen=True)
class BundleSpec:
    """What the engine decides about a container's OCI bundle; the runtime writes it."""

    rootfs: str
    args: list[str]
    env: list[str]
    cwd: str
    hostname: str
    terminal: bool
    netns_path: str | None
    hosts_path: str
    resolv_conf_path: str
    hostname_path: str
    cgroups_path: str
    # -- identity, privileges, UTS name and sysctls (issue 16, P1) --
    # ``user``/``group_add`` as sent (``--user``, ``--group-add``), resolved by the runtime
    # against the root's /etc/passwd and /etc/group, read from ``root_layers`` (the
    # overlay's folders, top first; empty: ``rootfs`` is mounted on the host)
    user: str = ""
    group_add: tuple[str, ...] = ()
    root_layers: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    domainname: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)


class Bundles(Protocol):
    """Writes a container's OCI bundle (``config.json``) into ``bundle``."""

    def write_bundle(self, bundle: Path, spec: BundleSpec) -> None: ...
