"""OCI runtime bundles: the runc ``config.json`` of a container, Docker's defaults.

``build_spec`` is pure (unit-tested without root); ``write_bundle`` writes it to disk.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.contracts.runtime import ALL_CAPABILITIES, NamespaceSpec, ResourceSpec
from tether.errors import Internal

OCI_VERSION = "1.0.2-dev"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]

READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def _dev_rule(kind: str, major: int | None, minor: int | None, access: str) -> dict[str, Any]:
    return {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}


# Deny everything, then allow what Docker allows by default.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    _dev_rule("c", None, None, "m"),
    _dev_rule("b", None, None, "m"),
    _dev_rule("c", 1, 3, "rwm"),  # /dev/null
    _dev_rule("c", 1, 8, "rwm"),  # /dev/random
    _dev_rule("c", 1, 7, "rwm"),  # /dev/full
    _dev_rule("c", 5, 0, "rwm"),  # /dev/tty
    _dev_rule("c", 1, 5, "rwm"),  # /dev/zero
    _dev_rule("c", 1, 9, "rwm"),  # /dev/urandom
    _dev_rule("c", 136, None, "rwm"),  # /dev/pts/*
    _dev_rule("c", 5, 2, "rwm"),  # /dev/ptmx
    _dev_rule("c", 10, 200, "rwm"),  # /dev/net/tun
]


@dataclass(frozen=True)
class BindMount:
    """A host path bind-mounted into the container (``-v /src:/dst[:ro]``)."""

    source: str
    destination: str
    readonly: bool = False
    propagation: str = "rprivate"


@dataclass(frozen=True)
class TmpfsMount:
    """A tmpfs (``--tmpfs /run:size=1m``)."""

    destination: str
    options: Sequence[str] = field(default_factory=lambda: ("nosuid", "nodev", "noexec"))


@dataclass(frozen=True)
class UserMount:
    """A mount the user asked for (a volume, a bind, a tmpfs: issue 16, P2)."""

    destination: str
    kind: str  # bind | tmpfs
    source: str
    options: Sequence[str] = ()


def _mount(dst: str, kind: str, src: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": dst, "type": kind, "source": src, "options": list(options)}


def default_mounts() -> list[dict[str, Any]]:
    """Docker's default mounts (proc, /dev, devpts, sysfs, cgroup, mqueue, shm)."""
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "noexec", "nodev"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount(
            "/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
        ),
    ]


def with_default_path(env: Sequence[str]) -> list[str]:
    """Docker adds ``PATH`` when the image and the user gave none."""
    out = list(env)
    if not any(e.startswith("PATH=") for e in out):
        out.insert(0, f"PATH={DEFAULT_PATH}")
    return out


def build_spec(
    *,
    args: Sequence[str],
    rootfs: Path | str,
    env: Sequence[str] = (),
    cwd: str = "/",
    terminal: bool = False,
    user: tuple[int, int] = (0, 0),
    additional_gids: Sequence[int] = (),
    hostname: str = "",
    domainname: str = "",
    netns_path: str | None = None,
    uts_namespace: bool = True,
    cgroups_path: str = "",
    hosts_path: Path | str | None = None,
    resolv_conf_path: Path | str | None = None,
    hostname_path: Path | str | None = None,
    binds: Sequence[BindMount] = (),
    tmpfs: Sequence[TmpfsMount] = (),
    readonly_rootfs: bool = False,
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    sysctl: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    no_new_privileges: bool = False,
    user_mounts: Sequence[UserMount] = (),
) -> dict[str, Any]:
    """The runc ``config.json`` of a container, with Docker's defaults.

    ``netns_path``: a network namespace file to join (``/run/tether/netns/<id>``,
    ``/proc/<pid>/ns/net`` for ``--network container:X``), or None to stay in the
    host's network namespace (``--network host``; then pass ``uts_namespace=False`` to
    share the host name as Docker does). ``cgroups_path`` must be absolute
    (``/tether/<id>``): a relative one lands under conmon's cgroup. Capability names
    take ``NET_ADMIN`` or ``CAP_NET_ADMIN``; ``ALL`` works in ``cap_add``/``cap_drop``.
    rlimits are left alone (raising them fails on this host).
    """
    if cgroups_path and not cgroups_path.startswith("/"):
        raise ValueError(f"cgroups_path must be absolute, got {cgroups_path!r}")
    process = _process(
        args, env, cwd, terminal, user, additional_gids, cap_add, cap_drop, no_new_privileges
    )
    mounts = _mounts(resolv_conf_path, hostname_path, hosts_path, binds, tmpfs)
    mounts = with_user_mounts(mounts, user_mounts)
    linux = _linux(netns_path, uts_namespace, cgroups_path, sysctl)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }
    if uts_namespace and hostname:
        spec["hostname"] = hostname
    if uts_namespace and domainname:
        spec["domainname"] = domainname
        # runc 1.1 ignores ``domainname``; the UTS sysctl does the same (runc allows it)
        linux.setdefault("sysctl", {}).setdefault("kernel.domainname", domainname)
    if annotations:
        spec["annotations"] = dict(annotations)
    return spec


