"""Processes the lab starts (daemons, etcd) and stops, identified by pid *and* start time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence

from tether.lab.errors import LabError
from tether.lab.state import ProcInfo

# Popen objects of children started by this process, so they are reaped (not left as zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


def starttime(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def spawn(
    argv: Sequence[str], log: str, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> ProcInfo:
    """Start ``argv`` in its own session and process group, stdout+stderr appended to ``log``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    st = starttime(proc.pid)
    return ProcInfo(pid=proc.pid, starttime=st if st is not None else -1, argv=list(argv), log=log)


def alive(info: ProcInfo) -> bool:
    child = _children.get(info.pid)
    if child is not None and child.poll() is not None:
        _children.pop(info.pid, None)
        return False
    st = starttime(info.pid)
    return st is not None and (info.starttime < 0 or st == info.starttime)


def exit_code(info: ProcInfo) -> int | None:
    """Exit status if the process was our child and has exited, else None."""
    child = _children.get(info.pid)
    return child.poll() if child is not None else None


def _signal_group(info: ProcInfo, sig: int) -> None:
    if not alive(info):
        return
    try:
        os.killpg(info.pid, sig)  # spawn() made the process a group leader
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(info.pid, sig)


def _wait_gone(check: Iterable[ProcInfo], timeout: float) -> bool:
    pending = list(check)
    deadline = time.monotonic() + timeout
    while True:
        pending = [p for p in pending if alive(p)]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(info: ProcInfo, timeout: float = 10.0, kill9: bool = False) -> None:
    """Stop the process group of ``info``: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if not kill9:
        _signal_group(info, signal.SIGTERM)
        if _wait_gone([info], timeout):
            _children.pop(info.pid, None)
            return
    _signal_group(info, signal.SIGKILL)
    _wait_gone([info], 5.0)
    _children.pop(info.pid, None)


def terminate_all(infos: Iterable[ProcInfo], timeout: float = 10.0) -> None:
    """SIGTERM every process group of ``infos`` at once and wait for them together (at most
    ``timeout``): a lab of N daemons then stops in one daemon's shutdown time, not N of them.
    Those still alive are left to :func:`stop` (SIGKILL after its own timeout)."""
    infos = list(infos)
    for info in infos:
        _signal_group(info, signal.SIGTERM)
    _wait_gone(infos, timeout)


def _own_ancestry() -> set[int]:
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            break
        pid = int(raw[raw.rfind(b")") + 2 :].split()[1])
        pids.add(pid)
    return pids


def _snapshot() -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """(pid -> ppid, pid -> (dev, inode) of its network namespace) for every process."""
    parents: dict[int, int] = {}
    netns: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
            parents[pid] = int(raw[raw.rfind(b")") + 2 :].split()[1])
            st = os.stat(f"/proc/{pid}/ns/net")
            netns[pid] = (st.st_dev, st.st_ino)
        except (OSError, ValueError, IndexError):
            continue
    return parents, netns


def kill_in_netns(namespaces: set[tuple[int, int]], timeout: float = 5.0) -> list[int]:
    """SIGKILL every process living in one of ``namespaces`` and all their descendants.

    ``namespaces`` holds (st_dev, st_ino) pairs of network namespace files. The caller's own
    namespace and ancestry are never touched. Returns the pids that were signalled;
    ``LabError`` when some are still alive after ``timeout`` seconds.
    """
    own = os.stat("/proc/self/ns/net")
    namespaces = namespaces - {(own.st_dev, own.st_ino)}
    if not namespaces:
        return []
    parents, netns = _snapshot()
    victims = {pid for pid, ns in netns.items() if ns in namespaces}
    changed = True
    while changed:  # add descendants (e.g. containers in their own namespaces)
        changed = False
        for pid, ppid in parents.items():
            if ppid in victims and pid not in victims:
                victims.add(pid)
                changed = True
    victims -= _own_ancestry()
    victims.discard(1)
    infos = []
    for pid in victims:
        st = starttime(pid)
        if st is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        infos.append(ProcInfo(pid=pid, starttime=st, argv=[], log=""))
    _wait_gone(infos, timeout)
    for info in infos:
        child = _children.pop(info.pid, None)
        if child is not None:
            child.poll()
    survivors = [i.pid for i in infos if alive(i)]
    if survivors:
        raise LabError(f"processes survived SIGKILL: {survivors}")
    return [i.pid for i in infos]
