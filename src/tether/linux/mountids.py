"""Which mounts the calling thread's mount namespace holds, without reading ``mountinfo``.

The runtime's base mount namespace (:mod:`tether.linux.nsthread`) must be made again when
the host's mounts change, other than overlay roots and namespace files (other engines'
containers add those all the time). Reading ``/proc/self/mountinfo`` to tell which kind of
mount changed costs the kernel a formatted line per mount, and an overlay's line lists its
layer paths: with Docker's 210 containers on the machine, one read took 27 ms and grew with
every container (bench/FINDINGS.md).

Linux 6.8 has ``listmount(2)`` (the ids of a namespace's mounts, no text) and
``statmount(2)`` (one mount's superblock facts): this module lists the ids (~0.4 ms for 450
mounts) and asks ``statmount`` for the filesystem magic of ids it has not seen (~16 µs each;
mount ids are 64-bit and never reused, so the answer is cached for the id's life).
:meth:`MountIds.kept` returns None where the calls do not exist; the caller then falls back to
``mountinfo``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import struct

# Both calls have the same number on every architecture (added after the syscall tables
# were unified).
_SYS_STATMOUNT = 457
_SYS_LISTMOUNT = 458
_LSMT_ROOT = 0xFFFFFFFFFFFFFFFF  # list from the namespace's root
_STATMOUNT_SB_BASIC = 0x1
_REQ = struct.Struct("<IIQQ")  # struct mnt_id_req, version 0: size, spare, mnt_id, param
_SB_MAGIC_OFFSET = 24  # struct statmount: size u32, mnt_opts u32, mask u64, dev u32 x2, magic
_STATMOUNT_SIZE = 512  # the fixed part of struct statmount; no strings are asked for
_BATCH = 1024

OVERLAYFS_MAGIC = 0x794C7630
NSFS_MAGIC = 0x6E736673
FOREIGN_MAGICS = frozenset({OVERLAYFS_MAGIC, NSFS_MAGIC})

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class MountIds:
    """The non-foreign mounts of the calling thread's mount namespace, as a set of ids.

    "Foreign" are the magics in ``foreign`` (overlay roots and namespace files by default).
    One instance per thread (the cache is not locked).
    """

    def __init__(self, foreign: frozenset[int] = FOREIGN_MAGICS) -> None:
        self.foreign = foreign
        self._is_foreign: dict[int, bool] = {}
        self._ids = (ctypes.c_uint64 * _BATCH)()
        self._stat = ctypes.create_string_buffer(_STATMOUNT_SIZE)
        self.supported: bool | None = None  # None until the first call says

    def kept(self) -> frozenset[int] | None:
        """Ids of the namespace's mounts that are not foreign; None without ``listmount``."""
        if self.supported is False:
            return None
        ids = self._list()
        if ids is None:
            self.supported = False
            return None
        self.supported = True
        seen: dict[int, bool] = {}
        for mid in ids:
            foreign = self._is_foreign.get(mid)
            if foreign is None:
                foreign = self._magic(mid) in self.foreign
            seen[mid] = foreign
        self._is_foreign = seen  # ids that went away leave the cache
        return frozenset(mid for mid, foreign in seen.items() if not foreign)

    def _list(self) -> list[int] | None:
        out: list[int] = []
        last = 0
        while True:
            req = _REQ.pack(_REQ.size, 0, _LSMT_ROOT, last)
            n = _syscall(_SYS_LISTMOUNT, ctypes.c_char_p(req), self._ids, _BATCH, 0)
            if n < 0:
                err = ctypes.get_errno()
                if err in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                    return None
                raise OSError(err, f"listmount: {errno.errorcode.get(err, err)}")
            out.extend(self._ids[:n])
            if n < _BATCH:
                return out
            last = out[-1]

    def _magic(self, mid: int) -> int:
        """The superblock magic of mount ``mid``; 0 when it went away meanwhile."""
        req = _REQ.pack(_REQ.size, 0, mid, _STATMOUNT_SB_BASIC)
        rc = _syscall(_SYS_STATMOUNT, ctypes.c_char_p(req), self._stat, _STATMOUNT_SIZE, 0)
        if rc < 0:
            return 0
        return int(struct.unpack_from("<Q", self._stat.raw, _SB_MAGIC_OFFSET)[0])
