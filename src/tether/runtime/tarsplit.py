"""A layer's tar as it was imported, kept without its file data (as Docker's tar-split).

``docker save`` must give back the layer tars an image was made of, byte for byte: the
image id is the digest of a config that names each tar's digest (DiffID). tether keeps
layers unpacked (overlayfs lower directories), so at unpack it also keeps the *skeleton*
of the tar: every byte of the uncompressed stream except the data of plain regular files
(headers, PAX records, padding, the end blocks, sparse and other data kept as they are),
and an index of the cuts: ``[[skeleton offset, length, path in the layer], ...]``.

::

    layers/<hex>/            the unpacked layer
    layers/<hex>.split       the skeleton
    layers/<hex>.split.json  the index

``SplitTar`` puts the tar together again from them for ``docker save`` when every file the
index names is still a regular file of that size inside the layer (else the caller makes a
new tar, as before). A layer whose tar writes one path twice (or removes a file it wrote)
keeps no skeleton: its files could not give the first contents back.

Blocking code: callers run it in an executor.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20
SUFFIX = ".split"
INDEX_SUFFIX = ".split.json"


class SplitRecorder:
    """Collects the cuts during an unpack: ``cut`` for a regular file's data, ``touch``
    for every path a member writes (a second write of a cut path spoils the skeleton)."""

    def __init__(self) -> None:
        self.cuts: list[tuple[int, int, str]] = []  # (offset in the stream, length, path)
        self._cut_paths: set[str] = set()
        self._seen: set[str] = set()
        self.ok = True

    def touch(self, path: str) -> None:
        if path in self._cut_paths:
            self.ok = False
        self._seen.add(path)

    def cut(self, offset: int, length: int, path: str) -> None:
        if length > 0:
            self.cuts.append((offset, length, path))
            self._cut_paths.add(path)

    def write(self, raw: IO[bytes], size: int, skeleton: Path, index: Path) -> bool:
        """From the whole stream in ``raw`` (``size`` bytes), write the skeleton and its
        index; False (nothing written) when this layer cannot have one."""
        if not self.ok:
            return False
        entries: list[list[int | str]] = []
        pos = out_pos = 0
        with open(skeleton, "wb") as out:
            for offset, length, path in sorted(self.cuts):
                if offset < pos or offset + length > size:
                    break  # not what a tar reader reports: keep no skeleton
                out_pos += _copy(raw, pos, offset - pos, out)
                entries.append([out_pos, length, path])
                pos = offset + length
            else:
                _copy(raw, pos, size - pos, out)
                index.write_text(json.dumps(entries, separators=(",", ":")))
                return True
        skeleton.unlink(missing_ok=True)
        return False


def _copy(raw: IO[bytes], start: int, length: int, out: IO[bytes]) -> int:
    raw.seek(start)
    left = length
    while left > 0:
        chunk = raw.read(min(_CHUNK, left))
        if not chunk:
            raise OSError("the raw layer stream is shorter than read")
        out.write(chunk)
        left -= len(chunk)
    return length


def paths(layer: Path) -> tuple[Path, Path]:
    """The skeleton and index files of the layer directory ``layer``."""
    return layer.with_name(layer.name + SUFFIX), layer.with_name(layer.name + INDEX_SUFFIX)


class SplitTar:
    """The original tar of an unpacked layer, or None from ``open`` when it cannot be made."""

    def __init__(self, layer: Path, skeleton: Path, entries: list[tuple[int, int, Path]]) -> None:
        self.layer = layer
        self.skeleton = skeleton
        self.entries = entries
        self.size = skeleton.stat().st_size + sum(length for _o, length, _p in entries)

    @classmethod
    def open(cls, layer: Path) -> SplitTar | None:
        skeleton, index = paths(layer)
        try:
            raw = json.loads(index.read_bytes())
            root = os.path.realpath(layer)
            entries = []
            for offset, length, rel in raw:
                path = Path(root, rel)
                st = os.lstat(path)
                real = os.path.realpath(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size != length:
                    return None
                if not real.startswith(root + os.sep):
                    return None
                entries.append((int(offset), int(length), path))
            return cls(layer, skeleton, entries)
        except (OSError, ValueError, TypeError):
            return None

    def chunks(self) -> Iterator[bytes]:
        """The tar's bytes, exactly :attr:`size` of them."""
        with open(self.skeleton, "rb") as skel:
            pos = 0
            for offset, length, path in self.entries:
                yield from _read(skel, offset - pos)
                pos = offset
                with open(path, "rb") as f:
                    got = 0
                    for chunk in _read(f, length):
                        got += len(chunk)
                        yield chunk
                    if got < length:  # shrank since open(): keep the size promised
                        yield b"\0" * (length - got)
            yield from _read(skel, -1)


def _read(f: IO[bytes], length: int) -> Iterator[bytes]:
    """Up to ``length`` bytes of ``f`` (-1: to its end), in chunks."""
    left = length
    while left != 0:
        chunk = f.read(_CHUNK if left < 0 else min(_CHUNK, left))
        if not chunk:
            return
        yield chunk
        if left > 0:
            left -= len(chunk)


def remove(layer: Path) -> None:
    for p in paths(layer):
        p.unlink(missing_ok=True)
