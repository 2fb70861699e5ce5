"""The etcd v3 store (cluster scope), over the asyncio client aetcd.

Work in progress: the store itself lands in the next commit.
"""

from __future__ import annotations


class WatchCompacted(Exception):
    """A watch cannot continue from its revision: the history it needs is gone.

    Raised by every store's watch iterator when ``start_revision`` is older
    than the retained history (etcd compaction) or the watcher fell too far
    behind. The caller lists the prefix again (full resync) and watches from
    the listing's revision + 1.
    """

    def __init__(self, start_revision: int, compact_revision: int) -> None:
        super().__init__(
            f"watch from revision {start_revision} is compacted "
            f"(history starts after revision {compact_revision})"
        )
        self.start_revision = start_revision
        self.compact_revision = compact_revision
