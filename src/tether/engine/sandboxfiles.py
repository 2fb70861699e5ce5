"""A container's sandbox files: ``hostname``, ``hosts`` and ``resolv.conf``, and link variables.

Written into the container's files folder at each start (and ``resolv.conf`` again when a
connect gives it the embedded DNS), bound into the container by its OCI spec. The texts
themselves come from ``tether.engine.sandbox``; this module decides what goes in them for
one container: its hostname, its legacy links (default bridge only), its DNS servers.
"""

from __future__ import annotations

import os
from pathlib import Path

from tether.engine import ports as portlib
from tether.engine import runopts
from tether.engine import sandbox as sbx
from tether.engine.core import EngineCore
from tether.engine.record import Container


class SandboxFiles:
    def __init__(self, core: EngineCore, host_gateway_ip: str | None = None) -> None:
        self.core = core
        self.host_gateway_ip = host_gateway_ip  # the daemon option; None: the default bridge's

    def write(self, c: Container, kind: str) -> None:
        d = self.core.files_dir(c)
        d.mkdir(parents=True, exist_ok=True)
        if kind == "container":
            self._copy_shared(c, d)
            return
        hostname = c.config.get("Hostname") or c.id[:12]
        if kind == "host":
            hostname = os.uname().nodename
        sbx.write_atomic(d / "hostname", hostname + "\n")
        extra = runopts.host_lines(c.host_config.get("ExtraHosts"), self.host_gateway())
        if kind == "host" and not extra:
            text = (
                Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else sbx.HOSTS_HEADER
            )
        elif kind == "host":
            text = sbx.hosts_text([], None, "", extra)  # Docker: a file of its own then
        else:
            eps = c.eps()
            own_ip = eps[0].ip if eps else None
            names = runopts.hosts_names(hostname, str(c.config.get("Domainname") or ""))
            own_ip6 = eps[0].ip6 if eps else None
            text = sbx.hosts_text(self._link_lines(c), own_ip, names, extra, own_ip6)
        sbx.write_atomic(d / "hosts", text)
        embedded = kind == "network" and self.core.uses_embedded_dns(c)
        sbx.write_atomic(d / "resolv.conf", self.resolv_text(c, embedded, kind == "host"))

    def host_gateway(self) -> str | None:
        """``--add-host NAME:host-gateway``: the daemon option ``host-gateway-ip`` (flag or
        daemon.json), else the default bridge's address (Docker's default for it)."""
        if self.host_gateway_ip:
            return self.host_gateway_ip
        bridge = self.core.networks.find("bridge")
        pools = bridge.pools if bridge is not None else []
        return str(pools[0].gateway) if pools else None

    def _copy_shared(self, c: Container, d: Path) -> None:
        """``--network container:<x>``: the other container's hosts, resolv.conf, hostname."""
        other = self.core.table.get(c.network_mode.split(":", 1)[1])
        od = self.core.files_dir(other)
        for fn in ("hosts", "resolv.conf"):
            src = od / fn
            sbx.write_atomic(d / fn, src.read_text() if src.exists() else "")
        sbx.write_atomic(d / "hostname", (other.config.get("Hostname") or other.id[:12]) + "\n")

    def _link_lines(self, c: Container) -> list[tuple[str, str]]:
        """The hosts lines of ``--link`` targets (on the default bridge only)."""
        nets = self.core.networks.networks
        eps = c.eps()
        first_net = eps[0].network_id if eps else None
        lines: list[tuple[str, str]] = []
        for tid, alias in c.links:
            linked = self.core.containers.get(tid)
            if linked is None:
                continue
            ip = ""
            if first_net and first_net in linked.endpoints:
                ip = linked.endpoints[first_net]["ip"]
            elif linked.endpoints:
                ip = next(iter(linked.endpoints.values()))["ip"]
            if (
                ip
                and nets.get(first_net or "") is not None
                and nets[first_net or ""].name == "bridge"
            ):
                lines.append((ip, f"{alias} {linked.id[:12]} {linked.name}"))
        return lines

    def rewrite_resolv(self, c: Container) -> None:
        d = self.core.files_dir(c)
        sbx.write_atomic(d / "resolv.conf", self.resolv_text(c, True, False))

    def resolv_text(self, c: Container, embedded: bool, host_mode: bool) -> str:
        hc = c.host_config
        return sbx.resolv_text(
            embedded,
            hc.get("Dns") or self.core.dns_servers,
            sbx.host_resolv(),
            host_mode,
            dns_search=hc.get("DnsSearch") or (),
            dns_options=hc.get("DnsOptions") or (),
        )

    def link_env(self, c: Container) -> list[str]:
        out: list[str] = []
        if not self.core.on_default_bridge(c):
            return out  # Docker sets link variables only on the default bridge
        bridge = self.core.networks.find("bridge")
        for tid, alias in c.links:
            other = self.core.containers.get(tid)
            if other is None:
                continue
            prefix = alias.upper().replace("-", "_").replace(".", "_")
            out.append(f"{prefix}_NAME=/{c.name}/{alias}")
            bep = other.endpoints.get(bridge.id) if bridge is not None else None
            out += _port_env(prefix, bep["ip"] if bep else "", other)
            for e in other.config.get("Env") or []:
                k, _, v = e.partition("=")
                if k in ("PATH", "HOME", "HOSTNAME") or not k:
                    continue
                out.append(f"{prefix}_ENV_{k}={v}")
        return out


def _port_env(prefix: str, ip: str, other: Container) -> list[str]:
    out: list[str] = []
    exposed = portlib.exposed_keys(other.config.get("ExposedPorts"))
    for i, key in enumerate(exposed):
        port, proto = portlib.parse_port_key(key)
        base = f"{prefix}_PORT_{port}_{proto.upper()}"
        if i == 0:
            out.append(f"{prefix}_PORT={proto}://{ip}:{port}")
        out += [
            f"{base}={proto}://{ip}:{port}",
            f"{base}_ADDR={ip}",
            f"{base}_PORT={port}",
            f"{base}_PROTO={proto}",
        ]
    return out
