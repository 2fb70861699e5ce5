"""A container's mounts as Docker 20.10 parses them (volume/mounts/linux_parser.go and
daemon/volumes.go registerMountPoints), with Docker's texts.

Where they come from, in Docker's order (a later one replaces an earlier one at the same
destination): ``HostConfig.VolumesFrom`` (the other container's mounts), ``HostConfig.Binds``
(``SRC:DST[:MODE]``: an absolute SRC is a bind, else a volume name), ``HostConfig.Mounts``
(bind, volume, tmpfs), then ``Config.Volumes`` (the image's and the request's: a new
anonymous volume each, unless something is mounted there already). ``HostConfig.Tmpfs`` is
Docker's own list (not a mount point: inspect's ``Mounts`` does not show it).

A mount point is a plain dict kept in the container record (``Container.mounts``): Docker's
``MountPoint`` fields (Type, Name, Source, Destination, Driver, Mode, RW, Propagation) plus
tether's own (``Named``: the request named the volume, so ``rm -v`` keeps it; ``CopyData``:
a new empty volume gets the image's content; ``Data``: a tmpfs's options; ``Create``: a
missing bind source is made at start, as Docker does for ``Binds``; ``DriverOpts``/``Labels``
of a volume ``Mounts`` creates).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from tether.errors import BadRequest, NotFound

RW_MODES = ("rw", "ro")
LABEL_MODES = ("z", "Z")
PROPAGATION = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
COPY_MODES = ("nocopy",)
CONSISTENCY = ("consistent", "cached", "delegated")
DEFAULT_PROPAGATION = "rprivate"

Mount = dict[str, Any]


def valid_mode(mode: str) -> bool:
    """Docker's linuxValidMountMode: each kind of option at most once."""
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for opt in mode.split(","):
        for i, kind in enumerate((RW_MODES, LABEL_MODES, PROPAGATION, COPY_MODES, CONSISTENCY)):
            if opt in kind:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _propagation(mode: str) -> str:
    return next((o for o in mode.split(",") if o in PROPAGATION), "")


def _config_error(kind: str, text: str) -> BadRequest:
    return BadRequest(f'invalid mount config for type "{kind}": {text}')


def _check_target(kind: str, target: str) -> None:
    if not target:
        raise _config_error(kind, "field Target must not be empty")
    if posixpath.normpath(target) == "/":
        raise _config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")


def _point(kind: str, dest: str, **kw: Any) -> Mount:
    m: Mount = {
        "Type": kind,
        "Name": "",
        "Source": "",
        "Destination": posixpath.normpath(dest),
        "Driver": "",
        "Mode": "",
        "RW": True,
        "Propagation": "",
        "Named": False,
        "CopyData": False,
        "Data": "",
        "Create": False,
    }
    m.update(kw)
    return m


def parse_bind(raw: str) -> Mount:
    """One ``HostConfig.Binds`` entry (Docker's ParseMountRaw)."""
    spec_err = f"invalid volume specification: '{raw}'"
    arr = raw.split(":", 3)
    if not arr[0]:
        raise BadRequest(spec_err)
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if valid_mode(arr[1]):
            raise BadRequest(spec_err)
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise BadRequest(spec_err)
    if not valid_mode(mode):
        raise BadRequest(f"invalid mode: {mode}")
    kind = "bind" if source.startswith("/") else "volume"
    opts = mode.split(",")
    try:
        _check_target(kind, target)
        if kind == "volume" and _propagation(mode):
            raise _config_error(kind, "field BindOptions must not be specified")
    except BadRequest as exc:
        raise BadRequest(f"{spec_err}: {exc.message}") from None
    if kind == "bind":
        return _point(
            kind, target, Source=posixpath.normpath(source), Mode=mode, RW="ro" not in opts,
            Propagation=_propagation(mode) or DEFAULT_PROPAGATION, Create=True,
        )  # fmt: skip
    return _point(
        kind, target, Name=source, Named=bool(source), Mode=mode or "z", RW="ro" not in opts,
        CopyData="nocopy" not in opts,
    )  # fmt: skip


