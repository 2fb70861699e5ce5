"""Back-off, jitter and the in-flight limiter that keep a slow cluster store from a storm.

See docs/cluster-overload.md for the numbers and the figures behind them.

- ``Backoff``: exponential back-off with "equal jitter" (a delay is uniform in
  [d/2, d], d = base·2^n capped at ``cap``): retries of many hosts spread out and never
  come faster than ``base/2``; ``reset()`` after a success.
- ``jittered(period)``: a periodic pass's sleep, ±``JITTER`` of its period, so passes of
  a hundred daemons started together do not stay in step.
- ``Limiter``: at most ``limit`` store calls in flight per daemon; the others wait in
  line (FIFO). The limit is adaptive (AIMD): a call that fails for overload (timeout,
  unavailable) halves it (down to 1: a single probe), each success raises it by one up to
  ``size``. So sixteen parallel ``docker run`` requests become one queue, and while the
  store is slow the daemon sends one request at a time instead of sixteen retry loops.
- ``Recovery``: "the store is back", the one signal that ends back-off sleeps early: a probe
  call that fails marks the store failing; the first probe answered after that wakes every
  waiter (``wait``). The etcd store's probes are the lease's own calls (keep-alive, grant).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from collections.abc import Callable
from types import TracebackType

__all__ = ["JITTER", "Backoff", "Limiter", "Recovery", "jittered"]

JITTER = 0.2  # periodic passes: period × uniform(1 - JITTER, 1 + JITTER)


def jittered(period: float, rand: Callable[[], float] = random.random) -> float:
    """``period`` ± ``JITTER``·``period``."""
    return period * (1.0 - JITTER + 2.0 * JITTER * rand())


class Backoff:
    """Exponential back-off with equal jitter; ``next()`` is the next delay."""

    def __init__(self, base: float, cap: float, rand: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.rand = rand
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return ceiling / 2 + ceiling / 2 * self.rand()

    def reset(self) -> None:
        self.failures = 0


class Limiter:
    """At most ``limit`` holders at a time, waiting in FIFO order; AIMD on the limit.

    ``async with limiter:`` holds a slot; ``failed()`` after an overload failure halves
    the limit, ``succeeded()`` raises it by one (up to ``size``). ``waited`` counts the
    acquisitions that had to queue, ``in_flight`` the current holders.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("limiter size must be at least 1")
        self.size = size
        self.limit = size
        self.in_flight = 0
        self.waited = 0
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def try_acquire(self) -> bool:
        """A slot now if one is free and nobody waits; False otherwise."""
        if self.in_flight < self.limit and not self._queue:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, timeout: float | None = None) -> None:
        """A slot, waiting in line; ``TimeoutError`` after ``timeout`` seconds in line.

        The deadline is a timer on the waiter's own future, not ``asyncio.wait_for`` around
        this coroutine: with ``wait_for`` a caller cancelled just after the inner task had
        taken its slot never released it (a leaked slot, and with the limit shrunk to one,
        every later call shed until a success that could not come)."""
        if self.try_acquire():
            return
        self.waited += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.append(fut)
        timer = None if timeout is None else loop.call_later(timeout, self._expire, fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # the slot was handed over as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, fut: asyncio.Future[None]) -> None:
        if not fut.done():
            with contextlib.suppress(ValueError):
                self._queue.remove(fut)
            fut.set_exception(TimeoutError())

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._queue and self.in_flight < self.limit:
            fut = self._queue.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def failed(self) -> None:
        self.limit = max(1, self.limit // 2)

    def succeeded(self) -> None:
        if self.limit < self.size:
            self.limit += 1
            self._wake()

    async def __aenter__(self) -> Limiter:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Recovery:
    """ "The store answers again": ``failed()`` after a probe got no answer, ``answered()``
    after one did; the first answer after a failure wakes every ``wait`` in progress. An
    answer while nothing failed (a store merely slow for other calls) wakes nobody."""

    def __init__(self) -> None:
        self.failing = False
        self._back = asyncio.Event()  # set (and replaced) when the store is back

    def failed(self) -> None:
        self.failing = True

    def answered(self) -> None:
        if self.failing:
            self.failing = False
            back, self._back = self._back, asyncio.Event()
            back.set()

    async def wait(self, timeout: float) -> bool:
        """Up to ``timeout`` seconds for the store to be back (True) from now on; False
        when the time ran out first."""
        back = self._back
        try:
            await asyncio.wait_for(back.wait(), timeout)
        except TimeoutError:
            return False
        return True
