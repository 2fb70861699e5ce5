"""The embedded DNS server's counters, as plain integers (read by the metrics at scrape time).

The DNS hot path (a cached answer) adds one to an integer and nothing else: no metrics
library on the query path. ``tether.api.metrics`` turns these into Prometheus series.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

# forwarded queries' latency, seconds (upstream round trips: ~1 ms on a LAN to 2 s timeouts)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RCODE_NXDOMAIN = 3
RCODE_SERVFAIL = 2


@dataclass
class DnsStats:
    queries: int = 0  # queries that missed the answer cache (UDP and TCP)
    cached: int = 0  # container names answered from the answer cache
    # (all queries: queries + cached + forward_cached)
    answered: int = 0  # answered by tether's resolver without forwarding (cache hits aside)
    forwarded: int = 0  # not ours and not in the sandbox's answer cache: hit, miss or joined
    forward_cached: int = 0  # forwarded names answered from a sandbox's answer cache (hot path)
    forward_hits: int = 0  # answered from the forwarding cache (dns_cache), hot path aside
    forward_misses: int = 0  # exchanges sent upstream (one per key in flight)
    forward_coalesced: int = 0  # joined an exchange already in flight for the same question
    nxdomain: int = 0  # NXDOMAIN answers (upstream's: tether never answers NXDOMAIN itself)
    servfail: int = 0  # SERVFAIL answers (no upstream, upstream failed, too many in flight)
    forward_counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    forward_sum: float = 0.0

    def forwarded_reply(self, seconds: float, answer: bytes) -> None:
        """One forwarded query answered after ``seconds`` (its rcode counted)."""
        self.forward_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.forward_sum += seconds
        self.rcode(answer)

    def rcode(self, answer: bytes) -> None:
        code = answer[3] & 0x0F if len(answer) > 3 else 0
        if code == RCODE_NXDOMAIN:
            self.nxdomain += 1
        elif code == RCODE_SERVFAIL:
            self.servfail += 1
