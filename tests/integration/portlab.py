"""Shared helpers for the port-publishing and isolation lab tests.

Each container serves ``/etc`` with busybox httpd, so ``GET /hostname`` answers
with the container's hostname (its short id): a reply proves which container was
reached. Every probe is bounded (curl ``-m``, busybox ``timeout``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tether.lab.lab import Lab, LabHost

from .helpers import docker, in_host

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "scripts" / "build-busybox-image.sh"
UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo:" + data, peer)
"""
UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(2048)[0].decode())
except OSError:
    sys.exit(1)
"""


def import_image(host: LabHost, tmp: Path) -> None:
    tar = tmp / "busybox.tar"
    if not tar.exists():
        subprocess.run([str(IMAGE_SCRIPT), str(tar)], check=True, capture_output=True, timeout=120)
    r = docker(host, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest")
    assert r.returncode == 0, r.stderr


def ok(host: LabHost, *args: str) -> str:
    """Run docker; assert success; stdout stripped."""
    r = docker(host, *args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
    return r.stdout.strip()


def web(host: LabHost, name: str, *opts: str, port: int = 80) -> str:
    """A detached httpd container; returns its short id (what /hostname answers)."""
    cid = ok(host, "run", "-d", "--name", name, *opts, "alpine", "httpd", "-f", "-p", str(port),
             "-h", "/etc")  # fmt: skip
    return cid[:12]


def inspect(host: LabHost, name: str) -> Any:
    return json.loads(ok(host, "inspect", name))[0]


def ip_of(host: LabHost, name: str, network: str | None = None) -> str:
    nets = inspect(host, name)["NetworkSettings"]["Networks"]
    net = nets[network] if network else next(iter(nets.values()))
    return str(net["IPAddress"])


def curl(host: LabHost, url: str) -> str | None:
    """GET from inside the lab host's namespace; the body, or None when it failed."""
    r = in_host(host, "curl", "-s", "-f", "-m", "3", url)
    return r.stdout.strip() if r.returncode == 0 else None


def wget_in(host: LabHost, container: str, url: str) -> str | None:
    """GET from inside a container; the body, or None when it failed."""
    r = docker(host, "exec", container, "timeout", "4", "wget", "-qO-", url, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else None


def ping_in(host: LabHost, container: str, address: str) -> bool:
    r = docker(host, "exec", container, "ping", "-c", "1", "-W", "1", address, timeout=30)
    return r.returncode == 0


def udp_echo_in_sandbox(host: LabHost, container: str, port: int) -> subprocess.Popen[str]:
    """A UDP echo server in the container's network namespace (the image has no UDP server)."""
    key = inspect(host, container)["NetworkSettings"]["SandboxKey"]
    proc = subprocess.Popen(
        ["nsenter", f"--net={key}", "python3", "-c", UDP_ECHO, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def udp_ask(host: LabHost, address: str, port: int) -> str | None:
    r = in_host(host, "python3", "-c", UDP_ASK, address, str(port))
    return r.stdout.strip() if r.returncode == 0 else None


def nft_json(host: LabHost, *what: str) -> Any:
    r = in_host(host, "nft", "-j", "list", *what, check=True)
    return json.loads(r.stdout)["nftables"]


def nft_text(host: LabHost, *what: str) -> str:
    return in_host(host, "nft", "list", *what, check=True).stdout


def count_rules(host: LabHost) -> int:
    return sum(1 for o in nft_json(host, "table", "ip", "tether") if "rule" in o)


def map_elements(host: LabHost, name: str) -> int:
    for o in nft_json(host, "table", "ip", "tether"):
        if "map" in o and o["map"]["name"] == name:
            return len(o["map"].get("elem", []))
    raise AssertionError(f"no map {name}")


def two_hosts(factory: Any) -> Lab:
    lab: Lab = factory(["host1", "host2"], daemons=True)
    return lab


def clean_host(host: LabHost, networks: bool = False) -> None:
    """Remove every container (and, with ``networks``, every user network) a test left."""
    ids = ok(host, "ps", "-aq")
    if ids:
        docker(host, "rm", "-f", *ids.split())
    if networks:
        for net in ok(host, "network", "ls", "--format", "{{.Name}}").split():
            if net not in ("bridge", "host", "none"):
                docker(host, "network", "rm", net)
