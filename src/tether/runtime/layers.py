"""Layer tarballs: safe extraction into a directory, overlayfs-style whiteouts, digests.

Blocking code: callers run these functions in an executor.

A layer is unpacked into its own directory and used as an overlayfs ``lowerdir``, so
the OCI whiteouts of a tar are turned into overlayfs' native ones: ``.wh.NAME`` becomes a
0/0 character device ``NAME`` and ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on
its directory (what containerd's overlay snapshotter does).

Safety: member names are normalised and may not leave the destination ("..", absolute
paths), nothing is written through a symlink (every parent is checked with ``lstat``),
hard links must point inside the destination. Sparse members (GNU and PAX formats) are
stored sparse: holes are seeked over, never written, so a small archive cannot fill the
disk (Docker writes them expanded). Devices, fifos, symlinks, ownership, permission bits
(setuid included), mtimes and xattrs are kept when running as root.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import IO, cast

from tether.errors import BadRequest
from tether.runtime import tarsplit

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_CHUNK = 1 << 20


class DigestReader:
    """A file-like reader that transparently gunzips its source and hashes what it returns.

    ``digest`` is the sha256 of the *uncompressed* stream (a layer's DiffID).
    """

    def __init__(self, raw: IO[bytes], sink: IO[bytes] | None = None) -> None:
        self._raw = raw
        self._sink = sink  # gets every uncompressed byte returned (tarsplit)
        head = raw.read(2)
        self._pending = b""
        self._zlib: zlib._Decompress | None = None
        if head == b"\x1f\x8b":
            self._zlib = zlib.decompressobj(wbits=47)
            self._pending = self._zlib.decompress(head)
        else:
            self._pending = head
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        want = _CHUNK if n is None or n < 0 else n
        while len(self._pending) < want:
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                if self._zlib is not None:
                    self._pending += self._zlib.flush()
                    self._zlib = None
                break
            if self._zlib is not None:
                self._pending += self._zlib.decompress(chunk)
                if self._zlib.eof:
                    # Concatenated gzip members are legal: start a new decoder on the rest.
                    rest = self._zlib.unused_data
                    self._zlib = zlib.decompressobj(wbits=47)
                    if rest:
                        self._pending += self._zlib.decompress(rest)
            else:
                self._pending += chunk
        out, self._pending = self._pending[:want], self._pending[want:]
        self._hash.update(out)
        self.size += len(out)
        if self._sink is not None:
            self._sink.write(out)
        return out

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def extract_layer(stream: IO[bytes], dest: Path) -> tuple[str, int]:
    """Unpack a (maybe gzip-compressed) layer tar from ``stream`` into ``dest``.

    Returns ``(diff_id, size)``: the sha256 of the uncompressed tar and the sum of the
    regular files' sizes. Raises ``BadRequest`` on a malformed or hostile archive.
    """
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    extractor = _Extractor(dest)
    skeleton, index = tarsplit.paths(dest)
    with tempfile.TemporaryFile(dir=dest.parent) as raw:
        reader = DigestReader(stream, sink=raw)
        try:
            with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|") as tar:
                for member in tar:
                    extractor.add(tar, member)
        except tarfile.TarError as exc:
            raise BadRequest(f"invalid tar archive: {exc}") from None
        reader.drain()
        extractor.finish()
        extractor.split.write(raw, reader.size, skeleton, index)  # for docker save
    return reader.digest, extractor.size


def _write_sparse(tar: tarfile.TarFile, m: tarfile.TarInfo, out: IO[bytes]) -> None:
    """Write a sparse member (GNU ``S`` or PAX ``GNU.sparse.*``) sparse: only its data
    blocks are written, holes are seeked over, so a small archive stays small on disk.

    The blocks' data follow each other in the archive from ``offset_data`` (what tarfile's
    own ``extract`` does); every block must lie inside the file's real size.
    """
    blocks = cast(list[tuple[int, int]], m.sparse)  # typeshed says list[int]: it is not
    src = tar.fileobj
    assert src is not None
    src.seek(m.offset_data)
    for offset, length in blocks:
        if offset < 0 or length < 0 or offset + length > m.size:
            raise BadRequest(f"invalid tar member {m.name!r}: sparse map outside the file")
        out.seek(offset)
        left = length
        while left:
            chunk = src.read(min(left, _CHUNK))
            if not chunk:
                raise BadRequest(f"invalid tar member {m.name!r}: unexpected end of data")
            out.write(chunk)
            left -= len(chunk)
    out.truncate(m.size)


def _clean_name(name: str) -> list[str]:
    """Return the path components of a member name, refusing anything that escapes."""
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise BadRequest(f"invalid tar member {name!r}: path escapes the archive root")
        parts.append(part)
    return parts


class _Extractor:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.root = os.geteuid() == 0
        self.size = 0
        self._dirs: list[tuple[Path, tarfile.TarInfo]] = []
        self._safe_dirs: set[Path] = {dest}
        self.split = tarsplit.SplitRecorder()

    def _parent(self, parts: list[str]) -> Path:
        cur = self.dest
        for part in parts:
            cur = cur / part
            if cur in self._safe_dirs:
                continue
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                os.mkdir(cur, 0o755)
            else:
                if not stat.S_ISDIR(st.st_mode):
                    raise BadRequest(
                        f"invalid tar member under {'/'.join(parts)!r}: parent is not a directory"
                    )
            self._safe_dirs.add(cur)
        return cur

    def _clear(self, path: Path, keep_dir: bool) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
            self._safe_dirs = {d for d in self._safe_dirs if not d.is_relative_to(path)}
        else:
            os.unlink(path)

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _clean_name(m.name)
        if not parts:
            if m.isdir():
                self._dirs.append((self.dest, m))
            return
        parent = self._parent(parts[:-1])
        base = parts[-1]
        if base == OPAQUE_MARKER:
            self._setxattr(parent, "trusted.overlay.opaque", b"y")
            return
        if base.startswith(WHITEOUT_PREFIX):
            self.split.touch("/".join([*parts[:-1], base[len(WHITEOUT_PREFIX) :]]))
            self._whiteout(parent / base[len(WHITEOUT_PREFIX) :], m)
            return
        self.split.touch("/".join(parts))
        if m.isreg() and m.sparse is None:
            self.split.cut(m.offset_data, m.size, "/".join(parts))
        path = parent / base
        if m.isdir():
            self._clear(path, keep_dir=True)
            if not path.exists():
                os.mkdir(path, 0o700)
            self._safe_dirs.add(path)
            self._dirs.append((path, m))
            return
        self._clear(path, keep_dir=False)
        if m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                if m.sparse is not None:
                    _write_sparse(tar, m, out)
                else:
                    src = tar.extractfile(m)
                    assert src is not None
                    shutil.copyfileobj(src, out, _CHUNK)
            self.size += m.size
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            os.link(self._link_target(m), path, follow_symlinks=False)
            return  # shares the inode (and metadata) of its target
        elif m.ischr() or m.isblk():
            if not self.root:
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            return
        self._meta(path, m)

    def _whiteout(self, target: Path, m: tarfile.TarInfo) -> None:
        """An AUFS-style ``.wh.NAME`` member: NAME becomes an overlayfs whiteout (0/0)."""
        self._clear(target, keep_dir=False)
        if self.root:
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            # the whiteout keeps its member's time: a saved layer comes back byte for byte
            with contextlib.suppress(OSError, OverflowError, ValueError):
                os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)

    def _link_target(self, m: tarfile.TarInfo) -> Path:
        """A hard link's target, inside the layer and not a directory (BadRequest else)."""
        lparts = _clean_name(m.linkname)
        if not lparts:
            raise BadRequest(f"invalid hard link {m.name!r} -> {m.linkname!r}")
        target = self._parent(lparts[:-1]) / lparts[-1]
        try:
            target_mode = os.lstat(target).st_mode
        except FileNotFoundError:
            raise BadRequest(f"invalid hard link {m.name!r}: no {m.linkname!r}") from None
        if stat.S_ISDIR(target_mode):
            raise BadRequest(f"invalid hard link {m.name!r} to a directory")
        return target

    def _meta(self, path: Path, m: tarfile.TarInfo) -> None:
        link = m.issym()
        if self.root:
            try:
                os.chown(path, m.uid, m.gid, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EPERM:
                    raise
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                raw = value.encode("utf-8", "surrogateescape")
                self._setxattr(path, key[len("SCHILY.xattr.") :], raw, follow=not link)
        if not link:
            os.chmod(path, m.mode & 0o7777)
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def _setxattr(self, path: Path, name: str, value: bytes, follow: bool = False) -> None:
        if not self.root:
            return
        with contextlib.suppress(OSError):
            os.setxattr(path, name, value, follow_symlinks=follow)

    def finish(self) -> None:
        # Directory modes and mtimes last, deepest first: a read-only directory must not
        # stop its own content from being written.
        for path, m in sorted(self._dirs, key=lambda d: len(d[0].parts), reverse=True):
            self._meta(path, m)


def tree_size(path: Path) -> int:
    """Sum of the sizes of the regular files below ``path`` (not following symlinks)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
