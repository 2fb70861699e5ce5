"""The bundle step's contract between the engine and the runtime.

The engine decides what a container's OCI spec says (``BundleSpec``); a ``Bundles`` of the
runtime writes it as a bundle (``tether.runtime.bundle.OciBundles``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tether.errors import BadRequest

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


# ---- P3 (issue 16): resources and namespaces -------------------------------------------
@dataclass(frozen=True)
class ResourceSpec:
    """A container's cgroup limits, as the engine decided them (Docker's HostConfig resources
    after its checks). 0 (or None) means "not set": runc leaves that control alone, which is
    also what ``runc update`` does with it. ``memory_swap`` -1 is unlimited swap;
    ``pids_limit`` -1 is unlimited."""

    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    blkio_weight: int = 0


@dataclass(frozen=True)
class NamespaceSpec:
    """The process-level settings of issue 16's P3 part.

    ``pid``/``ipc``/``uts``: "" a namespace of its own, "host" the host's, or a path
    (``/proc/<pid>/ns/pid``) to join. ``shm``: "" a private /dev/shm tmpfs of ``shm_size``
    bytes, "none" no /dev/shm, or a host path bind-mounted there (``/dev/shm`` for the host's,
    ``/proc/<pid>/root/dev/shm`` for another container's). ``cgroup_ns``: a cgroup namespace
    of its own. ``rlimits``: (``RLIMIT_NOFILE``, soft, hard). ``init``: the runtime's init
    (tini) as PID 1 in front of the command.
    """

    pid: str = ""
    ipc: str = ""
    uts: str = ""
    shm: str = ""
    shm_size: int = 64 * 1024 * 1024
    cgroup_ns: bool = False
    rlimits: tuple[tuple[str, int, int], ...] = ()
    oom_score_adj: int | None = None
    init: bool = False


@dataclass(frozen=True)
class MountSpec:
    """One mount of the container's own (a volume, a bind, a tmpfs), as the OCI spec has it:
    ``kind`` is ``bind`` or ``tmpfs``; ``options`` are the mount's (``rbind``, ``ro``,
    ``rprivate``, ``size=64m``...)."""

    destination: str
    kind: str
    source: str
    options: tuple[str, ...] = ()


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
    # P3 (issue 16): cgroup limits and namespaces/process settings
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    namespaces: NamespaceSpec = field(default_factory=NamespaceSpec)
    # mounts and volumes (issue 16, P2): the container's own mounts, Docker's order
    mounts: tuple[MountSpec, ...] = ()
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
    # --device-cgroup-rule (issue 17): "TYPE MAJOR:MINOR ACCESS" lines, checked at create
    device_cgroup_rules: tuple[str, ...] = ()


_DEVICE_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def device_cgroup_rule(text: str) -> dict[str, Any]:
    """One ``DeviceCgroupRules`` entry (``c 7:128 rwm``) as an OCI device-cgroup allow rule
    (``*`` leaves the major or minor out: any), with Docker's text for a malformed one."""
    m = _DEVICE_RULE.match(text)
    if m is None:
        raise BadRequest(f"invalid device cgroup rule format: '{text}'")
    rule: dict[str, Any] = {"allow": True, "type": m.group(1), "access": m.group(4)}
    if m.group(2) != "*":
        rule["major"] = int(m.group(2))
    if m.group(3) != "*":
        rule["minor"] = int(m.group(3))
    return rule


class Bundles(Protocol):
    """Writes a container's OCI bundle (``config.json``) into ``bundle``."""

    def write_bundle(self, bundle: Path, spec: BundleSpec) -> None: ...
