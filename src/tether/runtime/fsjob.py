"""The helper process behind ``docker cp``/``export`` (``python -m tether.runtime.fsjob OP
SPEC``): it enters a container's root filesystem, then reads or writes it with plain file
calls, so every symlink and ``..`` resolves inside the container's root, as the kernel
resolves them for the container itself.

How it enters (SPEC, JSON): a running container's root is ``/proc/<pid>/root`` (its monitor's
mount namespace, with its volumes and bind mounts); a stopped container's is its overlay,
mounted here in a private mount namespace (read-only with the upper layer as the top lower
one, or read-write for ``put``), which goes away with this process. Then ``chroot``.

Operations: ``fill`` (a tar on stdin unpacked into the host folder SPEC's ``root``,
chrooted there: a volume's copy-up), ``stat PATH`` (JSON on stdout), ``get PATH`` (a tar on
stdout, Docker's rebasing), ``put PATH`` (a tar on stdin extracted into the directory
PATH), ``export`` (a tar of the whole root). Errors: one JSON line on stderr, exit 2 (no
such file), 3 (not a directory), 4 (refused), 1 (anything else).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import grp  # noqa: F401 - tarfile needs them after the chroot
import json
import os
import posixpath
import pwd  # noqa: F401
import shutil
import stat
import sys
import tarfile
from typing import IO, Any

_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18

# Go's os.FileMode type bits (what Docker's X-Docker-Container-Path-Stat carries)
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHAR, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class JobError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def go_mode(st_mode: int) -> int:
    """A ``st_mode`` as Go's ``os.FileMode``."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHAR}.get(kind, 0)  # fmt: skip
    if st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def abs_path(path: str) -> str:
    """Docker's PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)."""
    clean = "/" + posixpath.normpath("/" + path).lstrip("/")  # POSIX keeps a leading "//"
    if path.endswith("/.") or path == ".":
        return clean.rstrip("/") + "/."
    if path.endswith("/") and not clean.endswith("/"):
        return clean + "/"
    return clean


def resolved(path: str) -> str:
    """Docker's ResolvePath: the directory part resolved, the last element kept as given."""
    absolute = abs_path(path)
    head, base = posixpath.split(absolute)
    return posixpath.join(os.path.realpath(head), base) if base else os.path.realpath(head) + "/"


def do_stat(path: str) -> dict[str, Any]:
    absolute = abs_path(path)
    target = resolved(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise JobError(2, "not found") from None
    except NotADirectoryError:
        raise JobError(2, "not found") from None
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.path.realpath(absolute)
    mtime = dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, dt.UTC)
    return {
        "name": posixpath.basename(absolute.rstrip("/")) or "/",
        "size": st.st_size,
        "mode": go_mode(st.st_mode),
        "mtime": mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "linkTarget": link,
    }


def _split_dir_entry(path: str) -> tuple[str, str]:
    """Docker's SplitPathDirEntry."""
    clean = posixpath.normpath(path)
    if path.endswith("/.") or path == ".":
        clean = clean.rstrip("/") + "/."
    return posixpath.dirname(clean) or "/", posixpath.basename(clean)


def do_get(path: str, out: IO[bytes]) -> None:
    do_stat(path)  # 404 before any byte
    absolute = abs_path(path)
    src_dir, src_base = _split_dir_entry(resolved(path))
    rebase = posixpath.basename(absolute) if absolute != "/" else "/"
    os.chdir(src_dir)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, src_base, rebase)


def _add(tar: tarfile.TarFile, name: str, arcname: str) -> None:
    """``name`` and everything below it, without following symlinks or crossing into the
    pseudo filesystems."""
    info = tar.gettarinfo(name, arcname)
    if info is None:  # a socket: tar has no type for it
        return
    if info.isreg():
        with open(name, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)
    if info.isdir():
        for entry in sorted(os.listdir(name)):
            _add(tar, posixpath.join(name, entry), posixpath.join(arcname, entry))


def do_export(out: IO[bytes]) -> None:
    os.chdir("/")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(".")):
            _add(tar, entry, entry)


def do_put(path: str, no_overwrite: bool, src: IO[bytes]) -> None:
    dest = os.path.realpath(abs_path(path))
    try:
        st = os.lstat(dest)
    except (FileNotFoundError, NotADirectoryError):
        raise JobError(2, "not found") from None
    if not stat.S_ISDIR(st.st_mode):
        raise JobError(3, "extraction point is not a directory")
    os.chdir(dest)
    with tarfile.open(fileobj=src, mode="r|*") as tar:
        for member in tar:
            _extract_one(tar, member, dest, no_overwrite)


