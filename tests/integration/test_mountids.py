"""``tether.linux.mountids`` against the kernel (root, Linux >= 6.8 for listmount).

Each check runs in a child process with a private mount namespace of its own
(``unshare -m``), so nothing is mounted in the host's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether.linux.mountids import MountIds

pytestmark = pytest.mark.lab

SRC = str(Path(__file__).resolve().parents[2] / "src")

CHILD = r"""
import json, os, subprocess, sys, tempfile
from tether.linux.mountids import MountIds
ids = MountIds()
out = {"start": sorted(ids.kept())}
d = tempfile.mkdtemp()
for sub in ("t", "lower", "upper", "work", "ov", "nsf"):
    os.mkdir(os.path.join(d, sub))
run = lambda *a: subprocess.run(a, check=True)
run("mount", "-t", "tmpfs", "tmpfs", d)  # a mount of the host's kind: counts
out["tmpfs"] = sorted(ids.kept())
for sub in ("lower", "upper", "work", "ov"):
    os.mkdir(os.path.join(d, sub))
open(os.path.join(d, "nsf"), "w").close()
run("mount", "-t", "overlay", "overlay", "-o",
    f"lowerdir={d}/lower,upperdir={d}/upper,workdir={d}/work", f"{d}/ov")
run("mount", "--bind", "/proc/self/ns/net", f"{d}/nsf")  # a namespace file
out["foreign"] = sorted(ids.kept())
run("umount", f"{d}/ov")
run("umount", f"{d}/nsf")
run("umount", d)
out["end"] = sorted(ids.kept())
print(json.dumps(out))
"""


def _skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mounts in a private mount namespace)"
    if MountIds().kept() is None:
        return "this kernel has no listmount(2) (Linux < 6.8): the daemon reads mountinfo"
    return None


def test_kept_counts_host_mounts_not_overlays_or_namespace_files() -> None:
    reason = _skip()
    if reason:
        pytest.skip(reason)
    p = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", CHILD],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(p.stdout)
    start, tmpfs, foreign, end = (set(out[k]) for k in ("start", "tmpfs", "foreign", "end"))
    assert len(tmpfs - start) == 1 and start <= tmpfs
    assert foreign == tmpfs  # an overlay and a namespace file change nothing
    assert end == start
