"""``GET /images/json`` filters, as Docker 20.10 applies them.

Keys: ``dangling`` (``true``/``false``), ``label`` (``key`` or ``key=value``),
``before`` and ``since`` (an image reference; strictly older / newer by creation
time), ``reference`` (a pattern matched, as Go's ``path.Match``, against each
tag's familiar form ``repo:tag`` and then its repository name). With
``reference``, an image is listed with only its matching tags, and an image
whose tags match none is left out (untagged images too): so
``docker images -q nosuch`` prints nothing, as on Docker.

Works on the summaries ``GET /images/json`` returns; ``created_of`` gives the
creation time (seconds) of the image a ``before``/``since`` value names, and
raises the store's NotFound text for an unknown one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from tether.errors import BadRequest

IMAGE_FILTER_KEYS = ("dangling", "label", "before", "since", "reference")
NO_TAG = "<none>:<none>"


@lru_cache(maxsize=256)
def _go_pattern(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` syntax as a regular expression (``*`` and ``?`` stop at ``/``)."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise BadRequest("syntax error in pattern")
            body = pattern[i + 1 : end]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def familiar_match(pattern: str, tag: str) -> bool:
    """Docker's ``reference.FamiliarMatch``: the whole ``repo:tag``, then the repository."""
    rx = _go_pattern(pattern)
    if rx.match(tag):
        return True
    repo = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    return bool(rx.match(repo))


def _labels_match(labels: dict[str, str], specs: list[str]) -> bool:
    for spec in specs:
        key, eq, value = spec.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def check_image_filters(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in IMAGE_FILTER_KEYS:
            raise BadRequest(f"invalid filter '{key}'")
    dangling = filters.get("dangling")
    if dangling and any(v not in ("true", "false") for v in dangling):
        raise BadRequest(f"invalid filter 'dangling=[{' '.join(dangling)}]'")


def filter_images(
    summaries: list[dict[str, Any]],
    filters: dict[str, list[str]],
    created_of: Callable[[str], int],
) -> list[dict[str, Any]]:
    """The summaries that pass every filter (RepoTags narrowed by ``reference``)."""
    check_image_filters(filters)
    if not filters:
        return summaries
    dangling = filters.get("dangling")
    only_dangling = bool(dangling) and "true" in (dangling or [])
    before = [created_of(v) for v in filters.get("before", [])]
    since = [created_of(v) for v in filters.get("since", [])]
    patterns = filters.get("reference", [])
    out = []
    for s in summaries:
        tags = [t for t in s.get("RepoTags") or [] if t != NO_TAG]
        if dangling is not None and bool(dangling) and only_dangling == bool(tags):
            continue
        if "label" in filters and not _labels_match(s.get("Labels") or {}, filters["label"]):
            continue
        created = int(s.get("Created") or 0)
        if any(created >= b for b in before) or any(created <= b for b in since):
            continue
        if patterns:
            tags = [t for t in tags if any(familiar_match(p, t) for p in patterns)]
            if not tags:
                continue
            s = {**s, "RepoTags": tags}
        out.append(s)
    return out
