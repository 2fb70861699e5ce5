"""``GET /containers/{id}/logs``: the container's log, its ``since``/``until`` window.

``since`` and ``until`` are what the docker CLI sends (a unix time, ``seconds[.nanos]``, made
from the user's RFC 3339 time or duration); an RFC 3339 time is taken too. ``until=0`` (or
empty) means no end. A follow whose ``until`` has passed ends after the existing lines.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from tether.api import httpd as web
from tether.api.http import ENGINE, Router, qbool
from tether.api.streams import frame
from tether.engine.logconfig import is_none_driver
from tether.errors import BadRequest, NotImplementedHere


def _rfc3339(value: str) -> float:
    """``2021-01-02T03:04:05.123456789Z`` (or with an offset) -> unix seconds; 0 if not one."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def parse_time(name: str, value: str | None) -> float:
    """A ``since``/``until`` value as unix seconds (0: not given)."""
    if not value or value == "0":
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    t = _rfc3339(value) if "T" in value else 0.0
    if t <= 0:
        raise BadRequest(f"invalid value for {name}: {value!r}")
    return t


async def logs(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    ctl = engine.containers
    c = ctl.get(request.match_info["id"])
    stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
    if not stdout and not stderr:
        raise BadRequest("You must choose at least one stream")
    if is_none_driver(c.host_config):
        raise NotImplementedHere("configured logging driver does not support reading")
    tail_q = request.query.get("tail", "all")
    tail = None if tail_q in ("all", "") else int(tail_q) if tail_q.isdigit() else None
    since = parse_time("since", request.query.get("since"))
    until = parse_time("until", request.query.get("until")) or None
    follow = qbool(request, "follow") and c.running and (until is None or until > time.time())
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = (
        "application/vnd.docker.raw-stream"
        if c.tty
        else "application/vnd.docker.multiplexed-stream"
    )
    await resp.prepare(request)
    stop = ctl.exit_future(c) if follow else None
    async for stream, data in engine.read_logs(
        ctl.files_dir(c) / "container.log",
        follow=follow,
        tail=tail,
        stdout=stdout,
        stderr=stderr,
        since=since,
        until=until,
        timestamps=qbool(request, "timestamps"),
        stop=stop,
    ):
        await resp.write(data if c.tty else frame(stream, data))
    await resp.write_eof()
    return resp


def register(router: Router) -> None:
    router.add("GET", "/containers/{id}/logs", logs)
