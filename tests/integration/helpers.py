"""Helpers for integration tests that run inside a lab (import with ``from .helpers import ...``).

Everything here is bounded in time; nothing touches the machine's real interfaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tether.lab import naming
from tether.lab.lab import Lab, LabError, LabHost

DOCKER = "/usr/local/bin/docker"


def why_no_lab() -> str | None:
    """Why lab tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "integration tests need root (they build network namespaces)"
    for tool in ("ip", "nsenter", "umount"):
        if shutil.which(tool) is None:
            return f"integration tests need {tool!r} on PATH"
    return None


def unique_lab_name(prefix: str = "t") -> str:
    """A fresh lab name (short: it appears in namespace names and socket paths)."""
    while True:
        name = f"{prefix}{secrets.token_hex(4)}"
        if not Lab.exists(name):
            return name


class LabFactory:
    """Builds labs with unique names and always removes every one of them in :meth:`close`."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(
        self,
        hosts: Iterable[str] = ("host1",),
        etcd: bool = False,
        daemons: bool = True,
        **kw: Any,
    ) -> Lab:
        name = unique_lab_name()
        self.names.append(name)  # before up(): a half-built lab is removed too
        return Lab.up(name, list(hosts), etcd=etcd, daemons=daemons, **kw)

    def close(self) -> None:
        errors = []
        for name in reversed(self.names):
            try:
                Lab.destroy(name)
            except LabError as exc:
                errors.append(str(exc))
        self.names.clear()
        if errors:
            raise LabError("lab teardown failed: " + " | ".join(errors))


def docker(
    host: LabHost,
    *args: str,
    check: bool = False,
    timeout: float = 120.0,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real docker CLI against ``host``'s daemon (DOCKER_HOST=unix://...).

    The CLI itself runs in the root namespace (it only talks to the unix socket); use
    :func:`in_host` for commands whose traffic must start inside the host.
    """
    full_env = host.docker_env(env)
    for k in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        full_env.pop(k, None)
    return subprocess.run(
        [DOCKER, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=check,
    )


def in_host(
    host: LabHost, *cmd: str, check: bool = False, timeout: float = 30.0, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` inside ``host``'s network namespace (text output captured)."""
    return host.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=check, **kw)


def ping(host: LabHost, address: str, count: int = 1, wait_s: int = 1) -> bool:
    """One ICMP echo from inside ``host`` to ``address`` (an address the test made)."""
    r = in_host(host, "busybox", "ping", "-c", str(count), "-W", str(wait_s), address)
    return r.returncode == 0


def wait_until(
    pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.1, what: str = "condition"
) -> None:
    """Poll ``pred`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def in_threads(work: Callable[[], None], count: int, timeout: float = 60) -> list[BaseException]:
    """Run ``work`` in ``count`` threads at once; the exceptions they raised (none: [])."""
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors


def root_links() -> list[str]:
    """Interface names in the root network namespace (to prove the lab never touches it)."""
    out = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0].split("@")[0] for line in out.splitlines() if line.strip())


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def lab_netns(name: str) -> list[str]:
    """Namespaces carrying lab ``name``'s prefix (whether or not its state file lists them)."""
    return [n for n in netns_names() if n.startswith(f"{naming.NETNS_PREFIX}{name}-")]


def mounts_mentioning(needles: Sequence[str]) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if any(n in line for n in needles)]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def mark_lab_items(
    config: pytest.Config, items: list[pytest.Item], folder: Path, label: str, reason: str | None
) -> None:
    """Mark every test under ``folder`` ``lab``; skip them all, saying why once, if ``reason``."""
    mine = [i for i in items if folder in Path(str(i.path)).resolve().parents]
    for item in mine:
        item.add_marker(pytest.mark.lab)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    if reason and mine:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        msg = f"{label}: skipping {len(mine)} tests: {reason}"
        if tr is not None:
            tr.write_line(msg)
        else:
            print(msg)


def docker_ok(host: LabHost, *args: str, timeout: float = 60) -> str:
    """Run the docker CLI; assert it succeeded; its stdout."""
    r = docker(host, *args, timeout=timeout)
    assert r.returncode == 0, f"docker {' '.join(args)} -> {r.returncode}: {r.stderr}"
    return r.stdout


def docker_fails(host: LabHost, *args: str, code: int) -> str:
    """Run the docker CLI; assert it exited with ``code``; its stderr."""
    r = docker(host, *args)
    assert r.returncode == code, f"docker {' '.join(args)} -> {r.returncode}: {r.stdout}{r.stderr}"
    return r.stderr


def container_inspect(host: LabHost, name: str) -> dict[str, Any]:
    """``docker inspect NAME``'s one object."""
    import json

    data: list[dict[str, Any]] = json.loads(docker_ok(host, "inspect", name))
    return data[0]
