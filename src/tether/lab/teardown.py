"""Taking a lab down: every process of a host killed (its daemon first, its containers'
runc state deleted so their cgroups go), its mounts unmounted, its wire to the underlay cut
and its namespace deleted; then etcd, the underlay and the lab's folder. Each step is
attempted and its failure collected, so one leftover does not keep the rest in place.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from tether.lab import etcdcluster, links, procs, system
from tether.lab import state as statefile
from tether.lab.daemons import STOP_TIMEOUT
from tether.lab.errors import LabError
from tether.lab.etcdcluster import EtcdCluster
from tether.lab.state import HostInfo, LabState


def teardown_host(state: LabState, info: HostInfo, kill9: bool) -> list[str]:
    """Remove one host; the problems left (none: the host is gone from ``state``)."""
    problems: list[str] = []
    attempt = collector(problems)
    if info.daemon is not None:
        daemon = info.daemon
        attempt(f"stop daemon of {info.name}", lambda: procs.stop(daemon, STOP_TIMEOUT, kill9))

    def kill_rest() -> None:
        ids = system.netns_mounted_under(info.dir)
        own = system.netns_id(info.netns)
        if own is not None:
            ids.add(own)
        for _ in range(2):  # a second pass catches anything spawned meanwhile
            procs.kill_in_netns(ids)

    attempt(f"kill processes of {info.name}", kill_rest)
    attempt(f"delete runc state of {info.name}", lambda: runc_delete_all(info.exec_root))
    left = system.unmount_under(info.dir)
    if left:
        problems.append(f"still mounted: {', '.join(left)}")
    ul = state.ul_netns
    if ul is not None and system.netns_exists(ul):
        # Cut the wire first: the kernel frees a deleted namespace's devices later, in a
        # work queue (cleanup_net), so without this the host can answer on the underlay for
        # a moment after `ip netns delete` has returned. Deleting one veth end removes both.
        ifname = info.ul_ifname
        attempt(f"delete {ifname}", lambda: links.delete_link(ul, ifname))
    attempt(f"delete netns {info.netns}", lambda: system.netns_delete(info.netns))
    if system.netns_exists(info.netns):
        problems.append(f"netns {info.netns} still exists")
    if not left:
        attempt(f"remove {info.dir}", lambda: rmtree(info.dir))
    if not problems:
        state.hosts.pop(info.name, None)
        state.save()
    return problems


def down(state: LabState) -> None:
    """Remove everything the lab created. Idempotent; keeps going past failures and
    raises ``LabError`` at the end (keeping the state file) if something is left."""
    problems: list[str] = []
    attempt = collector(problems)
    hosts = list(state.hosts.values())
    daemons = [info.daemon for info in hosts if info.daemon is not None]
    attempt("stop daemons", lambda: procs.terminate_all(daemons, STOP_TIMEOUT))
    for info in hosts:
        problems += teardown_host(state, info, kill9=False)
    attempt("stop etcd", lambda: etcdcluster.stop_single(state, STOP_TIMEOUT, False))
    cluster = EtcdCluster(state) if state.etcd_members else None
    if cluster is not None:
        attempt("stop etcd cluster", cluster.stop)
    ul = state.ul_netns
    if ul is not None:
        ul_id = system.netns_id(ul)
        if ul_id is not None:
            attempt("kill processes in underlay", lambda: procs.kill_in_netns({ul_id}))
        attempt(f"delete netns {ul}", lambda: system.netns_delete(ul))
        if system.netns_exists(ul):
            problems.append(f"netns {ul} still exists")
        else:
            state.ul_netns = None
    left = system.unmount_under(state.dir)
    if left:
        problems.append(f"still mounted: {', '.join(left)}")
    else:
        attempt(f"remove {state.dir}", lambda: rmtree(state.dir))
    if problems:
        if statefile.exists(state.name):
            state.save()
        raise LabError(f"lab {state.name!r} not fully removed: " + "; ".join(problems))
    state.remove_file()


def collector(problems: list[str]) -> Callable[[str, Callable[[], object]], None]:
    def attempt(what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:
            problems.append(f"{what}: {exc}")

    return attempt


def rmtree(path: str) -> None:
    # Never descend into a mount point (a bind mount of something real would be emptied).
    if system.mounts_under(path):
        raise LabError(f"{path} still has mounts; not removing it")
    if os.path.exists(path):
        shutil.rmtree(path)


def runc_delete_all(exec_root: str) -> None:
    """``runc delete --force`` every container the host's daemon left behind.

    The daemon is gone by now and its containers were killed with the rest of the
    host's processes; deleting their runc state is what removes their cgroups
    (``/sys/fs/cgroup/*/tether/<id>``), which would otherwise stay on the machine.
    """
    import subprocess
    from pathlib import Path

    root = Path(exec_root) / "runtime" / "runc"
    if not root.is_dir():
        return
    for state in sorted(root.iterdir()):
        if state.is_dir():
            subprocess.run(
                ["/usr/sbin/runc", "--root", str(root), "delete", "--force", state.name],
                capture_output=True,
                timeout=30,
                check=False,
            )
