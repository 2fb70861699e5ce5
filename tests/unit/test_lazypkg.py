"""The bare pyroute2 package: the daemon's submodules only, the whole package on demand."""

from __future__ import annotations

import os
import subprocess
import sys

import tether

PROBE = """
import sys
from tether.linux.lazypkg import bare_package
bare_package("pyroute2")
from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
assert "pyroute2.ndb" not in sys.modules and "pyroute2.ipdb" not in sys.modules
n = sum(m.startswith("pyroute2") for m in sys.modules)
from pyroute2 import IPRoute, NDB   # the real __init__ runs now
import pyroute2
assert pyroute2.AsyncIPRoute is AsyncIPRoute and "pyroute2.ndb" in sys.modules
assert bare_package("pyroute2") is pyroute2
try:
    pyroute2.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("no AttributeError")
print(n, sum(m.startswith("pyroute2") for m in sys.modules))
"""


def test_bare_then_whole() -> None:
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(tether.__file__)))
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    bare, whole = int(out[0]), int(out[1])
    assert bare < whole


def test_package_version_read_without_import() -> None:
    from tether.linux.lazypkg import package_version

    assert package_version("aiohttp") == __import__("importlib.metadata").metadata.version(
        "aiohttp"
    )
    assert package_version("no_such_package_here") is None
