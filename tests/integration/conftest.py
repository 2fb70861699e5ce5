"""Fixtures for integration tests: labs of network namespaces, each host with its own daemon.

Every test in this folder is marked ``lab`` and skipped (with the reason printed) when it
cannot build namespaces here (not root, tools missing). Labs made through these fixtures are
always removed, even when the test fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tether.lab.lab import Lab, LabHost
from tether.linux.netns import NetnsDir

from .helpers import LabFactory, mark_lab_items, why_no_lab
from .helpers import docker as _docker

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_lab_items(config, items, _HERE, "tests/integration", why_no_lab())


@pytest.fixture
def lab_factory() -> Iterator[LabFactory]:
    """``lab_factory(hosts=("host1",), etcd=False, daemons=True, **kw) -> Lab``; torn down after."""
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_lab_factory() -> Iterator[LabFactory]:
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def lab1(module_lab_factory: LabFactory) -> Lab:
    """One host (``host1``) running a tether daemon; shared by the tests of a module."""
    if importlib.util.find_spec("tether.__main__") is None:
        pytest.skip("no `python -m tether` yet (tether/__main__.py): cannot start a daemon")
    return module_lab_factory(["host1"], daemons=True)


@pytest.fixture(scope="module")
def host1(lab1: Lab) -> LabHost:
    return lab1.host("host1")


@pytest.fixture
def docker() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``docker(host, *args, check=False, timeout=120, input=None)`` -> CompletedProcess[str]."""
    return _docker


@pytest.fixture(scope="module")
def etcd_lab3(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """Three hosts and the lab's etcd, the busybox image imported as alpine on each (one
    per test module: the overlay modules share it)."""
    from .imagefix import build_busybox_tar, import_alpine

    if importlib.util.find_spec("tether.__main__") is None:
        pytest.skip("no `python -m tether` yet: cannot start a daemon")
    lab = module_lab_factory(["host1", "host2", "host3"], etcd=True)
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    for h in lab.hosts.values():
        import_alpine(h, tar)
    return lab


@pytest.fixture
def nsdir(tmp_path: Path) -> Iterator[NetnsDir]:
    """A private netns directory under tmp_path; every namespace made in it is removed."""
    if os.geteuid() != 0 or shutil.which("nsenter") is None:
        pytest.skip("needs root and nsenter")
    d = NetnsDir(tmp_path / "netns")
    try:
        yield d
    finally:
        for name in d.list():
            d.delete(name)
        subprocess.run(["umount", "-l", str(d.root)], check=False, capture_output=True)
