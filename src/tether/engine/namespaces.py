"""PID/IPC/UTS/cgroup namespace modes, ulimits, /dev/shm, OOM score and init (issue 16, P3).

``check_create`` runs Docker 20.10's checks of these HostConfig fields at create (its texts:
``invalid PID mode: X``, ``invalid IPC mode: X``, ...) and fills in Docker's defaults
(``IpcMode: private``, ``CgroupnsMode: host`` on cgroup v1). ``namespace_spec`` resolves
them at start into a ``NamespaceSpec``: ``container:X`` joins X's namespaces through its PID 1
(``/proc/<pid>/ns/*``), with Docker's texts when X is missing or not running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tether.contracts.runtime import NamespaceSpec
from tether.engine import resources
from tether.engine.record import Container
from tether.engine.resources import DEFAULT_SHM_SIZE
from tether.errors import BadRequest, Conflict, NotFound

# Docker's units.ParseUlimit names
ULIMITS = {
    "as": "RLIMIT_AS",
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}
IPC_MODES = ("", "host", "private", "shareable", "none")


def _container_ref(mode: str) -> str | None:
    """X of ``container:X``; "" when the mode is ``container:`` alone; None otherwise."""
    kind, sep, ref = mode.partition(":")
    return ref if kind == "container" and sep else None


def _str(hc: Mapping[str, Any], key: str) -> str:
    value = hc.get(key) or ""
    if not isinstance(value, str):
        raise BadRequest(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field "
            f"HostConfig.{key} of type string"
        )
    return value


def check_modes(hc: dict[str, Any], cgroup_v2: bool = False) -> None:
    """Docker's mode checks (verifyPlatformContainerSettings) and defaults, in place."""
    ipc = _str(hc, "IpcMode")
    if ipc not in IPC_MODES and not _container_ref(ipc):
        raise BadRequest(f"invalid IPC mode: {ipc}")
    pid = _str(hc, "PidMode")
    if pid not in ("", "host") and not _container_ref(pid):
        raise BadRequest(f"invalid PID mode: {pid}")
    uts = _str(hc, "UTSMode")
    if uts not in ("", "host"):
        raise BadRequest(f"invalid UTS mode: {uts}")
    cgns = _str(hc, "CgroupnsMode")
    if cgns not in ("", "host", "private"):
        raise BadRequest(f"invalid cgroup namespace mode: {cgns}")
    # adaptContainerSettings: Docker 20.10's defaults
    hc["IpcMode"] = ipc or "private"
    hc["CgroupnsMode"] = cgns or ("private" if cgroup_v2 else "host")
    hc.setdefault("PidMode", "")
    hc.setdefault("UTSMode", "")


def check_ulimits(hc: dict[str, Any]) -> None:
    """``Ulimits``: a list of {Name, Soft, Hard}, names and order as Docker's ParseUlimit."""
    raw = hc.get("Ulimits")
    if raw is None:
        return
    if not isinstance(raw, list):
        raise BadRequest(
            "json: cannot unmarshal object into Go struct field HostConfig.Ulimits "
            "of type []*units.Ulimit"
        )
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest(f"invalid ulimit argument: {item}")
        name, soft, hard = item.get("Name"), item.get("Soft", 0), item.get("Hard", 0)
        if not isinstance(name, str) or name not in ULIMITS:
            raise BadRequest(f"invalid ulimit type: {name}")
        for v in (soft, hard):
            if not isinstance(v, int) or isinstance(v, bool):
                raise BadRequest(f"invalid ulimit argument: {name}={soft}:{hard}")
        if soft > hard:
            raise BadRequest(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )


def check_create(hc: dict[str, Any], config: Mapping[str, Any], cgroup_v2: bool = False) -> None:
    """The namespace and process fields of a create (HostConfig in place): Docker's checks
    and defaults."""
    check_modes(hc, cgroup_v2)
    check_ulimits(hc)
    if hc.get("UTSMode") == "host" and config.get("Hostname"):
        raise BadRequest("conflicting options: hostname and the UTS mode")
    init = hc.get("Init")
    if init is not None and not isinstance(init, bool):
        raise BadRequest(
            "json: cannot unmarshal number into Go struct field HostConfig.Init of type bool"
        )


