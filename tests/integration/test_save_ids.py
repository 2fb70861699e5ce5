"""``docker save`` keeps image ids (issue 17): the layer tar in the archive is the one the
image was imported from (``runtime.tarsplit``), so ``docker load`` gives the same id."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tether.lab.lab import LabHost

from .portlab import IMAGE_SCRIPT, ok

pytestmark = pytest.mark.lab


def test_save_load_keeps_the_id_and_the_layer(host1: LabHost, tmp_path: Path) -> None:
    rootfs = tmp_path / "busybox.tar"
    subprocess.run([str(IMAGE_SCRIPT), str(rootfs)], check=True, capture_output=True, timeout=120)
    ok(host1, "import", "-c", 'CMD ["/bin/sh"]', str(rootfs), "keep:1")
    image_id = ok(host1, "inspect", "-f", "{{.Id}}", "keep:1")
    archive = tmp_path / "saved.tar"
    ok(host1, "save", "-o", str(archive), "keep:1")
    with tarfile.open(archive) as t:
        [entry] = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        [layer] = entry["Layers"]
        data = t.extractfile(layer).read()  # type: ignore[union-attr]
    assert hashlib.sha256(data).digest() == hashlib.sha256(rootfs.read_bytes()).digest()
    ok(host1, "rmi", "keep:1")
    assert "Loaded image: keep:1" in ok(host1, "load", "-i", str(archive))
    assert ok(host1, "inspect", "-f", "{{.Id}}", "keep:1") == image_id
    assert ok(host1, "run", "--rm", "keep:1", "echo", "back") == "back"
    ok(host1, "rmi", "keep:1")
