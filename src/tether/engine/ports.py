"""Published ports: Docker's API shapes in and out, and the host port allocator.

In: ``HostConfig.PortBindings`` (``{"80/tcp": [{"HostIp": "", "HostPort":
"8080"}]}``; HostPort ``""`` = any free port, ``"8000-8010"`` = any free port
in that range), ``Config.ExposedPorts`` and ``HostConfig.PublishAllPorts``
(``-P``: every exposed port without a binding gets a random one) →
``PortRequest``s. ``PortAllocator.allocate`` turns requests into concrete
``PortBinding``s, all or none. Out: ``ports_json`` gives
``NetworkSettings.Ports`` (``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort":
"8080"}], "81/tcp": null}``) and ``port_rules`` the firewall's ``PortRule``s.

The allocator is in memory; the store is the truth. On start the daemon
replays every running container's bindings with ``reserve_all``. Conflicts
follow Docker: ``(proto, ip, port)`` is taken once; 0.0.0.0 collides with
every specific address and every specific address with 0.0.0.0. Random ports
come from Docker's ephemeral range 49153–65535, handed out round-robin per
protocol like Docker's allocator (a port just released is not reused at once).
tether runs no userland proxy (but for ``[::1]``), so, like Docker with ``userland-proxy: false``,
a port a host process already listens on is not detected.

IPv6 (issue 18): a HostIp of ``::`` (any IPv6 address of the host) or a specific IPv6
address publishes to the container's IPv6 address, and so needs a dual-stack network to
publish on (checked by ``HostPorts``); a binding with no HostIp on a dual-stack container
is taken on ``::`` too, the same port, as Docker's ``docker port`` shows (``0.0.0.0:8080``
and ``:::8080``). Each family's wildcard collides with its own family's addresses only.
``::1`` is the one exception to "in the kernel": a reply to ::1 arriving on a bridge is
dropped (see ``fwrender._published6``), so TCP on ``[::1]`` (and on ``[::]``, whose
docker-proxy answers on ::1 too) is served by tether's userland proxy
(``tether.engine.loproxy``); those bindings get no firewall rule (``port_rules``).

A specific HostIp must be an address of this host (``check_host_ips``), as
in Docker, whose port mapper binds the address and fails the start with
``Error starting userland proxy: listen tcp4 IP:PORT: bind: cannot assign
requested address``. tether checks at create (nothing is left behind) and
says ``listen tcp4 IP:PORT: bind: cannot assign requested address``: it has
no userland proxy, so that part of Docker's text would mislead.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.engine.firewall import PortRule
from tether.errors import BadRequest, Conflict

ANY = "0.0.0.0"
ANY6 = "::"
EPHEMERAL = (49153, 65535)
PROTOS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortRequest:
    """One binding asked for; ``host_lo == host_hi == 0`` means any free port."""

    proto: str
    container_port: int
    host_ip: str = ANY
    host_lo: int = 0
    host_hi: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


@dataclass(frozen=True)
class PortBinding:
    """One concrete binding: host ``host_ip:host_port`` → container ``container_port``."""

    proto: str
    container_port: int
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


# --------------------------------------------------------------------------- parsing


def _invalid(spec: str) -> BadRequest:
    return BadRequest(f"invalid port specification: {spec!r}".replace("'", '"'))


def parse_port_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` → ``(80, "tcp")``; no protocol means tcp."""
    port_s, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS or not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
        raise _invalid(key)
    return int(port_s), proto


def parse_host_port(spec: str) -> tuple[int, int]:
    """``""`` → (0, 0) any; ``"8080"`` → (8080, 8080); ``"8000-8010"`` → (8000, 8010)."""
    spec = spec.strip()
    if spec in ("", "0"):
        return 0, 0
    lo_s, dash, hi_s = spec.partition("-")
    if not lo_s.isdigit() or (dash and not hi_s.isdigit()):
        raise _invalid(spec)
    lo, hi = int(lo_s), int(hi_s) if dash else int(lo_s)
    if not (1 <= lo <= hi <= 65535):
        raise _invalid(spec)
    return lo, hi