def _running(find: Callable[[str], Container | None], ref: str, what: str) -> Container:
    """The container X of ``container:X``, running, or Docker's error."""
    other = find(ref)
    if other is None:
        raise NotFound(
            f"cannot join {what} of a non running container: {ref}: No such container: {ref}"
        )
    if not other.running or not other.state.pid:
        raise Conflict(f"container {other.id} is not running")
    return other


def _ipc(
    c: Container, find: Callable[[str], Container | None], shm_dir: Callable[[Container], str]
) -> tuple[str, str]:
    """(ipc namespace, /dev/shm) for the IPC mode. A shareable container's /dev/shm is a
    folder of its files (``shm_dir``) that joiners bind as well: a mount cannot be bound
    from another container's mount namespace."""
    mode = c.host_config.get("IpcMode") or "private"
    ref = _container_ref(mode)
    if ref:
        err = f"can't join IPC of container {ref}"
        other = find(ref)
        if other is None:
            raise NotFound(f"{err}: No such container: {ref}")
        if not other.running or not other.state.pid:
            raise Conflict(f"{err}: container {other.id} is not running")
        if (other.host_config.get("IpcMode") or "") not in ("shareable", "host"):
            raise Conflict(
                f"{err}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
            )
        if other.host_config.get("IpcMode") == "host":
            return "host", "/dev/shm"
        return f"/proc/{other.state.pid}/ns/ipc", shm_dir(other)
    if mode == "shareable":
        return "", shm_dir(c)
    if mode == "host":
        return "host", "/dev/shm"
    if mode == "none":
        return "", "none"
    return "", ""


def namespace_spec(
    c: Container, find: Callable[[str], Container | None], shm_dir: Callable[[Container], str]
) -> NamespaceSpec:
    """What the runtime applies for ``c``'s namespaces and process settings, at start
    (``find`` looks up ``container:X``; ``shm_dir`` is a shareable container's /dev/shm)."""
    hc = c.host_config
    pid_mode = hc.get("PidMode") or ""
    pid = ""
    ref = _container_ref(pid_mode)
    if ref:
        other = _running(find, ref, "PID")
        pid = f"/proc/{other.state.pid}/ns/pid"
    elif pid_mode == "host":
        pid = "host"
    ipc, shm = _ipc(c, find, shm_dir)
    by_type = {
        ULIMITS[u["Name"]]: (int(u.get("Soft") or 0), int(u.get("Hard") or 0))
        for u in hc.get("Ulimits") or []
    }  # one per type, the last as Docker's ulimit option keeps
    rlimits = tuple((kind, soft, hard) for kind, (soft, hard) in by_type.items())
    adj = hc.get("OomScoreAdj") or 0
    return NamespaceSpec(
        pid=pid,
        ipc=ipc,
        uts="host" if hc.get("UTSMode") == "host" else "",
        shm=shm,
        shm_size=hc.get("ShmSize") or DEFAULT_SHM_SIZE,
        cgroup_ns=hc.get("CgroupnsMode") == "private",
        rlimits=rlimits,
        oom_score_adj=adj or None,
        init=bool(hc.get("Init")),
    )


def check_run_options(body: dict[str, Any]) -> list[str]:
    """A create body's resource, namespace and process fields, checked with Docker's texts
    and given Docker's defaults (its HostConfig, in place, created when absent): Docker's
    warnings. Runs before the image is looked up, as Docker's verifyContainerSettings."""
    hc = body.get("HostConfig")
    if hc is None:
        hc = body["HostConfig"] = {}
    if not isinstance(hc, dict):
        return []
    host = resources.host_limits()
    warnings = resources.check_create(hc, host)
    check_create(hc, body, cgroup_v2=host.cgroup_v2)
    return warnings
