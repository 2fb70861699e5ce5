"""A lab host set up for name-resolution tests (embedded DNS, links) through the docker CLI.

The lab host's daemon reads a lab-made host resolv.conf (``TETHER_RESOLV_CONF``), never the
machine's: its nameservers are a fake upstream (``dnsfake.py``) on the lab host's loopback
(``127.0.0.53``, like systemd-resolved's stub) and on the lab host's own address. A second
fake upstream on ``127.0.0.54`` serves as a ``--dns`` target. So every query a test causes
stays inside the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.lab.lab import LabHost

from .helpers import LabFactory, docker

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STUB = "127.0.0.53"  # host-loopback upstream in the host's resolv.conf
ALT = "127.0.0.54"  # a --dns upstream
HOST_OPTIONS = "attempts:2"


class DnsLab:
    def __init__(self, host: LabHost, work: Path) -> None:
        self.host = host
        self.work = work
        self.resolv = work / "host-resolv.conf"
        self.log = work / "upstream.log"
        self.alt_log = work / "upstream-alt.log"
        self.procs: list[subprocess.Popen[Any]] = []

    # -- set-up -------------------------------------------------------------------------
    def start_upstream(self, listens: list[str], log: Path) -> None:
        argv = [sys.executable, str(HERE / "dnsfake.py"), "--log", str(log)]
        for addr in listens:
            argv += ["--listen", addr]
        p = self.host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "ready", f"fake upstream did not start: {line!r}"

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    # -- helpers ------------------------------------------------------------------------
    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = docker(self.host, *args)
        if check:
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
        return r

    def exec(self, name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return docker(self.host, "exec", name, *cmd)

    def run(self, name: str, *args: str) -> str:
        """``docker run -d --name NAME ARGS... alpine sleep 600`` → id."""
        r = self.docker("run", "-d", "--name", name, *args, "alpine", "sleep", "600")
        return r.stdout.strip()

    def ip(self, name: str, net: str) -> str:
        tmpl = '{{(index .NetworkSettings.Networks "' + net + '").IPAddress}}'
        return self.docker("inspect", "-f", tmpl, name).stdout.strip()

    def sandbox_key(self, name: str) -> str:
        return self.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name).stdout.strip()

    def query(self, name: str, qname: str, qtype: str = "A", *extra: str) -> dict[str, Any]:
        """One query to 127.0.0.11 from inside container ``name``'s network namespace."""
        argv = ["nsenter", f"--net={self.sandbox_key(name)}", sys.executable]
        argv += [str(HERE / "dnsclient.py"), qname, qtype, *extra]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    def a(self, name: str, qname: str) -> list[str]:
        res = self.query(name, qname)
        assert "error" not in res, res
        return [data for _, t, data in res["answers"] if t == "A"]

    def upstream_saw(self, line: str, alt: bool = False) -> bool:
        path = self.alt_log if alt else self.log
        return path.exists() and line in path.read_text().splitlines()


def build_image(host: LabHost, tmp: Path) -> None:
    tar = tmp / "busybox.tar"
    subprocess.run(
        [str(REPO / "scripts" / "build-busybox-image.sh"), str(tar)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    r = docker(host, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest")
    assert r.returncode == 0, r.stderr


def dns_lab(factory: LabFactory, tmp: Path) -> Iterator[DnsLab]:
    """Generator behind the module fixtures: one lab host, image, fake upstreams."""
    resolv = tmp / "host-resolv.conf"
    resolv.write_text(f"nameserver {STUB}\n")  # real content is written once the address is known
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETHER_RESOLV_CONF", str(resolv))
        lab = factory(["host1"], daemons=True)
    host = lab.host("host1")
    d = DnsLab(host, tmp)
    try:
        resolv.write_text(f"nameserver {STUB}\nnameserver {host.address}\noptions {HOST_OPTIONS}\n")
        d.start_upstream([f"{STUB}:53", f"{host.address}:53"], d.log)
        d.start_upstream([f"{ALT}:53"], d.alt_log)
        build_image(host, tmp)
        yield d
    finally:
        d.close()
