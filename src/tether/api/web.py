"""The opt-in ``--web-addr`` app (issue 19): the topology page, its read-only API, ``/metrics``.

Every route is a GET; nothing here changes anything. The page (``webui/index.html``) draws the
topology with Cytoscape.js (vendored at build time from the npm registry by
``scripts/vendor-web.sh``; no network access at run time) and its built-in force-directed
``cose`` layout, and reloads the model when the engine emits an event (``/api/events``, a
server-sent event stream; with ``--cluster-store`` the stream also sends ``{"Type": "cluster"}``
when the cluster watch applied a change of another host, checked every 250 ms) and on a 1.5 s poll.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tether.api import httpd as web
from tether.api.http import json_response, qbool
from tether.api.metrics import Metrics
from tether.errors import BadRequest, TetherError

WEBUI = Path(__file__).parent / "webui"
VENDORED = ("cytoscape.min.js",)
HEARTBEAT_S = 15.0
CLUSTER_POLL_S = 0.25  # with --cluster-store: the event stream's check of the watch's revision
WEB_ENGINE: web.AppKey[Any] = web.AppKey("web_engine", object)


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEBUI / "index.html", headers={"Cache-Control": "no-cache"})


async def vendor(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = WEBUI / "vendor" / name
    if name not in VENDORED or not path.is_file():
        raise web.HTTPNotFound(text=f"{name} is not vendored: run scripts/vendor-web.sh")
    return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})


async def topology(request: web.Request) -> web.Response:
    kernel = qbool(request, "kernel", False)
    return json_response(await request.app[WEB_ENGINE].topology(kernel=kernel))


async def path(request: web.Request) -> web.Response:
    src, dst = request.query.get("from", ""), request.query.get("to", "")
    try:
        if not src or not dst:
            raise BadRequest("path needs from= and to=")
        return json_response(await request.app[WEB_ENGINE].path(src, dst))
    except TetherError as exc:
        return json_response({"message": exc.message}, status=exc.status)


async def events(request: web.Request) -> web.StreamResponse:
    """The engine's events as server-sent events (one ``data:`` line of JSON each)."""
    engine = request.app[WEB_ENGINE]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})  # fmt: skip
    await resp.prepare(request)
    q = engine.events.subscribe()
    cluster = getattr(engine.networks, "cluster", None)
    seen = getattr(cluster, "revision", 0)
    try:
        await resp.write(b": hello\n\n")
        quiet = 0.0
        while True:
            try:
                ev = await asyncio.wait_for(q.get(), CLUSTER_POLL_S if cluster else HEARTBEAT_S)
            except TimeoutError:
                now = getattr(cluster, "revision", 0)
                if now != seen:  # another host changed something: the watch applied it here
                    seen, quiet = now, 0.0
                    await resp.write(b'data: {"Type": "cluster"}\n\n')
                    continue
                quiet += CLUSTER_POLL_S if cluster else HEARTBEAT_S
                if quiet >= HEARTBEAT_S:
                    quiet = 0.0
                    await resp.write(b": keep-alive\n\n")
                continue
            await resp.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        engine.events.unsubscribe(q)
    return resp


def make_web_app(engine: Any, metrics: Metrics | None) -> web.Application:
    """The read-only app on ``--web-addr``: the page, its API and ``/metrics``."""
    app = web.Application()
    app[WEB_ENGINE] = engine
    app.router.add_get("/", index)
    app.router.add_get("/vendor/{name}", vendor)
    app.router.add_get("/api/topology", topology)
    app.router.add_get("/api/path", path)
    app.router.add_get("/api/events", events)
    if metrics is not None:
        serve = metrics.handler
        app.router.add_get("/metrics", serve)
    return app
