"""A lab host's tether daemon: its command line and environment, starting it and waiting
until it answers ``GET /_ping``, stopping it, its log.

The daemon runs inside the host's network namespace (``nsenter --net`` only), from the
``tether`` package this process imported (``PYTHONPATH``), with its data root, exec root,
socket and log under the host's folder; with the lab's etcd (single or cluster) it gets
``--cluster-store`` and ``--cluster-advertise`` the host's underlay address.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tether.lab import naming, probe, procs, system
from tether.lab.errors import LabError
from tether.lab.etcdcluster import EtcdCluster
from tether.lab.state import HostInfo, LabState

DEFAULT_DAEMON_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def default_daemon_cmd() -> list[str]:
    """How a lab host's daemon is started (followed by ``daemon -H ... --data-root ...``)."""
    return [sys.executable, "-m", "tether"]


def tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


def _package_path() -> str:
    """The folder holding the ``tether`` package, so ``python -m tether`` works uninstalled."""
    import tether

    return str(Path(tether.__file__).resolve().parent.parent)


def _cluster(state: LabState) -> EtcdCluster | None:
    return EtcdCluster(state) if state.etcd_members else None


def argv(state: LabState, info: HostInfo) -> list[str]:
    argv = [
        *state.daemon_cmd,
        "daemon",
        "-H",
        f"unix://{info.socket}",
        "--data-root",
        info.data_root,
        "--exec-root",
        info.exec_root,
        "--config-file",
        info.config_file,
    ]
    if state.want_etcd:
        argv += [
            "--cluster-store",
            f"etcd://{naming.ETCD_ADDRESS}:{naming.ETCD_CLIENT_PORT}",
            "--cluster-advertise",
            info.address,
        ]
    cluster = _cluster(state)
    if cluster is not None:
        argv += [*cluster.daemon_args(), "--cluster-advertise", info.address]
    return system.nsenter_argv(info.netns, argv)


def env(state: LabState, info: HostInfo) -> dict[str, str]:
    env = dict(os.environ)
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _package_path() + (os.pathsep + pp if pp else "")
    env["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    env["TETHER_LAB"] = state.name
    env["TETHER_LAB_HOST"] = info.name
    for k in ("DOCKER_HOST", "TETHER_HOST"):
        env.pop(k, None)
    return env


def start(state: LabState, names: Iterable[str], timeout: float) -> None:
    """Spawn the daemons of hosts ``names`` and wait until all answer (``LabError`` naming
    the first that exited or did not answer in ``timeout``, with its log's tail)."""
    infos = [state.hosts[n] for n in names]
    for info in infos:
        if info.daemon is not None and procs.alive(info.daemon):
            raise LabError(f"host {info.name!r}: daemon already running (pid {info.daemon.pid})")
        cluster = _cluster(state)
        if cluster is not None:
            cluster.write_daemon_json(info.config_file)
        with open(info.daemon_log, "ab") as log:
            log.write(f"--- tether lab: starting daemon at {time.ctime()}\n".encode())
        info.daemon = procs.spawn(
            argv(state, info), info.daemon_log, env=env(state, info), cwd=info.dir
        )
        state.save()
    wait(infos, timeout)


def wait(infos: Sequence[HostInfo], timeout: float) -> None:
    pending = list(infos)
    deadline = time.monotonic() + timeout
    while pending:
        for info in list(pending):
            if probe.daemon_ready(info.socket, timeout=1.0):
                pending.remove(info)
                continue
            assert info.daemon is not None
            if not procs.alive(info.daemon):
                code = procs.exit_code(info.daemon)
                raise LabError(
                    f"daemon of lab host {info.name!r} exited"
                    f"{f' with status {code}' if code is not None else ''} before it was "
                    f"ready; log {info.daemon_log}:\n{tail(info.daemon_log)}"
                )
        if not pending:
            break
        if time.monotonic() >= deadline:
            info = pending[0]
            raise LabError(
                f"daemon of lab host {info.name!r} not ready after {timeout:.0f}s "
                f"(GET /_ping on {info.socket}); log {info.daemon_log}:\n"
                f"{tail(info.daemon_log)}"
            )
        time.sleep(0.1)


def stop(state: LabState, host: str, kill9: bool = False) -> None:
    """Stop a host's daemon (SIGTERM then SIGKILL; only SIGKILL when ``kill9``).

    Only the daemon's process group is signalled: containers it started in their own
    sessions (conmon) keep running, as after a daemon crash.
    """
    info = state.hosts[host]
    if info.daemon is not None:
        procs.stop(info.daemon, timeout=STOP_TIMEOUT, kill9=kill9)
        info.daemon = None
        state.save()
