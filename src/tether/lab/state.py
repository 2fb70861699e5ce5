"""The lab state file: what a lab created, so that ``lab down`` removes exactly that.

Objects are recorded right after they were created (a create that failed because the name
was taken is never recorded, so a lab never removes what it did not make). The file is
replaced atomically on every change.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tether.lab import naming
from tether.lab.errors import LabError

STATE_VERSION = 1


@dataclass
class ProcInfo:
    """A process the lab started; ``starttime`` (from /proc) guards against pid reuse."""

    pid: int
    starttime: int
    argv: list[str]
    log: str


@dataclass
class HostInfo:
    name: str
    index: int
    netns: str
    address: str
    ul_ifname: str
    dir: str
    daemon: ProcInfo | None = None

    @property
    def data_root(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def exec_root(self) -> str:
        return os.path.join(self.dir, "exec")

    @property
    def socket(self) -> str:
        return os.path.join(self.exec_root, "tether.sock")

    @property
    def config_file(self) -> str:
        """The host daemon's ``--config-file`` (may not exist: then defaults apply)."""
        return os.path.join(self.dir, "daemon.json")

    @property
    def daemon_log(self) -> str:
        return os.path.join(self.dir, "daemon.log")


@dataclass
class LabState:
    name: str
    dir: str
    daemons: bool
    daemon_cmd: list[str]
    want_etcd: bool = False
    ul_netns: str | None = None
    hosts: dict[str, HostInfo] = field(default_factory=dict)
    etcd: ProcInfo | None = None
    etcd_members: int = 0  # an etcd cluster (tether.lab.etcdcluster), 0: none
    etcd_tls: bool = False
    etcd_procs: dict[str, ProcInfo] = field(default_factory=dict)
    version: int = STATE_VERSION

    def save(self) -> None:
        path = naming.state_file(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def remove_file(self) -> None:
        naming.state_file(self.name).unlink(missing_ok=True)


def _proc(raw: Any) -> ProcInfo | None:
    if raw is None:
        return None
    return ProcInfo(
        pid=int(raw["pid"]),
        starttime=int(raw["starttime"]),
        argv=[str(a) for a in raw["argv"]],
        log=str(raw["log"]),
    )


def _host(raw: Any) -> HostInfo:
    return HostInfo(
        name=str(raw["name"]),
        index=int(raw["index"]),
        netns=str(raw["netns"]),
        address=str(raw["address"]),
        ul_ifname=str(raw["ul_ifname"]),
        dir=str(raw["dir"]),
        daemon=_proc(raw.get("daemon")),
    )


def load(name: str) -> LabState:
    """Read a lab's state file; ``LabError`` when there is none or it is unreadable."""
    path = naming.state_file(naming.check_lab_name(name))
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"lab {name!r} not found (no {path})") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"lab {name!r}: cannot read {path}: {exc}") from exc
    try:
        if int(raw.get("version", 0)) != STATE_VERSION:
            raise LabError(f"lab {name!r}: unknown state version {raw.get('version')!r}")
        return LabState(
            name=str(raw["name"]),
            dir=str(raw["dir"]),
            daemons=bool(raw["daemons"]),
            daemon_cmd=[str(a) for a in raw["daemon_cmd"]],
            want_etcd=bool(raw.get("want_etcd", False)),
            ul_netns=raw.get("ul_netns"),
            hosts={k: _host(v) for k, v in raw.get("hosts", {}).items()},
            etcd=_proc(raw.get("etcd")),
            etcd_members=int(raw.get("etcd_members", 0)),
            etcd_tls=bool(raw.get("etcd_tls", False)),
            etcd_procs={
                k: p for k, v in raw.get("etcd_procs", {}).items() if (p := _proc(v)) is not None
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"lab {name!r}: malformed state file {path}: {exc}") from exc


def list_names() -> list[str]:
    root = naming.lab_root()
    if not root.is_dir():
        return []
    names = []
    for p in root.glob("*.json"):
        try:
            names.append(naming.check_lab_name(p.stem))
        except LabError:
            continue
    return sorted(names)


def exists(name: str) -> bool:
    return Path(naming.state_file(name)).exists()
