"""libnftables through its JSON API, plus an in-memory fake.

``Nft`` is the one small interface the firewall needs: run one JSON batch
(``{"nftables": [...]}``) atomically and return nft's JSON answer. A batch is
one netlink transaction: when any command fails the kernel applies none of it.

``LibNft`` wraps Debian's ``python3-nftables`` (``import nftables``), loaded
lazily so that importing this module costs nothing and works where the module
is missing. The netlink socket belongs to the network namespace of the process
that runs the command; a daemon uses the namespace it was started in.

``FakeNft`` keeps tables, chains, sets, maps and rules in memory and
understands the commands tether sends (add / delete / flush / list of tables,
chains, sets, maps, rules and elements), with the kernel's atomicity and its
error for deleting what does not exist. It is for unit tests of code above the
firewall; the real kernel is tested in ``tests/integration/test_nft.py``.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from tether.errors import Internal, Unavailable

JSON = dict[str, Any]


class NftError(Internal):
    """nft rejected a batch; ``message`` is nft's own error text."""


class Nft(Protocol):
    def run(self, batch: JSON) -> JSON:
        """Run one batch atomically; return nft's JSON output (``{"nftables": [...]}``).

        Raises ``NftError`` with nft's message when the batch is rejected.
        """
        ...


class LibNft:
    """The real thing: one libnftables context, JSON in and out."""

    def __init__(self) -> None:
        try:
            import nftables
        except ImportError as exc:  # pragma: no cover - depends on the host
            raise Unavailable(
                "libnftables is not available (install python3-nftables): " + str(exc)
            ) from exc
        self._nft = nftables.Nftables()
        self._nft.set_json_output(True)
        self._nft.set_handle_output(False)
        self._lock = threading.Lock()

    def run(self, batch: JSON) -> JSON:
        with self._lock:
            rc, out, err = self._nft.json_cmd(batch)
        if rc != 0:
            raise NftError(_clean_error(str(err)) or f"nft failed with code {rc}")
        if isinstance(out, dict):
            return out
        if not out:
            return {"nftables": []}
        parsed = json.loads(out)
        return parsed if isinstance(parsed, dict) else {"nftables": []}


def _clean_error(err: str) -> str:
    """nft's error text on one line (it prints the JSON input and carets too)."""
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    msgs = [ln[ln.index("Error:") :] for ln in lines if "Error:" in ln]
    return "; ".join(msgs) if msgs else "; ".join(lines)