def parse_host_ip(ip: str | None) -> str:
    ip = (ip or "").strip()
    if ip in ("", ANY):
        return ANY
    try:
        return str(ipaddress.IPv4Address(ip))
    except ValueError:
        pass
    try:
        addr = ipaddress.IPv6Address(ip.strip("[]"))
    except ValueError:
        raise BadRequest(f"invalid host IP address: {ip}") from None
    return str(addr)


def is_v6(ip: str) -> bool:
    return ":" in ip


def parse_bindings(
    port_bindings: Mapping[str, Sequence[Mapping[str, Any]] | None] | None,
    exposed: Mapping[str, Any] | Iterable[str] | None = None,
    publish_all: bool = False,
) -> list[PortRequest]:
    """The requests in ``HostConfig.PortBindings`` (+ ``-P`` over ``ExposedPorts``).

    Sorted by (proto, container port) with each key's bindings in given order.
    """
    out: list[PortRequest] = []
    bound: set[tuple[int, str]] = set()
    for key, entries in (port_bindings or {}).items():
        port, proto = parse_port_key(key)
        for raw in entries or []:
            entry = raw or {}  # a JSON null binding is Go's zero PortBinding
            host_ip = parse_host_ip(entry.get("HostIp"))
            lo, hi = parse_host_port(str(entry.get("HostPort") or ""))
            out.append(PortRequest(proto, port, host_ip, lo, hi))
            bound.add((port, proto))
    if publish_all:
        for key in exposed or ():
            port, proto = parse_port_key(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port))
                bound.add((port, proto))
    return sorted(out, key=lambda r: (r.proto, r.container_port))


