"""The data root and its stores are not readable by other users (issue 16, hardening):
Docker makes /var/lib/docker 0710 root:root, containers/ and overlay2/ 0710, image/ and
tmp/ 0700, volumes/ 0701, and its stores 0600."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tether.daemon import make_data_root
from tether.engine.volumes import VolumeService
from tether.runtime.images import ImageStore
from tether.store.sqlite import SqliteStore
from tether.testing.store import MemoryStore


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_root_layout_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        root = tmp_path / "lib" / "tether"
        make_data_root(root)
        images = ImageStore(root / "images")
        table: Any = SimpleNamespace(containers={})
        volumes = VolumeService(MemoryStore(), root, table)
        asyncio.run(volumes.load())
    finally:
        os.umask(old)
    assert mode(root) == 0o710
    assert mode(root / "containers") == 0o710
    assert mode(images.root) == 0o710
    for sub in ("layers", "l", "m", "containers"):
        assert mode(images.root / sub) == 0o710, sub
    for sub in ("images", "tmp"):
        assert mode(images.root / sub) == 0o700, sub
    assert mode(root / "volumes") == 0o701


def test_sqlite_store_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    path.write_bytes(b"")
    os.chmod(path, 0o644)  # a store made by an older version is tightened on open

    async def main() -> None:
        store = SqliteStore(path)
        try:
            await store.put("a", {"v": 1})
            for suffix in ("", "-wal", "-shm"):
                f = Path(f"{path}{suffix}")
                if f.exists():
                    assert mode(f) == 0o600, suffix
        finally:
            await store.close()

    old = os.umask(0o022)
    try:
        asyncio.run(main())
    finally:
        os.umask(old)
    assert mode(path) == 0o600
