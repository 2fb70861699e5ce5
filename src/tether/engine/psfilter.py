"""Docker's ``ps`` filters (``GET /containers/json?filters=``), as daemon/list.go has them.

- ``name``, ``id``: regular expressions searched in the name (with and without its leading
  ``/``) or the full id; a value that is not a valid expression matches nothing.
- ``status``, ``exited``, ``label``, ``network``, ``ancestor``: exact values.
- ``before``, ``since``: created before / after the named container (a missing one is a
  ``No such container`` error).
- ``publish``, ``expose``: ``PORT[/PROTO]`` or ``START-END[/PROTO]`` (tcp when omitted): the
  container publishes (exposes) one of those container ports.
- ``volume``: a mounted volume's name, a bind's source or a mount's destination.
- ``health``: ``State.Health.Status`` (starting | healthy | unhealthy), ``none`` for a
  container without a healthcheck.
- ``is-task`` (no swarm tasks), ``isolation`` (``default`` on Linux).

Different values of one key are alternatives; different keys must all match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tether.errors import BadRequest

KEYS = (
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
)
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def _search(pattern: str, *texts: str) -> bool:
    try:
        rx = re.compile(pattern)
    except re.error:
        return False
    return any(rx.search(t) for t in texts)


def parse_ports(key: str, values: list[str]) -> set[str]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` → {"80/tcp", ...}; Docker's errors otherwise."""
    out: set[str] = set()
    for value in values:
        if ":" in value:
            raise BadRequest(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        proto = proto or "tcp"
        start, dash, end = port.partition("-")
        try:
            lo = int(start)
            hi = int(end) if dash else lo
        except ValueError:
            raise BadRequest(
                f'error while looking up for {key} {port}: strconv.ParseUint: parsing "{port}": '
                "invalid syntax"
            ) from None
        if not 0 <= lo <= hi <= 65535:
            raise BadRequest(f"error while looking up for {key} {port}: invalid port range")
        out.update(f"{p}/{proto}" for p in range(lo, hi + 1))
    return out


ALLOWED = {"status": STATUSES, "health": HEALTH, "is-task": ("true", "false")}


def check(filters: dict[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in KEYS:
            raise BadRequest(f"invalid filter '{key}'")
        for v in values:
            if key in ALLOWED and v not in ALLOWED[key]:
                raise BadRequest(f"Invalid filter '{key}={v}'")
        if key in ("publish", "expose"):
            parse_ports(key, values)


def matcher(filters: dict[str, list[str]], find: Callable[[str], Any]) -> Callable[[Any], bool]:
    """A predicate over containers for these filters (checked first; ``find`` resolves the
    containers ``before`` and ``since`` name, raising NotFound)."""
    check(filters)
    filters = {k: v for k, v in filters.items() if v}
    before = [find(v).created for v in filters.get("before", [])]
    since = [find(v).created for v in filters.get("since", [])]
    publish = parse_ports("publish", filters["publish"]) if "publish" in filters else None
    expose = parse_ports("expose", filters["expose"]) if "expose" in filters else None

    def ok(c: Any) -> bool:
        for key, values in filters.items():
            if not _one(key, values, c):
                return False
        if before and not all(c.created < t for t in before):
            return False
        if since and not all(c.created > t for t in since):
            return False
        if publish is not None and not publish & _published(c):
            return False
        return expose is None or bool(expose & set(c.config.get("ExposedPorts") or {}))

    return ok


def _published(c: Any) -> set[str]:
    keys = set((c.host_config.get("PortBindings") or {}).keys())
    keys |= {f"{p['container_port']}/{p['proto']}" for p in c.ports}
    return keys


def _volume_keys(c: Any) -> set[str]:
    """Docker's ps ``volume=``: a mount's volume name (its source when it has none) or its
    destination."""
    keys: set[str] = set()
    for m in getattr(c, "mounts", None) or []:
        keys.add(m.get("Name") or m.get("Source") or "")
        keys.add(m.get("Destination") or "")
    keys.discard("")
    return keys


def _one(key: str, values: list[str], c: Any) -> bool:
    if key == "name":
        return any(_search(v, c.name, "/" + c.name) for v in values)
    if key == "id":
        return any(_search(v, c.id) for v in values)
    if key == "status":
        return getattr(c, "status", c.state.status) in values  # paused shows as "paused"
    if key == "exited":
        return c.state.status == "exited" and str(c.state.exit_code) in values
    if key == "label":
        labels = c.config.get("Labels") or {}
        for v in values:
            k, eq, val = v.partition("=")
            if k not in labels or (eq and labels[k] != val):
                return False
        return True
    if key == "network":
        names: set[str] = set()
        for ep in c.eps():
            names |= {ep.network_name, ep.network_id}
        return any(v in names or any(n.startswith(v) for n in names) for v in values)
    if key == "ancestor":
        return any(v in (c.image, c.image_id) for v in values)
    if key == "health":
        health = getattr(c.state, "health", None)
        return (health["Status"] if health else "none") in values
    if key == "volume":
        return any(v in _volume_keys(c) for v in values)
    if key == "is-task":
        return "false" in values
    if key == "isolation":
        return "default" in values
    return True  # before, since, publish, expose: in matcher
