"""Sandbox files: a container's own ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``.

Texts follow Docker's: the hosts file starts with the loopback block, then one
line per ``--link`` (``IP\tALIAS ID NAME``), then the container's own address
and hostname. On user-defined networks resolv.conf points at the embedded DNS
(``127.0.0.11``, ``ndots:0``); elsewhere it is the host's, without loopback
nameservers (unreachable from a container), falling back to Docker's defaults.

Which host file: ``/etc/resolv.conf``, except that when it names only systemd-resolved's stub
(``127.0.0.53``) the real upstreams are read from ``/run/systemd/resolve/resolv.conf`` when it
exists (Docker does the same). ``TETHER_RESOLV_CONF`` names another file instead (used by the
lab tests, whose lab hosts share the machine's ``/etc``: they must never send DNS to the
machine's real resolvers). The file is re-read when its mtime changes, never per query.

``--dns``/``--dns-search``/``--dns-option`` (or daemon.json ``dns``) replace the host's
nameservers, search domains and options. With the embedded DNS the nameservers become its
upstreams (forwarded from the daemon's namespace, so loopback ones work there) and the file
says ``nameserver 127.0.0.11`` with ``ndots:0`` added unless an ``ndots`` option is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]
HOST_RESOLV = "/etc/resolv.conf"
SYSTEMD_RESOLV = "/run/systemd/resolve/resolv.conf"
SYSTEMD_STUB = "127.0.0.53"
RESOLV_ENV = "TETHER_RESOLV_CONF"
EMBEDDED_DNS = "127.0.0.11"
_NS_RE = re.compile(r"^\s*nameserver\s+(\S+)", re.M)


def hosts_text(
    links: Sequence[tuple[str, str]],
    own_ip: str | None,
    hostname: str,
    extra: Sequence[str] = (),
    own_ip6: str | None = None,
) -> str:
    """``links`` is a list of (ip, "alias id name") lines; ``own_ip6``: a dual-stack first
    network's IPv6 address, listed after the IPv4 one as Docker does."""
    out = [HOSTS_HEADER]
    for line in extra:
        out.append(line.rstrip("\n") + "\n")
    for ip, names in links:
        out.append(f"{ip}\t{names}\n")
    if own_ip:
        out.append(f"{own_ip}\t{hostname}\n")
    if own_ip6:
        out.append(f"{own_ip6}\t{hostname}\n")
    return "".join(out)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


_cache: dict[str, tuple[float, str]] = {}


def _read_cached(path: str) -> str:
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        _cache.pop(path, None)
        return ""
    hit = _cache.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    text = _read(path)
    _cache[path] = (mtime, text)
    return text


def host_resolv(path: str | None = None) -> str:
    """The host's resolv.conf text (see the module notes for which file)."""
    if path is not None:
        return _read_cached(path)
    override = os.environ.get(RESOLV_ENV)
    if override:
        return _read_cached(override)
    text = _read_cached(HOST_RESOLV)
    if host_nameservers(text) == [SYSTEMD_STUB] and os.path.exists(SYSTEMD_RESOLV):
        return _read_cached(SYSTEMD_RESOLV)
    return text


def host_nameservers(text: str) -> list[str]:
    return _NS_RE.findall(text)


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


def resolv_text(
    embedded: bool,
    dns: Sequence[str],
    host_text: str,
    host_mode: bool,
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
) -> str:
    search = [
        line for line in host_text.splitlines() if line.strip().startswith(("search", "domain"))
    ]
    if dns_search:
        search = [] if list(dns_search) == ["."] else ["search " + " ".join(dns_search)]
    opts: list[str] = []
    for line in host_text.splitlines():
        if line.strip().startswith("options"):
            opts.extend(line.split()[1:])
    if dns_options:
        opts = list(dns_options)
    if host_mode:
        return host_text
    if embedded:
        if not any(o.startswith("ndots:") for o in opts):
            opts.append("ndots:0")
        lines = [f"nameserver {EMBEDDED_DNS}", *search, "options " + " ".join(opts)]
        return "\n".join(lines) + "\n"
    options = ["options " + " ".join(opts)] if opts else []
    servers = list(dns) or [s for s in host_nameservers(host_text) if not _is_loopback(s)]
    if not servers:
        servers = DEFAULT_DNS
    lines = [f"nameserver {s}" for s in servers] + search + options
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Rewrite in place (same inode) so a bind mount in a running container sees it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
