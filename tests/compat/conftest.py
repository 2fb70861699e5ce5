"""Fixtures for compatibility tests: real clients (docker-py, docker-compose, raw HTTP) against
a tether daemon running in a lab host.

The lab code is the integration suite's (``tests/integration/helpers.py``); each test module
gets one lab (module scope) so the suite stays fast. Every test here is marked ``lab`` and
skipped, with the reason printed, where labs cannot run (not root, tools missing).

The ``client`` fixture is a ``docker.DockerClient`` whose every JSON answer is checked against
the v1.41 spec as it arrives (a requests response hook): a violation fails the test whose call
received it.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.compat.schema import load_spec
from tests.integration.helpers import LabFactory, mark_lab_items, why_no_lab

from tether.lab.lab import Lab, LabHost

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]
IMAGE = "busybox:latest"

# answers that are streams of JSON objects (or raw streams), not one JSON document
_STREAMED = ("/events", "/images/create", "/images/load", "/logs", "/attach", "/start")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = why_no_lab()
    if reason is None and importlib.util.find_spec("docker") is None:
        reason = "compat tests need docker-py (pip install docker)"
    mark_lab_items(config, items, _HERE, "tests/compat", reason)


def schema_hook(resp: Any, *args: Any, **kwargs: Any) -> Any:
    """requests response hook: check a JSON answer against the spec (non-streamed only)."""
    if kwargs.get("stream"):
        return resp
    req = resp.request
    path = req.path_url
    if any(path.split("?", 1)[0].endswith(s) for s in _STREAMED):
        return resp
    ctype = resp.headers.get("Content-Type", "")
    if resp.status_code >= 400 and "json" not in ctype:
        raise AssertionError(f"{req.method} {path} -> {resp.status_code} is not JSON: {ctype!r}")
    if "json" not in ctype or not resp.content:
        return resp
    load_spec().check(req.method, path, resp.status_code, resp.json())
    return resp


def checked_client(host: LabHost, version: str = "auto", **kw: Any) -> Any:
    """A docker-py client for ``host`` whose JSON answers are validated against the spec."""
    import docker

    client = docker.DockerClient(base_url=host.docker_host, version=version, timeout=60, **kw)
    client.api.hooks["response"].append(schema_hook)
    return client


def build_rootfs(out: Path) -> Path:
    """The busybox root filesystem tarball (scripts/build-busybox-image.sh)."""
    if not out.exists():
        subprocess.run(
            ["sh", str(_REPO / "scripts/build-busybox-image.sh"), str(out)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return out


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_rootfs(tmp_path_factory.getbasetemp() / "busybox-rootfs.tar")


@pytest.fixture(scope="module")
def compat_lab() -> Iterator[Lab]:
    if importlib.util.find_spec("tether.__main__") is None:
        pytest.skip("no `python -m tether`: cannot start a daemon")
    factory = LabFactory()
    try:
        yield factory(["host1"], daemons=True)
    finally:
        factory.close()


@pytest.fixture(scope="module")
def host(compat_lab: Lab) -> LabHost:
    return compat_lab.host("host1")


@pytest.fixture(scope="module")
def client(host: LabHost, rootfs_tar: Path) -> Iterator[Any]:
    """docker-py client (version negotiated, answers checked) with busybox:latest imported."""
    c = checked_client(host)
    c.api.import_image(
        src=str(rootfs_tar), repository="busybox", tag="latest", changes=['CMD ["/bin/sh"]']
    )
    try:
        yield c
    finally:
        c.close()
