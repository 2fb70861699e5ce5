"""Busybox image fixture support: build the tarball once, import it as ``alpine:latest``."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tether.lab.lab import LabHost

from .helpers import docker

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build-busybox-image.sh"


def build_busybox_tar(out: Path) -> Path:
    subprocess.run([str(SCRIPT), str(out)], check=True, capture_output=True, timeout=120)
    return out


def import_alpine(host: LabHost, tar: Path) -> None:
    r = docker(host, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest")
    assert r.returncode == 0, r.stderr
