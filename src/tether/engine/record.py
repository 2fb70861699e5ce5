"""The container record as the store keeps it (``containers/<id>``), and its small parsers.

``Container`` and ``State`` are what inspect shows; the restart policy, signal and network
mode parsers are Docker's rules and texts.
"""

from __future__ import annotations

import builtins
import datetime as dt
import shlex
import signal as _signal
from dataclasses import asdict, dataclass, field
from typing import Any

from tether.contracts.model import Endpoint
from tether.errors import BadRequest

ZERO_TIME = "0001-01-01T00:00:00Z"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class State:
    status: str = "created"  # created | running | restarting | exited | removing | dead
    pid: int = 0
    exit_code: int = 0
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    error: str = ""
    paused: bool = False  # frozen (``docker pause``): still "running" underneath
    health: dict[str, Any] | None = None  # State.Health (tether.engine.health)


@dataclass
class Container:
    id: str
    name: str
    created: str
    image: str
    image_id: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    network_mode: str
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # by network id
    ports: builtins.list[dict[str, Any]] = field(default_factory=list)  # PortBinding dicts
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False
    links: builtins.list[list[str]] = field(default_factory=list)  # [target id, alias]
    path: str = ""
    args: builtins.list[str] = field(default_factory=list)
    rootfs: str = ""
    # mounts and volumes (issue 16, P2): mount points, tether.engine.mounts
    mounts: builtins.list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Container:
        d = dict(d)
        d["state"] = State(**d.get("state", {}))
        return cls(**d)

    @property
    def running(self) -> bool:
        return self.state.status in ("running",)

    @property
    def status(self) -> str:
        """Docker's StateString: ``paused`` for a frozen running container."""
        return "paused" if self.state.paused and self.running else self.state.status

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def eps(self) -> builtins.list[Endpoint]:
        return [Endpoint.from_dict(e) for e in self.endpoints.values()]

    @property
    def restart_policy(self) -> dict[str, Any]:
        rp = self.host_config.get("RestartPolicy") or {}
        return {
            "Name": rp.get("Name") or "no",
            "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0),
        }


def parse_restart(rp: Any) -> dict[str, Any]:
    if rp is None:
        return {"Name": "no", "MaximumRetryCount": 0}
    if not isinstance(rp, dict):
        raise BadRequest("RestartPolicy must be an object")
    name = rp.get("Name") or "no"
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise BadRequest(f"invalid restart policy '{name}'")
    count = rp.get("MaximumRetryCount") or 0
    if not isinstance(count, int):
        raise BadRequest("maximum retry count must be an integer")
    # Docker 20.10's validateRestartPolicy, in its order and words
    if count and name != "on-failure":
        raise BadRequest(f"maximum retry count cannot be used with restart policy '{name}'")
    if count < 0:
        raise BadRequest("maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": count}


def network_mode(host_config: dict[str, Any]) -> tuple[str, str]:
    """``(kind, target)``: kind is network | host | none | container."""
    mode = host_config.get("NetworkMode") or "default"
    if not isinstance(mode, str):
        raise BadRequest("NetworkMode must be a string")
    if mode == "default":
        return "network", "bridge"
    if mode in ("host", "none"):
        return mode, mode
    if mode.startswith("container:"):
        return "container", mode.split(":", 1)[1]
    return "network", mode


def parse_signal(name: str | int) -> int:
    if isinstance(name, int):
        return name
    s = str(name).strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(_signal, s))
    except AttributeError:
        raise BadRequest(f"Invalid signal: {name}") from None


def command_text(c: Container) -> str:
    return shlex.join(c.config.get("_argv") or [])