def _extract_one(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str, no_overwrite: bool
) -> None:
    name = posixpath.normpath("/" + member.name).lstrip("/")
    if not name or name == ".":
        return
    if posixpath.normpath(member.name).startswith("../"):
        raise JobError(4, f"{member.name!r} is outside of {dest!r}")
    member.name = name
    target = posixpath.join(dest, name)
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        st = None
    if st is not None:
        is_dir = stat.S_ISDIR(st.st_mode)
        if no_overwrite and is_dir and not member.isdir():
            raise JobError(4, f'cannot overwrite directory "{target}" with non-directory "{dest}"')
        if no_overwrite and not is_dir and member.isdir():
            raise JobError(4, f'cannot overwrite non-directory "{target}" with directory "{dest}"')
        if not (is_dir and member.isdir()):
            if is_dir:
                shutil.rmtree(name)
            else:
                os.unlink(name)
    tar.extract(member, ".", set_attrs=True, numeric_owner=True)


def do_fill(src: IO[bytes]) -> None:
    """Unpack a tar of a folder (``get PATH/.``) into the root (a volume's folder, chrooted
    there): the ``.`` entry's owner and mode go to the root itself (Docker's copy-up)."""
    os.chdir("/")
    with tarfile.open(fileobj=src, mode="r|*") as tar:
        for member in tar:
            if posixpath.normpath(member.name) in (".", "/", ""):
                os.chown("/", member.uid, member.gid)
                os.chmod("/", member.mode & 0o7777)
                continue
            _extract_one(tar, member, "/", False)


# -- entering the root ------------------------------------------------------------------------


def _bind(libc: Any, source: str, root: str, dest: str, ro: bool, rw: bool) -> None:
    """Mount a volume or bind over a stopped container's root (mounted at ``root``), as
    Docker does for ``cp``. A destination reached through a symlink is left alone (it could
    lead out of the root); a missing one is made only when the root is writable."""
    target = posixpath.join(root, posixpath.normpath("/" + dest).lstrip("/"))
    if not os.path.lexists(target):
        if not rw or not os.path.exists(source):
            return
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(posixpath.dirname(target), exist_ok=True)
            open(target, "a").close()
    if os.path.realpath(target) != target:
        return
    flags = _MS_BIND | _MS_REC
    if libc.mount(os.fsencode(source), os.fsencode(target), None, flags, None) != 0:
        raise JobError(1, f"mounting {dest}: {os.strerror(ctypes.get_errno())}")
    if ro and libc.mount(None, os.fsencode(target), None, flags | _MS_REMOUNT | _MS_RDONLY, None):
        raise JobError(1, f"mounting {dest} read-only: {os.strerror(ctypes.get_errno())}")


def enter(spec: dict[str, Any], rw: bool) -> None:
    if spec.get("root"):  # a host folder (a volume's): chroot there
        os.chroot(str(spec["root"]))
        os.chdir("/")
        return
    pid = spec.get("pid")
    if pid:
        os.chroot(f"/proc/{int(pid)}/root")
        os.chdir("/")
        return
    ov = spec.get("overlay")
    if not ov:
        raise JobError(1, "the container has no root filesystem")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise JobError(1, f"unshare: {os.strerror(ctypes.get_errno())}")
    if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise JobError(1, f"mount private: {os.strerror(ctypes.get_errno())}")
    os.chdir(ov["cwd"])
    if rw:
        opts = f"lowerdir={':'.join(ov['lower'])},upperdir={ov['upper']},workdir={ov['work']}"
        flags = 0
    else:
        opts = f"lowerdir={':'.join([ov['upper'], *ov['lower']])}"
        flags = _MS_RDONLY
    target = os.fsencode(ov["target"])
    if libc.mount(b"overlay", target, b"overlay", flags, opts.encode()) != 0:
        raise JobError(1, f"mounting the root filesystem: {os.strerror(ctypes.get_errno())}")
    for source, dest, ro in spec.get("binds") or []:
        _bind(libc, str(source), str(ov["target"]), str(dest), bool(ro), rw)
    os.chroot(ov["target"])
    os.chdir("/")


def main(argv: list[str]) -> int:
    op, spec = argv[0], json.loads(argv[1])
    try:
        enter(spec, rw=op == "put")
        if op == "stat":
            sys.stdout.write(json.dumps(do_stat(spec["path"])))
        elif op == "get":
            do_get(spec["path"], sys.stdout.buffer)
        elif op == "put":
            do_put(spec["path"], bool(spec.get("no_overwrite")), sys.stdin.buffer)
        elif op == "fill":
            do_fill(sys.stdin.buffer)
        elif op == "export":
            do_export(sys.stdout.buffer)
        else:
            raise JobError(1, f"unknown operation {op}")
    except JobError as exc:
        sys.stderr.write(json.dumps({"code": exc.code, "message": exc.message}) + "\n")
        return exc.code
    except (OSError, tarfile.TarError) as exc:
        sys.stderr.write(json.dumps({"code": 1, "message": str(exc)}) + "\n")
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
