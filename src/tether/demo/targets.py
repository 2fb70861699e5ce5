"""How the demo's steps become processes.

Docker CLI steps run in the root namespace with ``DOCKER_HOST=unix://<host socket>`` (the CLI
only talks to the socket). Host-side steps (``wget`` to a published port, ``kill`` of a
container's process) run inside the lab host's network namespace through ``nsenter --net``,
so their traffic starts in that host. The real docker CLI is used when installed; tether's own
CLI (same verbs) otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from tether.demo.model import Command, Output

DOCKER_CANDIDATES = ("/usr/local/bin/docker", "/usr/bin/docker")
_DROP_ENV = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION")


class HostLike(Protocol):
    """What the demo needs of a lab host (tether.lab.lab.LabHost has it)."""

    def docker_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]: ...

    def argv(self, cmd: Sequence[str]) -> list[str]: ...


def find_cli() -> tuple[tuple[str, ...], str]:
    """(argv prefix, name shown in the transcript): the docker CLI, else tether's CLI."""
    found = shutil.which("docker")
    for path in ((found,) if found else ()) + DOCKER_CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return (path,), "docker"
    own = Path(sys.executable).parent / "tether"
    if own.is_file():
        return (str(own),), "tether"
    return (sys.executable, "-m", "tether"), "tether"


class LabTargets:
    """Builds commands against the hosts of a lab, by host name."""

    def __init__(
        self, hosts: Mapping[str, HostLike], cli: tuple[tuple[str, ...], str] | None = None
    ) -> None:
        self._hosts = dict(hosts)
        self._cli, self.cli_name = cli if cli is not None else find_cli()

    def set_hosts(self, hosts: Mapping[str, HostLike]) -> None:
        self._hosts = dict(hosts)

    def _host(self, name: str) -> HostLike:
        try:
            return self._hosts[name]
        except KeyError:
            raise KeyError(f"no lab host {name!r}") from None

    def docker(self, host: str, args: Sequence[str], timeout: float) -> Command:
        env = self._host(host).docker_env()
        for k in _DROP_ENV:
            env.pop(k, None)
        env["DOCKER_CLI_HINTS"] = "false"
        return Command(
            host=host,
            argv=(*self._cli, *args),
            shown=shlex.join([self.cli_name, *args]),
            env=env,
            timeout=timeout,
        )

    def shell(self, host: str, args: Sequence[str], timeout: float) -> Command:
        return Command(
            host=host,
            argv=tuple(self._host(host).argv(list(args))),
            shown=shlex.join(args),
            env=None,
            timeout=timeout,
        )


def run_command(cmd: Command) -> Output:
    """The real executor: a subprocess with a timeout (code 124) and no stdin."""
    try:
        proc = subprocess.run(
            list(cmd.argv),
            env=dict(cmd.env) if cmd.env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=cmd.timeout,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        return Output(124, partial, f"(timed out after {cmd.timeout:.0f}s)\n")
    except OSError as exc:
        return Output(127, "", f"cannot run {cmd.argv[0]}: {exc}\n")
    return Output(proc.returncode, proc.stdout, proc.stderr)
