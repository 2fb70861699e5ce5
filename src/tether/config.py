"""Daemon configuration: command-line flags merged over ``daemon.json``.

``daemon.json`` takes Docker's keys where they exist: ``cluster-store``,
``cluster-advertise``, ``default-address-pools`` (``[{"base": CIDR, "size": N}]``),
``bip``, ``dns``, ``iptables``, ``ipv6`` with ``fixed-cidr-v6`` (the default bridge
dual-stack: issue 18), ``host-gateway-ip`` (what ``--add-host NAME:host-gateway`` resolves
to; default: the default bridge's address), ``cluster-store-opts`` (``{"kv.cacertfile": PATH,
...}``, the same keys as the repeatable ``--cluster-store-opt KEY=VALUE``). Flags win over the
file (for ``cluster-store-opts``, key by key).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import BadRequest


@dataclass
class DaemonConfig:
    host: str = "unix:///run/tether/tether.sock"
    data_root: Path = Path("/var/lib/tether")
    exec_root: Path = Path("/run/tether")
    cluster_store: str | None = None
    cluster_advertise: str | None = None
    cluster_store_opts: dict[str, str] = field(default_factory=dict)
    default_pools: list[tuple[str, int]] | None = None
    bip: str | None = None
    ipv6: bool = False  # with fixed_cidr_v6: the default bridge is dual-stack
    fixed_cidr_v6: str | None = None
    dns: list[str] = field(default_factory=list)
    iptables: bool = True
    debug: bool = False
    web_addr: str | None = None  # HOST:PORT of /metrics (issue 19); None: off
    host_gateway_ip: str | None = None  # --add-host X:host-gateway; None: the default bridge's

    @property
    def web_endpoint(self) -> tuple[str, int] | None:
        """``--web-addr`` as (host, port), or None when it is off."""
        return parse_web_addr(self.web_addr) if self.web_addr else None

    @property
    def socket_path(self) -> str:
        if not self.host.startswith("unix://"):
            raise BadRequest(f"only unix sockets are supported: {self.host}")
        return self.host[len("unix://") :]


def load_config(
    host: str | None,
    data_root: str | None,
    exec_root: str | None,
    config_file: str | None,
    cluster_store: str | None,
    cluster_advertise: str | None,
    debug: bool = False,
    web_addr: str | None = None,
    cluster_store_opts: Sequence[str] = (),
    host_gateway_ip: str | None = None,
) -> DaemonConfig:
    cfg = DaemonConfig(debug=debug)
    file_data: dict[str, Any] = {}
    if config_file and Path(config_file).is_file():
        try:
            file_data = json.loads(Path(config_file).read_text())
        except json.JSONDecodeError as exc:
            raise BadRequest(f"invalid daemon configuration {config_file}: {exc}") from None
    if "default-address-pools" in file_data:
        cfg.default_pools = [
            (str(p["base"]), int(p["size"])) for p in file_data["default-address-pools"]
        ]
    cfg.bip = file_data.get("bip")
    cfg.ipv6 = bool(file_data.get("ipv6", False))
    cfg.fixed_cidr_v6 = file_data.get("fixed-cidr-v6") or None
    cfg.dns = list(file_data.get("dns") or [])
    cfg.iptables = bool(file_data.get("iptables", True))
    cfg.cluster_store = cluster_store or file_data.get("cluster-store")
    cfg.cluster_advertise = cluster_advertise or file_data.get("cluster-advertise")
    cfg.cluster_store_opts = store_opts(file_data.get("cluster-store-opts"), cluster_store_opts)
    if host:
        cfg.host = host
    elif file_data.get("hosts"):
        cfg.host = str(file_data["hosts"][0])
    if data_root:
        cfg.data_root = Path(data_root)
    elif file_data.get("data-root"):
        cfg.data_root = Path(file_data["data-root"])
    if exec_root:
        cfg.exec_root = Path(exec_root)
    elif file_data.get("exec-root"):
        cfg.exec_root = Path(file_data["exec-root"])
    cfg.debug = debug or bool(file_data.get("debug"))
    cfg.web_addr = web_addr or file_data.get("web-addr") or file_data.get("metrics-addr")
    cfg.web_endpoint  # noqa: B018 (a bad address fails here, before anything starts)
    cfg.host_gateway_ip = parse_ip(host_gateway_ip or file_data.get("host-gateway-ip"))
    return cfg


def store_opts(from_file: Any, flags: Sequence[str]) -> dict[str, str]:
    """daemon.json's ``cluster-store-opts`` dict updated by the ``KEY=VALUE`` flags."""
    if from_file is None:
        from_file = {}
    if not isinstance(from_file, dict) or not all(isinstance(v, str) for v in from_file.values()):
        raise BadRequest('daemon.json "cluster-store-opts" must map option names to strings')
    opts = {str(k): v for k, v in from_file.items()}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise BadRequest(f"invalid --cluster-store-opt {flag!r}: want KEY=VALUE")
        opts[key.strip()] = value
    return opts


def parse_ip(text: str | None) -> str | None:
    """An IP address (normalised), None for none; Docker's text for anything else."""
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        raise BadRequest(
            f'invalid argument "{text}" for "--host-gateway-ip" flag: {text} is not an ip address'
        ) from None


def parse_web_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) -> (host, port); BadRequest otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"invalid --web-addr {text!r}: want HOST:PORT, e.g. 127.0.0.1:9323")
    return host, int(port)


def default_bridge_v6(cfg: DaemonConfig) -> str | None:
    """The default bridge's IPv6 subnet: ``fixed-cidr-v6`` when ``ipv6`` is on (Docker ignores
    it otherwise; with ``ipv6`` and no ``fixed-cidr-v6`` tether, having no default IPv6 pools,
    keeps the default bridge IPv4-only)."""
    return cfg.fixed_cidr_v6 if cfg.ipv6 else None
