"""Import a package's submodules without running its ``__init__`` (resident memory).

``import pyroute2`` runs a ``__init__`` that imports the whole library — NDB, IPDB,
ethtool, conntrack, IPVS, nl80211, plan9... 163 modules, ~13 MB of resident memory and
~85 ms in the daemon — although the daemon uses only ``pyroute2.iproute`` (99 modules,
~7 MB). :func:`bare_package` puts in ``sys.modules`` a package object whose ``__init__``
has not run, so ``from pyroute2.iproute.linux import AsyncIPRoute`` loads only what that
module imports. The package stays whole for everyone else: a name asked of it that is
one of its submodules is imported; any other name (``from pyroute2 import IPRoute``)
runs the real ``__init__`` first, in the same module object, and is then answered.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

_lock = threading.Lock()


def bare_package(name: str, **preset: object) -> types.ModuleType:
    """``name``'s package module, its ``__init__`` deferred until a name in it is asked for;
    ``preset``: names its submodules take from it at import (``from . import __version__``)."""
    with _lock:
        mod = sys.modules.get(name)
        if mod is not None:
            return mod
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            raise ImportError(f"{name} is not an installed package")
        mod = importlib.util.module_from_spec(spec)
        mod.__dict__.update(preset)
        loaded = False

        def __getattr__(attr: str) -> object:
            nonlocal loaded
            if attr.startswith("__"):
                raise AttributeError(attr)
            if importlib.util.find_spec(f"{name}.{attr}") is not None:
                return importlib.import_module(f"{name}.{attr}")
            with _lock:
                if not loaded:
                    loaded = True
                    assert spec.loader is not None
                    spec.loader.exec_module(mod)
            try:
                return mod.__dict__[attr]
            except KeyError:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

        mod.__getattr__ = __getattr__  # type: ignore[method-assign]
        sys.modules[name] = mod
        return mod


def package_version(name: str) -> str | None:
    """The ``__version__ = "..."`` a package's ``__init__.py`` sets, read without running it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and key.strip() == "__version__":
                return value.strip().strip("\"'") or None
    return None


class _Deferred(types.ModuleType):
    """A stand-in for a module not loaded yet: the first name asked of it loads the real
    module (which then takes its place in ``sys.modules``) and answers from it."""

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):
            raise AttributeError(attr)
        name = self.__name__
        with _lock:
            real = self.__dict__.get("_real")
            if real is None:
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                real = importlib.import_module(name)
                self.__dict__["_real"] = real
        return getattr(real, attr)


def deferred_module(name: str) -> types.ModuleType:
    """``sys.modules[name]`` as a :class:`_Deferred`: ``import name`` costs nothing until a
    name in it is used (pyroute2's ``probe_msg`` imports ``ssl`` for a probe over TLS the
    daemon never sends: ~4 MB of resident memory)."""
    with _lock:
        mod = sys.modules.get(name)
        if mod is not None:
            return mod
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ImportError(f"no module named {name!r}")
        stub = _Deferred(name)
        stub.__spec__ = spec
        stub.__file__ = spec.origin
        sys.modules[name] = stub
        return stub
