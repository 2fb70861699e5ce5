"""Docker's prune filters, shared by container and network prune.

``until`` (created before a unix time or an RFC 3339 time), ``label`` (has every
given ``key`` or ``key=value``) and ``label!`` (has none of them).
"""

from __future__ import annotations

import datetime as dt

from tether.errors import BadRequest

PRUNE_KEYS = ("until", "label", "label!")


def rfc3339_ts(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (0.0 when it is not one)."""
    if not text or text.startswith("0001"):
        return 0.0
    base = text.rstrip("Z")[:26]
    try:
        return dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def check_prune_filters(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in PRUNE_KEYS:
            raise BadRequest(f"invalid filter '{key}'")


def prune_match(labels: dict[str, str], created: str, filters: dict[str, list[str]]) -> bool:
    def has(spec: str) -> bool:
        k, eq, v = spec.partition("=")
        return k in labels and (not eq or labels[k] == v)

    for key, values in filters.items():
        if key == "until":
            for v in values:
                try:
                    limit = float(v)
                except ValueError:
                    limit = rfc3339_ts(v if "T" in v else "")
                    if not limit:
                        raise BadRequest(f"invalid filter 'until={v}'") from None
                if rfc3339_ts(created) >= limit:
                    return False
        elif key == "label":
            if not all(has(v) for v in values):
                return False
        elif key == "label!":
            if any(has(v) for v in values):
                return False
        else:
            raise BadRequest(f"invalid filter '{key}'")
    return True