def _obj(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object")
    return value


def tmpfs_data(opts: Mapping[str, Any], readonly: bool) -> str:
    """Docker's ConvertTmpfsOptions: ``ro``, ``mode=1777``, ``size=64m``."""
    raw: list[str] = ["ro"] if readonly else []
    mode = opts.get("Mode") or 0
    size = opts.get("SizeBytes") or 0
    if not isinstance(mode, int) or not isinstance(size, int):
        raise BadRequest("TmpfsOptions.Mode and TmpfsOptions.SizeBytes must be integers")
    if mode:
        raw.append(f"mode={mode:o}")
    if size:
        suffix = ""
        for sfx, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                size, suffix = size // div, sfx
                break
        raw.append(f"size={size}{suffix}")
    return ",".join(raw)


def parse_mount(spec: Any, exists: Callable[[str], bool] = os.path.exists) -> Mount:
    """One ``HostConfig.Mounts`` entry (Docker's ParseMountSpec: a bind's source must exist)."""
    if not isinstance(spec, dict):
        raise BadRequest("HostConfig.Mounts entries must be objects")
    kind = str(spec.get("Type") or "")
    target = str(spec.get("Target") or "")
    source = str(spec.get("Source") or "")
    ro = bool(spec.get("ReadOnly"))
    bind_opts = spec.get("BindOptions")
    vol_opts = spec.get("VolumeOptions")
    tmpfs_opts = spec.get("TmpfsOptions")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _config_error(kind, "mount type unknown")
    _check_target(kind, target)
    extra = {"BindOptions": bind_opts, "VolumeOptions": vol_opts, "TmpfsOptions": tmpfs_opts}
    allowed = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}[kind]
    for name, value in extra.items():
        if value is not None and name != allowed:
            raise _config_error(kind, f"field {name} must not be specified")
    if kind == "bind":
        prop = str(_obj(bind_opts, "BindOptions").get("Propagation") or "")
        if prop and prop not in PROPAGATION:
            raise _config_error(kind, f"invalid propagation mode: {prop}")
        if not source:
            raise _config_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _config_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        if not exists(source):
            raise _config_error(kind, f"bind source path does not exist: {source}")
        return _point(
            kind, target, Source=posixpath.normpath(source), RW=not ro,
            Propagation=prop or DEFAULT_PROPAGATION,
        )  # fmt: skip
    if kind == "tmpfs":
        if source:
            raise _config_error(kind, "field Source must not be specified")
        return _point(
            kind, target, RW=not ro, Data=tmpfs_data(_obj(tmpfs_opts, "TmpfsOptions"), ro)
        )
    vo = _obj(vol_opts, "VolumeOptions")
    if ro and not source:
        raise _config_error(kind, "must not set ReadOnly mode when using anonymous volumes")
    driver = _obj(vo.get("DriverConfig"), "DriverConfig")
    return _point(
        kind, target, Name=source, Named=bool(source), Mode="z", RW=not ro,
        CopyData=not vo.get("NoCopy"), Driver=str(driver.get("Name") or ""),
        DriverOpts=driver.get("Options"), Labels=vo.get("Labels"),
    )  # fmt: skip


