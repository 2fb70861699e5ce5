"""The demo's lab and image: two hosts named like the seed's servers, plus an etcd.

The busybox root filesystem is built offline (scripts/build-busybox-image.sh) and imported on
each host as ``alpine:latest``, the image name the seed uses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tether.demo.expect import ok
from tether.demo.runner import Runner
from tether.lab.lab import Lab

LAB_NAME = "seed"
HOSTS = ("docker201", "docker202")
IMAGE = "alpine:latest"


def build_script() -> Path:
    """scripts/build-busybox-image.sh of the source tree this package comes from."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "scripts" / "build-busybox-image.sh"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("scripts/build-busybox-image.sh not found above " + str(here))


def start_lab(name: str = LAB_NAME, hosts: tuple[str, ...] = HOSTS) -> Lab:
    """A fresh lab (an old one left by an interrupted demo is removed first)."""
    if Lab.exists(name):
        print(f"# removing the lab {name!r} left by an earlier run")
        Lab.destroy(name)
    return Lab.up(name, list(hosts), etcd=True)


def build_image(tar: str) -> None:
    subprocess.run(
        ["sh", str(build_script()), tar], check=True, capture_output=True, text=True, timeout=120
    )
    if not os.path.getsize(tar):
        raise RuntimeError(f"{tar} is empty")


def install_image(r: Runner, hosts: tuple[str, ...], tar: str) -> None:
    """Build the busybox tarball once and import it on every host (checked steps)."""
    r.action("local", f"scripts/build-busybox-image.sh {tar}", lambda: build_image(tar))
    for h in hosts:
        r.docker(h, ["import", "-c", 'CMD ["/bin/sh"]', tar, IMAGE], ok(regex=r"^sha256:"))
        r.docker(h, "image ls", ok(regex=r"^alpine\s+latest\s"))