def exposed_keys(
    exposed: Mapping[str, Any] | Iterable[str] | None,
    port_bindings: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every exposed port as ``"80/tcp"`` (bound ports are exposed too, as in Docker)."""
    keys: set[tuple[int, str]] = set()
    for key in list(exposed or ()) + list(port_bindings or ()):
        keys.add(parse_port_key(key))
    return [f"{p}/{proto}" for p, proto in sorted(keys, key=lambda k: (k[1], k[0]))]


def host_has_address(ip: str) -> bool:
    """Whether ``ip`` is an address of this host (of the daemon's network namespace)."""
    with socket.socket(socket.AF_INET6 if is_v6(ip) else socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def check_host_ips(
    bindings: Iterable[PortBinding], is_local: Callable[[str], bool] = host_has_address
) -> None:
    """``BadRequest`` when a binding names a host address this host does not have."""
    for b in bindings:
        if b.host_ip not in (ANY, ANY6) and not is_local(b.host_ip):
            if is_v6(b.host_ip):
                where = f"{b.proto}6 [{b.host_ip}]:{b.host_port}"
            else:
                where = f"{b.proto}4 {b.host_ip}:{b.host_port}"
            raise BadRequest(f"listen {where}: bind: cannot assign requested address")


# --------------------------------------------------------------------------- output


def ports_json(
    exposed: Iterable[str], bindings: Iterable[PortBinding]
) -> dict[str, list[dict[str, str]] | None]:
    """``NetworkSettings.Ports``: every exposed key, ``None`` where nothing is published.

    Keys sorted as Go sorts map keys (byte order), so ``"443/tcp"`` < ``"80/tcp"``.
    """
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed:
        port, proto = parse_port_key(key)
        out.setdefault(f"{port}/{proto}", None)
    for b in bindings:
        entries = out.get(b.key) or []
        entries.append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
        out[b.key] = entries
    return {k: out[k] for k in sorted(out)}


def port_rules(
    bindings: Iterable[PortBinding], container_ip: str, bridge: str, container_ip6: str = ""
) -> list[PortRule]:
    """The firewall's view of one container's bindings on one bridge (``container_ip6``:
    its IPv6 address on a dual-stack network, where IPv6 host addresses publish to)."""
    out = []
    for b in bindings:
        if b.host_ip == "::1":  # served in userland (tether.engine.loproxy)
            continue
        rule = PortRule(b.proto, b.host_ip, b.host_port, container_ip, b.container_port, bridge)
        if container_ip6:
            rule = dataclasses.replace(rule, container_ip6=container_ip6)
        out.append(rule)
    return out


# --------------------------------------------------------------------------- allocator


class PortAllocator:
    """Which ``(proto, host ip, host port)`` are taken on this host."""

    def __init__(self, lo: int = EPHEMERAL[0], hi: int = EPHEMERAL[1]) -> None:
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"bad ephemeral range {lo}-{hi}")
        self._lo, self._hi = lo, hi
        self._used: dict[tuple[str, int], set[str]] = {}
        self._last: dict[str, int] = {}

    def in_use(self, proto: str, host_ip: str, port: int) -> bool:
        ips = self._used.get((proto, port))
        if not ips:
            return False
        v6 = is_v6(host_ip)
        same = {ip for ip in ips if is_v6(ip) == v6}  # each family's wildcard is its own
        wild = ANY6 if v6 else ANY
        return bool(same) and (host_ip == wild or wild in same or host_ip in same)

    def _take(self, proto: str, host_ip: str, port: int) -> None:
        self._used.setdefault((proto, port), set()).add(host_ip)

    def _free(self, proto: str, host_ip: str, port: int) -> None:
        ips = self._used.get((proto, port))
        if ips is not None:
            ips.discard(host_ip)
            if not ips:
                del self._used[(proto, port)]

    def _taken(self, proto: str, ip: str, port: int, twin6: bool) -> bool:
        return self.in_use(proto, ip, port) or (twin6 and self.in_use(proto, ANY6, port))

    def _pick(self, req: PortRequest, twin6: bool = False) -> int:
        ip = parse_host_ip(req.host_ip)
        twin6 = twin6 and ip == ANY
        if req.host_lo and req.host_lo == req.host_hi:
            if self._taken(req.proto, ip, req.host_lo, twin6):
                raise Conflict(f"Bind for {ip}:{req.host_lo} failed: port is already allocated")
            return req.host_lo
        if req.host_lo:
            candidates: Iterable[int] = range(req.host_lo, req.host_hi + 1)
        else:
            start = self._last.get(req.proto, self._hi) + 1
            if not self._lo <= start <= self._hi:
                start = self._lo
            candidates = (*range(start, self._hi + 1), *range(self._lo, start))
        for port in candidates:
            if not self._taken(req.proto, ip, port, twin6):
                if not req.host_lo:
                    self._last[req.proto] = port
                return port
        raise Conflict("all ports are allocated")

    def allocate(self, requests: Sequence[PortRequest], twin6: bool = False) -> list[PortBinding]:
        """Concrete bindings for every request, or ``Conflict`` and nothing taken. ``twin6``
        (a dual-stack container): a request with no HostIp takes ``::`` too, same port."""
        taken: list[PortBinding] = []
        try:
            for req in requests:
                ip = parse_host_ip(req.host_ip)
                b = PortBinding(req.proto, req.container_port, ip, self._pick(req, twin6))
                self._take(b.proto, b.host_ip, b.host_port)
                taken.append(b)
                if twin6 and ip == ANY:
                    b6 = PortBinding(b.proto, b.container_port, ANY6, b.host_port)
                    self._take(b6.proto, b6.host_ip, b6.host_port)
                    taken.append(b6)
        except Exception:
            self.release(taken)
            raise
        return taken

    def release(self, bindings: Iterable[PortBinding]) -> None:
        for b in bindings:
            self._free(b.proto, parse_host_ip(b.host_ip), b.host_port)

    def reserve_all(self, bindings: Iterable[PortBinding]) -> None:
        """Mark bindings restored from the store as taken (no conflict check)."""
        for b in bindings:
            self._take(b.proto, parse_host_ip(b.host_ip), b.host_port)
