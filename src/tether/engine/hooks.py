"""Change notices that run against the order of construction.

Some parts must tell a part built *after* them that something changed: the
cluster view tells the embedded DNS (which reads the view) that records
changed; the gateway bridge tells the engine (which owns the firewall) that it
made its bridge network. The emitter gets a hook at construction and calls it;
the composition root (``tether.daemon``) connects the listener once that
exists. The emitter knows nothing of the listener, so the dependency stays
one-way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("tether.hooks")


class Hook:
    """Calls every connected function; a failing one is logged and the others still run."""

    def __init__(self) -> None:
        self._fns: list[Callable[[], None]] = []

    def connect(self, fn: Callable[[], None]) -> None:
        self._fns.append(fn)

    def __call__(self) -> None:
        for fn in self._fns:
            try:
                fn()
            except Exception:
                log.exception("change listener failed")


class AsyncHook:
    """Awaits every connected coroutine function in turn (their errors reach the caller)."""

    def __init__(self) -> None:
        self._fns: list[Callable[[], Awaitable[None]]] = []

    def connect(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._fns.append(fn)

    async def __call__(self) -> None:
        for fn in self._fns:
            await fn()
