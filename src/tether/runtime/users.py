"""A user spec (``postgres``, ``1000:1000``, ``user:group``) resolved against a container's
``/etc/passwd`` and ``/etc/group``, as runc's ``libcontainer/user.GetExecUser`` does for
Docker (``docker exec -u``, ``docker run -u``), with its texts.

``resolve`` is pure (file texts in, numbers out); ``read_in_root`` reads a file of a
container's root without following its symlinks out of that root (``openat2`` with
``RESOLVE_IN_ROOT``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from tether.errors import BadRequest

MAX_ID = 2**31 - 1
NO_PASSWD = "no matching entries in passwd file"
NO_GROUP = "no matching entries in group file"


@dataclass(frozen=True)
class ExecUser:
    uid: int = 0
    gid: int = 0
    sgids: tuple[int, ...] = field(default_factory=tuple)
    home: str = "/"

    @property
    def spec(self) -> str:
        """``uid:gid`` as runc's ``--user`` takes it."""
        return f"{self.uid}:{self.gid}"


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _int(text: str) -> int | None:
    text = text.strip()
    if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        return None
    return int(text)


def parse_passwd(text: str) -> list[_Passwd]:
    out: list[_Passwd] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = (line.split(":") + [""] * 7)[:7]
        out.append(_Passwd(parts[0], _int(parts[2]) or 0, _int(parts[3]) or 0, parts[5]))
    return out


def parse_group(text: str) -> list[_Group]:
    out: list[_Group] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = (line.split(":") + [""] * 4)[:4]
        members = tuple(m for m in parts[3].split(",") if m)
        out.append(_Group(parts[0], _int(parts[2]) or 0, members))
    return out


def _check_range(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise BadRequest(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve(spec: str, passwd: str | None, group: str | None) -> ExecUser:
    """``spec`` as runc's ``GetExecUser`` with Docker's defaults (uid 0, gid 0, home /).

    ``passwd``/``group`` are the files' texts, None when the file is missing. Raises
    ``BadRequest`` with runc's text (``unable to find user X: no matching entries in
    passwd file``).
    """
    user_arg, _, group_arg = spec.partition(":")
    uid_arg, gid_arg = _int(user_arg), _int(group_arg)
    uid, gid, home, matched = 0, 0, "/", ""
    users = [
        u
        for u in parse_passwd(passwd or "")
        if (u.uid == 0 if not user_arg else u.uid == uid_arg if uid_arg is not None
            else u.name == user_arg)
    ]  # fmt: skip
    if users:
        matched, uid, gid, home = users[0].name, users[0].uid, users[0].gid, users[0].home
    elif user_arg:
        if uid_arg is None:
            raise BadRequest(f"unable to find user {user_arg}: {NO_PASSWD}")
        uid = _check_range(uid_arg)
    sgids: tuple[int, ...] = ()
    if group_arg or matched:
        groups = [
            g
            for g in parse_group(group or "")
            if (matched in g.members if not group_arg else g.gid == gid_arg
                if gid_arg is not None else g.name == group_arg)
        ]  # fmt: skip
        if group_arg:
            if groups:
                gid = groups[0].gid
            elif gid_arg is None:
                raise BadRequest(f"unable to find group {group_arg}: {NO_GROUP}")
            else:
                gid = _check_range(gid_arg)
        else:
            sgids = tuple(g.gid for g in groups)
    return ExecUser(uid, gid, sgids, home)


# -- reading a file inside a container's root ----------------------------------------------

_SYS_OPENAT2 = 437
_RESOLVE_IN_ROOT = 0x10
_RESOLVE_NO_MAGICLINKS = 0x02


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor for ``path`` resolved inside ``root`` (symlinks, ``..`` stay in it)."""
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(
            _SYS_OPENAT2,
            ctypes.c_int(dirfd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return int(fd)
    finally:
        os.close(dirfd)


def read_in_root(root: str, path: str, limit: int = 4 << 20) -> str | None:
    """The text of ``path`` inside ``root``; None when it does not exist."""
    try:
        fd = open_in_root(root, path)
    except OSError as exc:
        if exc.errno in (errno_mod.ENOENT, errno_mod.ENOTDIR, errno_mod.ELOOP):
            return None
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read(limit).decode(errors="replace")


def resolve_in_root(root: str, spec: str) -> ExecUser:
    """``spec`` against ``root``'s ``/etc/passwd`` and ``/etc/group``."""
    return resolve(spec, read_in_root(root, "/etc/passwd"), read_in_root(root, "/etc/group"))


# -- docker run --user / --group-add (issue 16, P1) ---------------------------------------


def additional_gids(names: Sequence[str], group: str | None) -> tuple[int, ...]:
    """``--group-add`` entries (names or gids) as runc's ``GetAdditionalGroups``: the first
    group of ``/etc/group`` whose name or gid matches, else a number in range."""
    groups = parse_group(group or "")
    out: list[int] = []
    for name in names:
        match = next((g for g in groups if name in (g.name, str(g.gid))), None)
        if match is not None:
            gid = match.gid
        else:
            number = _int(name)
            if number is None:
                raise BadRequest(
                    f'Unable to find group {name}: strconv.ParseInt: parsing "{name}": '
                    "invalid syntax"
                )
            gid = _check_range(number)
        if gid not in out:
            out.append(gid)
    return tuple(out)


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def read_layered(
    layers: Sequence[str], path: str, limit: int = 4 << 20, _hops: int = 0
) -> str | None:
    """The text of ``path`` in the overlay made of ``layers`` (top first), read from the
    layer folders without mounting them: overlayfs whiteouts and opaque folders hide lower
    layers, symlinks resolve inside the merged view. None when it does not exist."""
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    for layer in layers:
        cur, hidden = layer, False
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except (FileNotFoundError, NotADirectoryError):
                if hidden:
                    return None  # an opaque folder above hides the lower layers
                break
            if _whiteout(st):
                return None
            if stat.S_ISLNK(st.st_mode):
                if _hops >= 40:
                    return None
                target = posixpath.join("/" + "/".join(parts[:i]), os.readlink(cur))
                rest = "/".join([target, *parts[i + 1 :]])
                return read_layered(layers, rest, limit, _hops + 1)
            if i == len(parts) - 1:
                if not stat.S_ISREG(st.st_mode):
                    return None
                with open(cur, "rb") as f:
                    return f.read(limit).decode(errors="replace")
            if not stat.S_ISDIR(st.st_mode):
                return None
            hidden = hidden or _opaque(cur)
        else:
            return None
    return None


def resolve_layered(
    layers: Sequence[str], spec: str, group_add: Sequence[str] = ()
) -> tuple[ExecUser, tuple[int, ...]]:
    """``--user`` and ``--group-add`` against the container's root as its layers hold it
    (Docker's getUser: the user's groups, then the added ones)."""
    passwd = read_layered(layers, "/etc/passwd")
    group = read_layered(layers, "/etc/group")
    user = resolve(spec, passwd, group)
    added = additional_gids(group_add, group) if group_add else ()
    return user, user.sgids + added
