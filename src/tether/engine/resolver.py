"""The records the embedded DNS serves: what one container can see by name.

A container sees, on each user-defined network it is attached to, the
running containers of that network under their name, their network aliases
and their short id, plus its own ``--link`` aliases (scoped to itself, as
Docker does on user-defined networks). Every lookup reads the live container
table, so a new name answers as soon as ``run`` returns and a removed one stops
at once (the DNS server's answer cache is dropped on every change).

Links on user-defined networks are Docker's: ``--link target:alias`` makes ``alias`` a name
only the linking container resolves, to ``target``'s address on the networks the two share.
The target is found by id, else by name, at query time (Docker resolves a link alias to the
target's name, so a link to a container that starts later answers once it runs).

On dual-stack networks a name has its IPv6 address too (AAAA answers; PTR under
``ip6.arpa``). A name answers with its addresses on the first network (in the container's
order) that has it, never a mix of two networks'; ``name.network`` is ``name`` on that
network only.

Upstreams: none when every network of the container is ``--internal`` (no route out: Docker's
forward fails there as well; here the answer is SERVFAIL at once); else the container's
``--dns``, else daemon.json ``dns``, else the host's nameservers
(:func:`tether.engine.sandbox.host_resolv`), loopback ones included: forwarding runs in the
daemon's namespace, where the host's 127.0.0.53 is reachable. (Docker forwards to a
``--dns 127.0.0.x`` inside the container's namespace; tether does not: a known difference.)
"""

from __future__ import annotations

from typing import Any

from tether.contracts.cluster import RemoteEndpoints
from tether.engine import sandbox as sbx
from tether.engine.networks import NetworkController
from tether.engine.record import Container
from tether.engine.table import ContainerTable


class EngineResolver:
    def __init__(
        self,
        containers: ContainerTable,
        networks: NetworkController,
        dns: list[str],
        remote: RemoteEndpoints | None = None,
    ) -> None:
        self.containers = containers
        self.networks = networks
        self.dns = dns
        self.remote = remote  # endpoints of other hosts (the cluster view), None on one host

    def _user_nets(self, c: Container) -> list[str]:
        out = []
        for nid in c.endpoints:
            net = self.networks.networks.get(nid)
            if net is not None and not net.predefined:
                out.append(nid)
        return out

    def lookup(self, sandbox: str, name: str) -> list[str] | None:
        asker = self.containers.containers.get(sandbox)
        if asker is None:
            return None
        name = name.lower().rstrip(".")
        nets = self._user_nets(asker)
        # links are aliases only the linking container sees
        for tid, alias in asker.links:
            if alias.lower() == name and (ips := self._link_ips(tid, nets)):
                return ips
        # links made for one network (`network connect --link`, EndpointsConfig.Links): an
        # alias of the target on that network only
        for nid in nets:
            raw = asker.endpoints.get(nid) or {}
            for link in raw.get("links") or ():
                ref, _, alias = str(link).partition(":")
                if (alias or ref).lower() == name and (ips := self._link_ips(ref, [nid])):
                    return ips
        found = self._on_networks(name, nets)
        if found is None and "." in name:
            # `name.network` (Docker: "a.b.c in network d"): that network's names only
            short, _, net_name = name.rpartition(".")
            scoped = [n for n in nets if self._net_name(n) == net_name]
            if scoped:
                found = self._on_networks(short, scoped)
        return found

    def _link_ips(self, ref: str, nets: list[str]) -> list[str] | None:
        """A running link target's address on the first of ``nets`` it is on."""
        target = self._link_target(ref)
        if target is None or not target.running:
            return None
        for nid in nets:
            ep = target.endpoints.get(nid)
            if ep is not None:
                return [ep["ip"]] + ([ep["ip6"]] if ep.get("ip6") else [])
        return None

    def _internal(self, nid: str) -> bool:
        net = self.networks.networks.get(nid)
        return bool(net is not None and net.internal)

    def _net_name(self, nid: str) -> str:
        net = self.networks.networks.get(nid)
        return str(net.name).lower() if net is not None else ""

    def _on_networks(self, name: str, nets: list[str]) -> list[str] | None:
        """The addresses of ``name`` on the first of ``nets`` (in the asker's order) that has
        it, as Docker answers: never a mix of two networks' addresses."""
        for nid in nets:
            found: list[str] = []
            for c, ep in self.containers.endpoints_on(nid):
                if not c.running or not ep.ip:
                    continue
                names = {c.name.lower(), c.id[:12]} | {a.lower() for a in ep.aliases}
                if name in names and ep.ip not in found:
                    found.append(ep.ip)
                    ip6 = getattr(ep, "ip6", "")  # dual-stack networks (unit fakes lack it)
                    if ip6:
                        found.append(ip6)
            for rec in self._remote(nid):
                names = {str(rec.get("name", "")).lower(), str(rec.get("container", ""))[:12]}
                names |= {str(a).lower() for a in rec.get("aliases") or []}
                ip = str(rec.get("ip") or "")
                if name in names and ip and ip not in found:
                    found.append(ip)
                    if rec.get("ip6"):  # a dual-stack overlay network's remote endpoint
                        found.append(str(rec["ip6"]))
            if found:
                return found
        return None

    def _remote(self, nid: str) -> list[dict[str, Any]]:
        """Endpoints of other hosts on a global network (the cluster view), else none."""
        if self.remote is None:
            return []
        return self.remote.remote_endpoints(nid)

    def _link_target(self, ref: str) -> Container | None:
        target = self.containers.containers.get(ref)
        if target is None:
            for c in self.containers.containers.values():
                if c.name == ref:
                    return c
        return target

    def reverse(self, sandbox: str, ip: str) -> str | None:
        asker = self.containers.containers.get(sandbox)
        if asker is None:
            return None
        for nid in self._user_nets(asker):
            net = self.networks.networks.get(nid)
            for c, ep in self.containers.endpoints_on(nid):
                if c.running and ip in (ep.ip, getattr(ep, "ip6", "") or ep.ip):
                    return f"{c.name}.{net.name}" if net is not None else c.name
            for rec in self._remote(nid):
                if ip in (rec.get("ip"), rec.get("ip6")):
                    rname = str(rec.get("name", ""))
                    return f"{rname}.{net.name}" if net is not None else rname
        return None

    def upstreams(self, sandbox: str) -> list[str]:
        c = self.containers.containers.get(sandbox)
        if c is not None and c.endpoints and all(self._internal(nid) for nid in c.endpoints):
            return []  # no route out: Docker's forward fails there too (SERVFAIL at once here)
        custom = (c.host_config.get("Dns") if c is not None else None) or self.dns
        if custom:
            return list(custom)
        return sbx.host_nameservers(sbx.host_resolv())[:3]
