"""An unpacked layer directory back to a layer tar (what ``docker save`` puts in ``layer.tar``).

The reverse of ``runtime.layers``: overlayfs whiteouts become AUFS-style ones again, as
Docker's overlay2 driver writes them (a 0/0 character device ``NAME`` becomes an empty
regular file ``.wh.NAME``, mode 0600; a directory with ``trusted.overlay.opaque=y``
gets an empty ``.wh..wh..opq`` file after it). Entries come in lexical order, depth
first, without the root itself; hard links to a file seen before are link entries;
the only xattr kept is ``security.capability`` (as Docker); sockets are left out.

The tar's size is known before its first byte (:attr:`LayerTar.size`), so it can be a
member of an outer tar that is streamed. Blocking code: callers run it in an executor.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from tether.runtime.layers import OPAQUE_MARKER, WHITEOUT_PREFIX

BLOCK = 512
_CHUNK = 1 << 20
_KEEP_XATTRS = ("security.capability",)


def padding(size: int) -> bytes:
    """Zeros that fill a tar member of ``size`` bytes up to a 512-byte block."""
    return b"\0" * (-size % BLOCK)


def header(info: tarfile.TarInfo) -> bytes:
    """The tar header block(s) of a member (PAX where needed)."""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    return info


def _xattrs(path: str, info: tarfile.TarInfo) -> None:
    for key in _KEEP_XATTRS:
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError:
            continue
        raw = value.decode("utf-8", "surrogateescape")
        info.pax_headers = {**info.pax_headers, f"SCHILY.xattr.{key}": raw}


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


class LayerTar:
    """The tar of one unpacked layer directory: its members, its size, its bytes."""

    def __init__(self, root: Path, exclude: frozenset[str] = frozenset()) -> None:
        self.root = root
        self._exclude = exclude  # absolute paths ("/etc/hosts") left out, with what is below
        # (header bytes, file to copy or None, payload size)
        self._members: list[tuple[bytes, str | None, int]] = []
        self._inodes: dict[tuple[int, int], str] = {}
        self._walk()
        self.size = sum(len(h) + n + len(padding(n)) for h, _, n in self._members) + 2 * BLOCK

    def _walk(self) -> None:
        def listing(dirpath: str) -> Iterator[str]:
            with os.scandir(dirpath) as it:
                return iter(sorted(e.name for e in it))

        stack = [(str(self.root), "", listing(str(self.root)))]
        while stack:  # depth first, in lexical order (Go's filepath.Walk)
            dirpath, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            path = os.path.join(dirpath, name)
            if self._add(path, prefix + name):
                stack.append((path, prefix + name + "/", listing(path)))

    def _add(self, path: str, name: str) -> bool:
        """Add the member(s) for one entry; True when it is a directory to walk into."""
        if "/" + name in self._exclude:
            return False
        st = os.lstat(path)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # an overlayfs whiteout
            dirname, _, base = name.rpartition("/")
            info = _info((dirname + "/" if dirname else "") + WHITEOUT_PREFIX + base, st)
            info.mode = 0o600
            self._members.append((header(info), None, 0))
            return False
        info = _info(name, st)
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            _xattrs(path, info)
            self._members.append((header(info), None, 0))
            if _is_opaque(path):
                marker = _info(f"{name}/{OPAQUE_MARKER}", st)
                marker.mode = info.mode & 0o777
                self._members.append((header(marker), None, 0))
            return True
        if stat.S_ISREG(mode):
            first = self._inodes.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self._members.append((header(info), None, 0))
                return False
            self._inodes[(st.st_dev, st.st_ino)] = name
            info.size = st.st_size
            _xattrs(path, info)
            self._members.append((header(info), path, st.st_size))
            return False
        if stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return False  # sockets
        self._members.append((header(info), None, 0))
        return False

    def chunks(self) -> Iterator[bytes]:
        """The tar's bytes, exactly :attr:`size` of them (a file that shrank is zero-filled)."""
        for head, path, size in self._members:
            yield head
            if path is not None:
                yield from _file_chunks(path, size)
                yield padding(size)
        yield b"\0" * (2 * BLOCK)


def _file_chunks(path: str, size: int) -> Iterator[bytes]:
    left = size
    with open(path, "rb") as f:
        while left > 0:
            data = f.read(min(_CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    while left > 0:
        fill = min(_CHUNK, left)
        left -= fill
        yield b"\0" * fill
