"""``python -m tether.demo``: the seed walkthrough (``make demo``).

Builds the lab ``seed`` (docker201, docker202, etcd), imports the busybox image on both hosts,
runs sections 1-7 with the docker CLI, prints a summary table, always removes the lab, and
exits 1 if any step failed (2 when it cannot run at all here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from tether.demo import labsetup, summary
from tether.demo.runner import Runner
from tether.demo.sections import SECTIONS, Ctx
from tether.demo.targets import LabTargets, find_cli, run_command
from tether.lab.lab import Lab

LOG_DIR = "/tmp/tether-demo-logs"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tether.demo", description=__doc__)
    p.add_argument("--lab", default=labsetup.LAB_NAME, help="lab name (default: %(default)s)")
    p.add_argument(
        "--sections", default="", help="comma-separated section numbers to run (default: all)"
    )
    p.add_argument(
        "--cli",
        default="",
        help="client to use instead of the docker CLI found on PATH (e.g. .venv/bin/tether)",
    )
    p.add_argument("--no-color", action="store_true", help="plain output even on a terminal")
    return p.parse_args(argv)


def _save_logs(lab: Lab) -> str | None:
    """Copy the daemons' logs out of the lab before it is removed (for a failed step)."""
    try:
        os.makedirs(LOG_DIR, exist_ok=True)
        for name, host in lab.hosts.items():
            if os.path.exists(host.daemon_log):
                shutil.copyfile(host.daemon_log, os.path.join(LOG_DIR, f"{name}.log"))
        return LOG_DIR
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if os.geteuid() != 0:
        print("the demo builds network namespaces and needs root", file=sys.stderr)
        return 2
    wanted = {s.strip() for s in args.sections.split(",") if s.strip()}
    cli: tuple[str, ...]
    if args.cli:
        cli, cli_name = (args.cli,), os.path.basename(args.cli)
    else:
        cli, cli_name = find_cli()
    targets = LabTargets({}, (cli, cli_name))
    r = Runner(run_command, targets, sys.stdout, color=sys.stdout.isatty() and not args.no_color)
    r.note(
        f"client: {' '.join(cli)} (shown as '{cli_name}'); lab {args.lab!r}: "
        f"{', '.join(labsetup.HOSTS)} + etcd"
    )
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="tether-demo-")
    lab: Lab | None = None
    logs: str | None = None
    try:

        def up() -> None:
            nonlocal lab
            lab = labsetup.start_lab(args.lab)

        hosts_flags = " ".join(f"--host {h}" for h in labsetup.HOSTS)
        if r.action("local", f"tether lab up {args.lab} {hosts_flags} --etcd", up) and lab:
            targets.set_hosts(lab.hosts)
            labsetup.install_image(r, labsetup.HOSTS, os.path.join(tmp, "alpine.tar"))
            the_lab = lab
            ctx = Ctx(
                r=r,
                h1=labsetup.HOSTS[0],
                h2=labsetup.HOSTS[1],
                addresses={n: h.address for n, h in the_lab.hosts.items()},
                restart_daemon=lambda host: the_lab.restart_daemon(host),
            )
            for key, title, fn in SECTIONS:
                if wanted and key not in wanted:
                    continue
                with r.section(key, title):
                    fn(ctx)
    finally:
        if lab is not None:
            the = lab
            logs = _save_logs(the)
            with r.section("-", "lab removal"):
                r.action("local", f"tether lab down {args.lab}", the.down)
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    print()
    print(f"==== summary ({elapsed:.0f}s, client {cli_name}) ====")
    print(summary.render(r.sections))
    if logs and r.failed:
        print(f"\ndaemon logs kept in {logs}/")
    return summary.exit_status(r.results)


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main"]
