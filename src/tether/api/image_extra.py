"""Image routes beyond the basics: history, save (``docker save``), prune, commit.

The work is the image store's (``ImageStore.history``, ``save``, ``prune``); here are
the HTTP shapes and Docker's prune filters (``dangling``, ``until``, ``label``,
``label!``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from tether.api import httpd as web
from tether.api.containers import inspect_config
from tether.api.http import ENGINE, Router, json_response, parse_filters, qbool
from tether.engine.commit import CommitRequest
from tether.engine.commit import commit as commit_container
from tether.engine.filters import check_prune_filters, prune_match
from tether.errors import BadRequest

log = logging.getLogger("tether.api")

_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3}
_UNIT_SECONDS.update({"s": 1.0, "m": 60.0, "h": 3600.0})


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration (``10m``, ``1h30m``, ``-2s``); None when it is not one."""
    if text == "0":
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text)
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def prune_filters(filters: dict[str, list[str]]) -> tuple[bool, dict[str, list[str]]]:
    """``(dangling only, the other filters)``; ``until`` durations become unix times."""
    rest = {k: v for k, v in filters.items() if k != "dangling"}
    check_prune_filters(rest)
    dangling = True
    values = filters.get("dangling") or []
    if values:
        if set(values) <= {"false", "0"}:
            dangling = False
        elif not set(values) <= {"true", "1"}:
            raise BadRequest(f"invalid filter 'dangling=[{' '.join(values)}]'")
    until = rest.get("until") or []
    if len(until) > 1:
        raise BadRequest("more than one until filter specified")
    if until and (seconds := go_duration(until[0])) is not None:
        rest["until"] = [f"{time.time() - seconds:.9f}"]
    return dangling, rest


async def history(request: web.Request) -> web.Response:
    images = request.app[ENGINE].images
    return json_response(images.history(request.match_info["name"]))


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    chunks = request.app[ENGINE].images.save(names)  # unknown names: 404 before any byte
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await resp.prepare(request)
    try:
        async for chunk in chunks:
            await resp.write(chunk)
    except (ConnectionError, OSError) as exc:
        log.warning("image save for %s stopped: %s", names, exc)
        if request.transport is not None:
            request.transport.close()  # a cut archive must not look whole
        return resp
    await resp.write_eof()
    return resp


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


async def prune(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    dangling, filters = prune_filters(parse_filters(request))

    def in_use(image_id: str) -> Any:
        for c in engine.containers.containers.values():
            if c.image_id == image_id:
                return c.id, c.running
        return None

    def match(image: Any) -> bool:
        return prune_match(image.labels, image.created, filters)

    return json_response(await engine.images.prune(dangling, match, in_use))


async def commit(request: web.Request) -> web.Response:
    """``POST /commit`` (``docker commit``): 201 ``{"Id": "sha256:..."}``."""
    engine = request.app[ENGINE]
    q = request.query
    raw = await request.read()
    try:
        config = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if config is not None and not isinstance(config, dict):
        raise BadRequest("json: cannot unmarshal the body into Go value of type container.Config")
    req = CommitRequest(
        container=q.get("container", ""),
        repo=q.get("repo", ""),
        tag=q.get("tag", ""),
        author=q.get("author", ""),
        comment=q.get("comment", ""),
        changes=q.getall("changes", []),
        config=config or {},
        pause=qbool(request, "pause", default=True),
    )
    ctl = engine.ctl()
    cfg = inspect_config(ctl.get(req.container))
    image_id = await commit_container(ctl, engine.images, req, cfg)
    return json_response({"Id": image_id}, status=201)


def register(router: Router) -> None:
    router.add("POST", "/commit", commit)
    router.add("GET", "/images/get", save_many)
    router.add("POST", "/images/prune", prune)
    router.add("GET", "/images/{name:.+}/history", history)
    router.add("GET", "/images/{name:.+}/get", save_one)