def _process(
    args: Sequence[str],
    env: Sequence[str],
    cwd: str,
    terminal: bool,
    user: tuple[int, int],
    additional_gids: Sequence[int],
    cap_add: Sequence[str],
    cap_drop: Sequence[str],
    no_new_privileges: bool,
) -> dict[str, Any]:
    """The spec's ``process``: arguments, environment, user, capabilities."""
    caps = _capabilities(cap_add, cap_drop)
    process: dict[str, Any] = {
        "terminal": terminal,
        "user": {"uid": user[0], "gid": user[1]},
        "args": list(args),
        "env": with_default_path(env),
        "cwd": cwd or "/",
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": no_new_privileges,
    }
    if additional_gids:
        process["user"]["additionalGids"] = list(additional_gids)
    if terminal:
        process["consoleSize"] = {"height": 24, "width": 80}
    return process


def _mounts(
    resolv_conf_path: Path | str | None,
    hostname_path: Path | str | None,
    hosts_path: Path | str | None,
    binds: Sequence[BindMount],
    tmpfs: Sequence[TmpfsMount],
) -> list[dict[str, Any]]:
    """Docker's default mounts, then the /etc files given, ``binds`` and ``tmpfs``."""
    mounts = default_mounts()
    for dst, src in (
        ("/etc/resolv.conf", resolv_conf_path),
        ("/etc/hostname", hostname_path),
        ("/etc/hosts", hosts_path),
    ):
        if src is not None:
            mounts.append(_mount(dst, "bind", str(src), ["rbind", "rprivate"]))
    for b in binds:
        opts = ["rbind", b.propagation]
        if b.readonly:
            opts.append("ro")
        mounts.append(_mount(b.destination, "bind", b.source, opts))
    for t in tmpfs:
        mounts.append(_mount(t.destination, "tmpfs", "tmpfs", list(t.options)))
    return mounts


# ---- the user's mounts (issue 16, P2: volumes, binds, tmpfs) ---------------------------------


def _depth(destination: str) -> int:
    return len([p for p in destination.split("/") if p])


def with_user_mounts(
    mounts: list[dict[str, Any]], user: Sequence[UserMount]
) -> list[dict[str, Any]]:
    """Docker's setMounts: a user mount replaces a default one at the same destination (and
    every default below a user ``/dev``); the user's mounts come after the defaults, sorted by
    the depth of their destination (a stable sort: ``/a`` before ``/a/b``)."""
    if not user:
        return mounts
    dests = {m.destination for m in user}
    kept = [
        m
        for m in mounts
        if m["destination"] not in dests
        and not ("/dev" in dests and m["destination"].startswith("/dev/"))
    ]
    ordered = sorted(user, key=lambda m: _depth(m.destination))
    return kept + [_mount(m.destination, m.kind, m.source, list(m.options)) for m in ordered]