def parse_volumes_from(spec: Any) -> tuple[str, str]:
    """``container[:ro|rw]`` (Docker's ParseVolumesFrom)."""
    if not isinstance(spec, str) or not spec:
        raise BadRequest("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    if not valid_mode(mode) or _propagation(mode) or "nocopy" in mode.split(","):
        raise BadRequest(f"invalid mode: {mode}")
    return ref, mode


def check_tmpfs(tmpfs: Any) -> dict[str, str]:
    """``HostConfig.Tmpfs``: destination -> options (Docker's ValidateTmpfsMountDestination)."""
    if tmpfs is None:
        return {}
    if not isinstance(tmpfs, dict):
        raise BadRequest("HostConfig.Tmpfs must be an object")
    for dest, opts in tmpfs.items():
        if posixpath.normpath(dest) == "/":
            raise BadRequest("invalid specification: destination can't be '/'")
        if not dest.startswith("/"):
            raise BadRequest(f"invalid mount path: '{dest}' mount path must be absolute")
        if not isinstance(opts, str):
            raise BadRequest("HostConfig.Tmpfs values must be strings")
    return {posixpath.normpath(k): v for k, v in tmpfs.items()}


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a list")
    return value


def _from_container(mounts: list[Mount], mode: str) -> list[Mount]:
    out = []
    for m in mounts:
        cp = {**m, "Mode": "", "CopyData": False, "Create": False}
        cp["RW"] = bool(m["RW"]) and "ro" not in mode.split(",")
        out.append(cp)
    return out


def plan(
    host_config: Mapping[str, Any],
    volumes: Mapping[str, Any] | None,
    mounts_of: Callable[[str], list[Mount]],
) -> list[Mount]:
    """The container's mount points, before any volume exists: a volume's ``Name`` is ""
    for a new anonymous one. ``mounts_of(ref)`` gives another container's (VolumesFrom)."""
    points: dict[str, Mount] = {}
    for spec in _list(host_config.get("VolumesFrom"), "HostConfig.VolumesFrom"):
        ref, mode = parse_volumes_from(spec)
        try:
            theirs = mounts_of(ref)
        except NotFound as exc:
            raise BadRequest(exc.message) from None
        for m in _from_container(theirs, mode):
            points[m["Destination"]] = m
    tmpfs = check_tmpfs(host_config.get("Tmpfs"))
    taken: set[str] = set()
    binds = [parse_bind(str(b)) for b in _list(host_config.get("Binds"), "HostConfig.Binds")]
    for m in binds + [
        parse_mount(s) for s in _list(host_config.get("Mounts"), "HostConfig.Mounts")
    ]:
        dest = m["Destination"]
        if dest in taken or dest in tmpfs:
            raise BadRequest(f"Duplicate mount point: {dest}")
        taken.add(dest)
        points[dest] = m
    for dest in sorted(volumes or {}):
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise BadRequest(f"invalid mount path: '{dest}' mount path must be absolute")
        clean = posixpath.normpath(dest)
        if clean not in points and clean not in tmpfs:
            points[clean] = _point("volume", clean, CopyData=True)
    return list(points.values())


def public(m: Mount) -> dict[str, Any]:
    """A mount point as Docker's inspect and ps show it (``Name``/``Driver`` when set)."""
    out: dict[str, Any] = {"Type": m["Type"]}
    if m.get("Name"):
        out["Name"] = m["Name"]
    out["Source"] = m.get("Source", "")
    out["Destination"] = m["Destination"]
    if m.get("Driver"):
        out["Driver"] = m["Driver"]
    out.update({"Mode": m.get("Mode", ""), "RW": bool(m.get("RW")),
                "Propagation": m.get("Propagation", "")})  # fmt: skip
    return out


# ---- the OCI side: what runc mounts --------------------------------------------------------

_FLAG_PAIRS = {
    "exec": "noexec", "suid": "nosuid", "dev": "nodev", "rw": "ro", "atime": "noatime",
    "diratime": "nodiratime", "strictatime": "nostrictatime", "relatime": "norelatime",
}  # fmt: skip
_FLAG_OF = {**{k: k for k in _FLAG_PAIRS}, **{v: k for k, v in _FLAG_PAIRS.items()}}


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """Docker's MergeTmpfsOptions: a later flag beats its opposite, a later ``key=`` its
    earlier value; the first occurrence keeps its place."""
    order: list[str] = []
    value: dict[str, str] = {}
    for opt in options:
        if not opt:
            continue
        key = _FLAG_OF.get(opt) or (opt.split("=", 1)[0] if "=" in opt else opt)
        if key not in value:
            order.append(key)
        value[key] = opt
    return [value[k] for k in order]


def tmpfs_options(data: str) -> list[str]:
    base = ["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION]
    return merge_tmpfs_options(base + [o for o in data.split(",") if o])


def bind_options(m: Mapping[str, Any]) -> list[str]:
    opts = ["rbind"]
    if not m.get("RW"):
        opts.append("ro")
    opts.append(m.get("Propagation") or DEFAULT_PROPAGATION)
    return opts


def volume_names(mounts: list[Mount]) -> list[str]:
    return [m["Name"] for m in mounts if m["Type"] == "volume" and m.get("Name")]
