"""Sandbox files: a container's own ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``.

Texts follow Docker's: the hosts file starts with the loopback block, then one
line per ``--link`` (``IP\tALIAS ID NAME``), then the container's own address
and hostname. On user-defined networks resolv.conf points at the embedded DNS
(``127.0.0.11``, ``ndots:0``); elsewhere it is the host's, without loopback
nameservers (unreachable from a container), falling back to Docker's defaults.
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
EMBEDDED_DNS = "127.0.0.11"
_NS_RE = re.compile(r"^\s*nameserver\s+(\S+)", re.M)


def hosts_text(
    links: Sequence[tuple[str, str]], own_ip: str | None, hostname: str, extra: Sequence[str] = ()
) -> str:
    """``links`` is a list of (ip, "alias id name") lines."""
    out = [HOSTS_HEADER]
    for line in extra:
        out.append(line.rstrip("\n") + "\n")
    for ip, names in links:
        out.append(f"{ip}\t{names}\n")
    if own_ip:
        out.append(f"{own_ip}\t{hostname}\n")
    return "".join(out)


def host_resolv(path: str = "/etc/resolv.conf") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def host_nameservers(text: str) -> list[str]:
    return _NS_RE.findall(text)


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


def resolv_text(embedded: bool, dns: Sequence[str], host_text: str, host_mode: bool) -> str:
    search = [
        line for line in host_text.splitlines() if line.strip().startswith(("search", "domain"))
    ]
    options = [line for line in host_text.splitlines() if line.strip().startswith("options")]
    if host_mode:
        return host_text
    if embedded:
        lines = [f"nameserver {EMBEDDED_DNS}", *search, "options ndots:0"]
        return "\n".join(lines) + "\n"
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