def _linux(
    netns_path: str | None,
    uts_namespace: bool,
    cgroups_path: str,
    sysctl: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The spec's ``linux``: namespaces, masked/read-only paths, devices, cgroup, sysctls."""
    namespaces: list[dict[str, str]] = [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]
    if uts_namespace:
        namespaces.append({"type": "uts"})
    if netns_path is not None:
        namespaces.append({"type": "network", "path": str(netns_path)})

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "resources": {"devices": [dict(r) for r in DEFAULT_DEVICE_RULES]},
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    if sysctl:
        linux["sysctl"] = dict(sysctl)
    return linux


def _cap_name(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") or upper == "ALL" else f"CAP_{upper}"


def _bounding_set(status: str = "/proc/self/status") -> int | None:
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


_BOUNDING = _bounding_set()


def _all_capabilities() -> list[str]:
    """Every capability the daemon itself holds (``ALL``, ``--privileged``; as moby 23+):
    root lacks CAP_SYS_RESOURCE on some hosts, and runc cannot give what it lacks."""
    if _BOUNDING is None:
        return list(ALL_CAPABILITIES)
    return [c for i, c in enumerate(ALL_CAPABILITIES) if _BOUNDING >> i & 1]


def _capabilities(cap_add: Sequence[str], cap_drop: Sequence[str]) -> list[str]:
    """Docker's TweakCapabilities: ``ALL`` in ``cap_add`` is every capability but the dropped
    ones; ``ALL`` in ``cap_drop`` keeps only the added ones; else the default set minus the
    dropped ones, then the added ones (an added one wins over a dropped one)."""
    add = [_cap_name(c) for c in cap_add]
    drop = {_cap_name(c) for c in cap_drop}
    if "ALL" in add:
        caps = [c for c in _all_capabilities() if c not in drop]
    elif "ALL" in drop:
        caps = list(add)
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drop] + add
    return list(dict.fromkeys(caps))


# -- --privileged (issue 16, P1) ---------------------------------------------------------


def apply_privileged(spec: dict[str, Any], host_devices: Sequence[Mapping[str, Any]]) -> None:
    """Docker's ``--privileged``: every capability, no masked or read-only paths, ``/sys`` and
    the cgroup mount writable, every device of the host in ``/dev`` and allowed in the device
    cgroup. (No seccomp or AppArmor profile: tether applies none to any container.)"""
    caps = _all_capabilities()
    spec["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    linux = spec["linux"]
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux["devices"] = [dict(d) for d in host_devices]
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    for m in spec["mounts"]:
        if m["type"] in ("sysfs", "cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"]


_SKIP_DEV_DIRS = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """The host's device nodes as runc's ``HostDevices`` lists them (``/dev/console`` and the
    pts, shm, mqueue folders left out), for a privileged container's ``linux.devices``."""
    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (dirpath == root and d in _SKIP_DEV_DIRS)]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if path == os.path.join(root, "console"):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
            if not kind or st.st_rdev == 0:
                continue
            out.append(
                {
                    "path": path,
                    "type": kind,
                    "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev),
                    "fileMode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid,
                    "gid": st.st_gid,
                }
            )
    return out


def write_bundle(bundle: Path, spec: Mapping[str, Any]) -> Path:
    """Write ``bundle/config.json`` atomically (creating ``bundle``); return its path."""
    bundle.mkdir(parents=True, exist_ok=True)
    path = bundle / "config.json"
    tmp = bundle / f".config.json.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(spec))  # (compact: the C encoder, ~0.1 ms less than indented)
    os.replace(tmp, path)
    return path


# ---- P3 (issue 16): cgroup limits, namespaces, rlimits, /dev/shm, init -------------------

# Where Docker puts its init in the container, and the host's static tini (Debian's ``tini``
# package): it must run in any image, so not the dynamically linked /usr/bin/tini.
INIT_IN_CONTAINER = "/sbin/docker-init"
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init")


def init_binary() -> str | None:
    """The host's init binary for ``--init``, None when none is installed."""
    return next((p for p in INIT_BINARIES if os.path.exists(p)), None)


def oci_resources(r: ResourceSpec) -> dict[str, Any]:
    """``linux.resources`` (without devices) for ``r``: only the controls that are set. The
    same document is ``runc update --resources``'s input."""
    memory: dict[str, Any] = {}
    for key, value in (
        ("limit", r.memory),
        ("reservation", r.memory_reservation),
        ("swap", r.memory_swap),
    ):
        if value:
            memory[key] = value
    if r.memory_swappiness is not None:
        memory["swappiness"] = r.memory_swappiness
    if r.oom_kill_disable:
        memory["disableOOMKiller"] = True
    cpu: dict[str, Any] = {}
    for key, num in (("shares", r.cpu_shares), ("quota", r.cpu_quota), ("period", r.cpu_period)):
        if num:
            cpu[key] = num
    for key, text in (("cpus", r.cpuset_cpus), ("mems", r.cpuset_mems)):
        if text:
            cpu[key] = text
    out: dict[str, Any] = {}
    if memory:
        out["memory"] = memory
    if cpu:
        out["cpu"] = cpu
    if r.pids_limit:
        out["pids"] = {"limit": r.pids_limit}
    if r.blkio_weight:
        out["blockIO"] = {"weight": r.blkio_weight}
    return out


def apply_limits(
    spec: dict[str, Any], r: ResourceSpec, ns: NamespaceSpec, init_path: str | None = None
) -> dict[str, Any]:
    """Add the cgroup limits and namespace settings to a spec from ``build_spec``.

    ``init_path``: the host's init binary (``init_binary()``), needed when ``ns.init``.
    Returns ``spec`` (changed in place).
    """
    linux = spec["linux"]
    linux["resources"].update(oci_resources(r))
    _apply_namespaces(spec, ns)
    _apply_shm(spec["mounts"], ns)
    process = spec["process"]
    if ns.rlimits:
        process["rlimits"] = [
            {"type": kind, "soft": soft, "hard": hard} for kind, soft, hard in ns.rlimits
        ]
    if ns.oom_score_adj is not None:
        process["oomScoreAdj"] = ns.oom_score_adj
    if ns.init:
        if not init_path:
            raise Internal('exec: "docker-init": executable file not found in $PATH')
        process["args"] = [INIT_IN_CONTAINER, "--", *process["args"]]
        spec["mounts"].append(_mount(INIT_IN_CONTAINER, "bind", init_path, ["bind", "ro"]))
    return spec


def _apply_namespaces(spec: dict[str, Any], ns: NamespaceSpec) -> None:
    """pid/ipc/uts: private (as built), the host's (the entry removed) or joined by path."""
    namespaces: list[dict[str, str]] = spec["linux"]["namespaces"]
    for kind, mode in (("pid", ns.pid), ("ipc", ns.ipc), ("uts", ns.uts)):
        if not mode:
            continue
        namespaces[:] = [n for n in namespaces if n["type"] != kind]
        if mode != "host":
            namespaces.append({"type": kind, "path": mode})
        elif kind == "uts":
            spec.pop("hostname", None)
            spec.pop("domainname", None)
    if ns.cgroup_ns and not any(n["type"] == "cgroup" for n in namespaces):
        namespaces.append({"type": "cgroup"})


def _apply_shm(mounts: list[dict[str, Any]], ns: NamespaceSpec) -> None:
    """/dev/shm: a private tmpfs of ``shm_size``, none, or a bind of a host path."""
    for i, m in enumerate(mounts):
        if m["destination"] != "/dev/shm":
            continue
        if ns.shm == "none":
            del mounts[i]
        elif ns.shm:
            mounts[i] = _mount("/dev/shm", "bind", ns.shm, ["rbind", "rprivate"])
        else:
            opts = [o for o in m["options"] if not o.startswith("size=")]
            m["options"] = [*opts, f"size={ns.shm_size}"]
        return
