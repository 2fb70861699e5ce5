"""``docker diff`` from an overlay upper layer: Docker 20.10's ``archive.OverlayChanges``.

Walk the upper directory in name order; a whiteout (character device 0/0) or an opaque
directory (``trusted.overlay.opaque=y``) is a deletion (Kind 2) of its path; anything else
is an addition (1) unless it exists in a lower layer, then a modification (0) -- except a
directory whose size, mode and mtime equal the lower one's, which is left out. The parent
of an addition or deletion is listed as modified once. Paths Docker keeps in a container's
init layer (the mount points of ``/etc/hosts`` and friends, ``/dev``, ``/proc``...) are
left out: on Docker they never reach the container's own layer.
"""

from __future__ import annotations

import os
import stat
from typing import Any

MODIFIED, ADDED, DELETED = 0, 1, 2

#: Docker's init layer (daemon/initlayer + the container's mount points)
INIT_PATHS = frozenset({
    "/dev", "/dev/pts", "/dev/shm", "/dev/console", "/dev/mqueue", "/proc", "/sys",
    "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/.dockerenv",
})  # fmt: skip


def _deleted(full: str, st: os.stat_result) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    if stat.S_ISDIR(st.st_mode):
        try:
            return os.getxattr(full, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
        except OSError:
            return False
    return False


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        a.st_size == b.st_size
        and a.st_mode == b.st_mode
        and int(a.st_mtime) == int(b.st_mtime)  # Docker's sameFsTime: seconds, then ns
        and (a.st_mtime_ns == b.st_mtime_ns or a.st_mtime_ns % 1_000_000_000 == 0
             or b.st_mtime_ns % 1_000_000_000 == 0)
    )  # fmt: skip


def _kind(path: str, st: os.stat_result, lowers: list[str]) -> int | None:
    for layer in lowers:
        try:
            low = os.stat(layer + path)  # Docker's os.Stat: follows symlinks
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(low.st_mode) and stat.S_ISDIR(st.st_mode) and _same_dir(st, low):
            return None
        return MODIFIED
    return ADDED


def overlay_changes(lowers: list[str], upper: str) -> list[dict[str, Any]]:
    """``[{"Path": ..., "Kind": ...}]`` in Docker's order."""
    changes: list[dict[str, Any]] = []
    changed_dirs: set[str] = set()

    def walk(rel: str) -> None:
        try:
            names = sorted(os.listdir(upper + rel if rel else upper))
        except OSError:
            return
        for name in names:
            path = f"{rel}/{name}"
            full = upper + path
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if path in INIT_PATHS:
                continue
            kind = DELETED if _deleted(full, st) else _kind(path, st, lowers)
            is_dir = stat.S_ISDIR(st.st_mode)
            if kind is not None:
                if is_dir:
                    changed_dirs.add(path)
                if kind in (ADDED, DELETED):
                    parent = os.path.dirname(path)
                    if parent not in changed_dirs and parent != "/":
                        changes.append({"Path": parent, "Kind": MODIFIED})
                        changed_dirs.add(parent)
                changes.append({"Path": path, "Kind": kind})
            if is_dir:
                walk(path)

    walk("")
    return _drop_init_only(changes, lowers, upper)


def _drop_init_only(
    changes: list[dict[str, Any]], lowers: list[str], upper: str
) -> list[dict[str, Any]]:
    """A directory changed only because an init-layer path appeared in it (``/etc`` when
    ``/etc/hosts`` was made as a mount point) is not a change on Docker."""
    listed = {c["Path"] for c in changes}
    out = []
    for c in changes:
        path = c["Path"]
        if c["Kind"] == MODIFIED and any(p.startswith(path + "/") for p in INIT_PATHS):
            below = [p for p in listed if p.startswith(path + "/")]
            if not below and _only_init(upper + path, path):
                continue
        out.append(c)
    return out


def _only_init(full: str, path: str) -> bool:
    try:
        names = os.listdir(full)
    except OSError:
        return False
    return all(f"{path}/{n}" in INIT_PATHS for n in names)
