"""What the lab still runs as commands: `ip netns`, `nsenter` and `umount`; and mount reading.

Links, addresses and routes go over netlink (:mod:`tether.lab.links`). Three things stay
commands, on purpose:

- ``ip netns add``/``ip netns delete`` make and remove the named namespaces under
  ``/run/netns``. ``ip`` first makes that folder a shared bind mount of itself, so the
  names are seen from every mount namespace (tests and the user's own ``ip netns``,
  ``nsenter``); tether's :mod:`tether.linux.netns` makes its own folder *private* on purpose
  (for the runtime's mount namespace). Redoing iproute2's mount steps here would be a second,
  untested copy of them for no gain (one call per host, at lab start and end).
- Commands inside a host (its daemon, etcd, curl, the tests' commands) are processes that
  must start in the namespace: ``nsenter --net`` joins the network namespace only
  (``ip netns exec`` would also remount /sys in a new mount namespace, hiding the cgroup
  hierarchy runc needs).
- ``umount -l`` of what the host's daemon left mounted (lazy, best effort, at teardown).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from tether.lab import naming
from tether.lab.errors import LabError

IP = "ip"
NSENTER = "nsenter"


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise LabError(f"command failed ({proc.returncode}): {' '.join(argv)}: {msg}")
    return proc


def nsenter_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """argv that runs ``argv`` in ``netns`` joining the network namespace only.

    (`ip netns exec` would also remount /sys in a new mount namespace, hiding the cgroup
    hierarchy runc needs.)
    """
    return [NSENTER, f"--net={naming.netns_path(netns)}", *argv]


def netns_exists(netns: str) -> bool:
    return os.path.exists(naming.netns_path(netns))


def netns_add(netns: str) -> None:
    """Create a named network namespace; fails if the name is taken (so it is never adopted)."""
    run([IP, "netns", "add", netns])


def netns_delete(netns: str) -> None:
    if netns_exists(netns):
        run([IP, "netns", "delete", netns], check=False)


def netns_id(netns: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) identifying a named namespace, or None when it does not exist."""
    try:
        st = os.stat(naming.netns_path(netns))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1 : i + 4]) == 3 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, root) of every mount in our mount namespace."""
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lf, rf = left.split(), right.split()
            if len(lf) < 5 or not rf:
                continue
            result.append((_unescape(lf[4]), rf[0], _unescape(lf[3])))
    return result


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def mounts_under(root: str) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    found = {mp for mp, _, _ in mounts() if _under(mp, root)}
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def netns_mounted_under(root: str) -> set[tuple[int, int]]:
    """Identities of network namespaces bind-mounted (nsfs) at or below ``root``."""
    ids = set()
    for mp, fstype, mroot in mounts():
        if fstype == "nsfs" and mroot.startswith("net:") and _under(mp, root):
            try:
                st = os.stat(mp)
            except OSError:
                continue
            ids.add((st.st_dev, st.st_ino))
    return ids


def unmount_under(root: str, rounds: int = 4) -> list[str]:
    """Lazily unmount everything at or below ``root``; returns what is still mounted."""
    for _ in range(rounds):
        left = mounts_under(root)
        if not left:
            return []
        for mp in left:
            run(["umount", "-l", mp], check=False)
    return mounts_under(root)
