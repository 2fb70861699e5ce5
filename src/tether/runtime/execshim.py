"""The parent of a TTY exec: ``python -I -S execshim.py PIDFILE RUNC ARGS...``.

``runc exec --detach --tty --console-socket`` hands the container's pty master to the
daemon (no second pty in between, as Docker's shim and conmon do) and exits once the
process runs; the process is then reparented to the nearest subreaper. This script is
that subreaper: it runs runc, exits with runc's status when runc failed (its stderr is
the caller's), else waits for the process named in PIDFILE and exits with its status
(128+N when killed by signal N, as runc in the foreground does). Standard library only,
run by path so it starts fast.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def main(argv: list[str]) -> int:
    pidfile, cmd = argv[0], argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("execshim: cannot become a subreaper", file=sys.stderr)
        return 125
    runc = os.posix_spawnp(cmd[0], cmd, dict(os.environ))
    _, status = os.waitpid(runc, 0)
    if status_code(status) != 0:
        return status_code(status)
    try:
        with open(pidfile) as f:
            target = int(f.read().strip())
    except (OSError, ValueError):
        print("execshim: runc wrote no pid file", file=sys.stderr)
        return 125
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 125  # the process was never ours (cannot happen with a subreaper)
        if pid == target:
            return status_code(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
