"""Debug-only memory tracing of the daemon (off unless ``TETHER_TRACEMALLOC`` is set).

``TETHER_TRACEMALLOC=/path/file tether daemon ...`` starts :mod:`tracemalloc` (frames:
``TETHER_TRACEMALLOC_FRAMES``, default 6; 0 = no tracing, only the RSS figures); each
``SIGUSR2`` sent to the daemon appends to the file the RSS before and after glibc's
``malloc_trim(0)`` (memory freed but kept by the allocator), the traced size, the
allocation sites that grew most since the previous signal and the object types whose
counts grew. ``bench/churn_rss.py --trace`` uses it to find
what a container or network leaves behind. Tracing slows the daemon: never in production.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import threading
import time
import tracemalloc
from collections import Counter

ENV = "TETHER_TRACEMALLOC"
_TOP = 30


def install() -> None:
    """Start tracing and the dump thread when asked to (call before other threads start)."""
    path = os.environ.get(ENV)
    if not path:
        return
    frames = int(os.environ.get("TETHER_TRACEMALLOC_FRAMES", "6"))
    if frames > 0:
        tracemalloc.start(frames)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    threading.Thread(target=_dumper, args=(path,), name="memdebug", daemon=True).start()


def _dumper(path: str) -> None:
    prev: tracemalloc.Snapshot | None = None
    prev_types: Counter[str] = Counter()
    while True:
        signal.sigwaitinfo({signal.SIGUSR2})
        gc.collect()
        rss = _rss_kib()
        trimmed = _malloc_trim()
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        current, peak = tracemalloc.get_traced_memory()
        lines = [
            f"=== {time.strftime('%H:%M:%S')} rss {rss} KiB, after malloc_trim {trimmed} KiB;"
            f" traced {current >> 10} KiB (peak {peak >> 10})"
        ]
        if not tracemalloc.is_tracing():
            with open(path, "a") as f:
                f.write("\n".join(lines) + "\n")
            continue
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if prev is not None:
            for stat in snap.compare_to(prev, "traceback")[:_TOP]:
                if stat.size_diff <= 0:
                    break
                lines.append(f"+{stat.size_diff >> 10} KiB +{stat.count_diff} blocks")
                lines.extend("    " + ln for ln in stat.traceback.format(limit=6))
            grew = sorted(((n - prev_types[t], t) for t, n in types.items()), reverse=True)
            lines.append("object types that grew: " + ", ".join(
                f"{t} +{d}" for d, t in grew[:_TOP] if d > 0
            ))  # fmt: skip
        with open(path, "a") as f:
            f.write("\n".join(lines) + "\n")
        prev, prev_types = snap, types


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _malloc_trim() -> int:
    """Give glibc's free memory back to the kernel; the RSS after it (KiB)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_kib()
