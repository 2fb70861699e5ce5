"""The bundle step's contract between the engine and the runtime.

The engine decides what a container's OCI spec says (``BundleSpec``); a ``Bundles`` of the
runtime writes it as a bundle (``tether.runtime.bundle.OciBundles``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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
    # mounts and volumes (issue 16, P2): the container's own mounts, Docker's order
    mounts: tuple[MountSpec, ...] = ()


class Bundles(Protocol):
    """Writes a container's OCI bundle (``config.json``) into ``bundle``."""

    def write_bundle(self, bundle: Path, spec: BundleSpec) -> None: ...
