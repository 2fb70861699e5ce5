"""Container routes beyond the lifecycle: pause/unpause, top, stats, export, changes
(``docker diff``), archive (``docker cp``) and the removal of a legacy link."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, parse_filters, qbool
from tether.engine.filters import check_prune_filters, prune_match
from tether.engine.stats import empty_stats_json, stats_json
from tether.errors import BadRequest, NotFound

STATS_INTERVAL = 1.0


async def pause(request: web.Request) -> web.Response:
    await request.app[ENGINE].containers.ops.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await request.app[ENGINE].containers.ops.unpause(request.match_info["id"])
    return web.Response(status=204)


async def top(request: web.Request) -> web.Response:
    ops = request.app[ENGINE].containers.ops
    out = await ops.top(request.match_info["id"], request.query.get("ps_args") or "")
    return json_response(out)


async def stats(request: web.Request) -> web.StreamResponse:
    """Docker's: one frame a second; ``stream=0`` answers the second sample (so the CPU
    figures have a previous one), ``one-shot=1`` with ``stream=0`` the first."""
    ctl = request.app[ENGINE].containers
    c = ctl.get(request.match_info["id"])
    stream = qbool(request, "stream", default=True)
    one_shot = qbool(request, "one-shot")
    if not stream and (not c.running or c.state.status == "restarting"):
        return json_response(empty_stats_json(c.name, c.id))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    prev: dict[str, Any] | None = None
    skip_first = not stream and not one_shot
    with contextlib.suppress(ConnectionError):
        while True:
            sample = await ctl.ops.stats(c)
            if sample is not None:
                frame = stats_json(c.name, c.id, sample, prev)
                prev = sample
                if skip_first:
                    skip_first = False
                else:
                    await resp.write(json.dumps(frame).encode() + b"\n")
                    if not stream:
                        break
            elif not stream and prev is None:
                await resp.write(json.dumps(empty_stats_json(c.name, c.id)).encode() + b"\n")
                break
            if c.id not in ctl.containers:
                break
            await asyncio.sleep(STATS_INTERVAL)
        await resp.write_eof()
    return resp


async def _stream_out(
    request: web.Request, resp: web.StreamResponse, chunks: AsyncIterator[bytes]
) -> web.StreamResponse:
    await resp.prepare(request)
    try:
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
    except ConnectionError:
        pass
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    return resp


async def export(request: web.Request) -> web.StreamResponse:
    chunks = request.app[ENGINE].containers.ops.export(request.match_info["id"])
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    return await _stream_out(request, resp, chunks)


async def changes(request: web.Request) -> web.Response:
    out = await request.app[ENGINE].containers.ops.changes(request.match_info["id"])
    return json_response(out or None)


def _path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise BadRequest("Path cannot be empty")
    return path


def _stat_header(st: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(st).encode()).decode()


async def archive_head(request: web.Request) -> web.Response:
    ops = request.app[ENGINE].containers.ops
    st = await ops.path_stat(request.match_info["id"], _path(request))
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(st)})


async def archive_get(request: web.Request) -> web.StreamResponse:
    ops = request.app[ENGINE].containers.ops
    st, chunks = await ops.archive(request.match_info["id"], _path(request))
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "application/x-tar",
            "X-Docker-Container-Path-Stat": _stat_header(st),
        },
    )
    return await _stream_out(request, resp, chunks)


async def archive_put(request: web.Request) -> web.Response:
    ops = request.app[ENGINE].containers.ops
    path = _path(request)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 16):
            yield chunk

    await ops.extract(
        request.match_info["id"], path, body(), qbool(request, "noOverwriteDirNonDir")
    )
    return web.Response(status=200)


async def remove_link(request: web.Request) -> web.Response:
    """``DELETE /containers/{parent}/{alias}?link=1`` (``docker rm --link /web/db``)."""
    ref = request.match_info["ref"]
    if not qbool(request, "link"):
        raise BadRequest(f"invalid container name: {ref}")  # only a link's name has a slash
    await request.app[ENGINE].containers.remove_link(ref)
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    filters = parse_filters(request)
    check_prune_filters(filters)
    gone = []
    reclaimed = 0
    for c in list(engine.containers.list()):
        if c.running or c.state.status == "restarting":
            continue
        if not prune_match(c.config.get("Labels") or {}, c.created, filters):
            continue
        size = await engine.containers.ops.size_rw(c)
        try:
            await engine.containers.remove(c.id, force=False)
        except NotFound:
            continue
        gone.append(c.id)
        reclaimed += size
    return json_response({"ContainersDeleted": gone or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("POST", "/containers/prune", prune)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats)
    router.add("GET", "/containers/{id}/export", export)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("HEAD", "/containers/{id}/archive", archive_head)
    router.add("GET", "/containers/{id}/archive", archive_get)
    router.add("PUT", "/containers/{id}/archive", archive_put)
    router.add("DELETE", "/containers/{ref:.*/.+}", remove_link)
