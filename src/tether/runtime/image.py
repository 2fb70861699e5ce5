"""One image: its config document, tags and size; Docker's time formats; the host's architecture."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CONTAINER_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def now_rfc3339() -> str:
    """Current UTC time in Docker's RFC 3339 form with nanoseconds."""
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Unix time of an RFC 3339 timestamp (nanoseconds allowed); 0.0 when unparsable."""
    if not text:
        return 0.0
    s = text.strip()
    frac = 0.0
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float("0." + digits) if digits else 0.0
        s = head + rest
    try:
        return datetime.fromisoformat(s).timestamp() + frac
    except ValueError:
        return 0.0


def arch() -> str:
    """The host's architecture as Go names it (``amd64``, ``arm64``, ...)."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


@dataclass
class Image:
    """One image: its id, its config document and its tags."""

    id: str  # "sha256:<64 hex>"
    document: dict[str, Any]  # the whole image config JSON (architecture, config, rootfs...)
    repo_tags: list[str] = field(default_factory=list)
    size: int = 0
    last_tag_time: str = ""
    parent: str = ""  # the image a commit was made on (Docker keeps it beside the config)

    @property
    def hex(self) -> str:
        return self.id.split(":", 1)[1]

    @property
    def short_id(self) -> str:
        return self.hex[:12]

    @property
    def config(self) -> dict[str, Any]:
        """The container config of the image (Cmd, Entrypoint, Env, WorkingDir, ...)."""
        cfg = self.document.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def layers(self) -> list[str]:
        """DiffIDs, bottom layer first."""
        rootfs = self.document.get("rootfs") or {}
        return list(rootfs.get("diff_ids") or [])

    @property
    def created(self) -> str:
        return str(self.document.get("created") or "")

    @property
    def cmd(self) -> list[str] | None:
        return self.config.get("Cmd")

    @property
    def entrypoint(self) -> list[str] | None:
        return self.config.get("Entrypoint")

    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    @property
    def working_dir(self) -> str:
        return str(self.config.get("WorkingDir") or "")

    @property
    def exposed_ports(self) -> dict[str, Any]:
        return dict(self.config.get("ExposedPorts") or {})

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def volumes(self) -> dict[str, Any]:
        """The image's ``VOLUME`` paths (each a new anonymous volume per container)."""
        return dict(self.config.get("Volumes") or {})

    @property
    def healthcheck(self) -> dict[str, Any] | None:
        hc = self.config.get("Healthcheck")
        return dict(hc) if isinstance(hc, dict) else None
