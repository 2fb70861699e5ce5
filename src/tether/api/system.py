"""System routes: ``/_ping``, ``/version``, ``/info``, ``/events``."""

from __future__ import annotations

import platform
from typing import Any

from tether import API_VERSION, MIN_API_VERSION, __version__
from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response
from tether.errors import BadRequest


def _ping_headers() -> dict[str, str]:
    return {
        "Api-Version": API_VERSION,
        "Docker-Experimental": "false",
        "OSType": "linux",
        "Builder-Version": "1",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    return web.Response(body=body, content_type="text/plain", headers=_ping_headers())


def version_json() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "Platform": {"Name": "Tether"},
        "Components": [
            {
                "Name": "Engine",
                "Version": __version__,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": "amd64" if uname.machine == "x86_64" else uname.machine,
                    "KernelVersion": uname.release,
                    "Experimental": "false",
                },
            }
        ],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "tether",
        "GoVersion": "python" + platform.python_version(),
        "Os": "linux",
        "Arch": "amd64" if uname.machine == "x86_64" else uname.machine,
        "KernelVersion": uname.release,
        "BuildTime": "",
    }


async def version(request: web.Request) -> web.Response:
    return json_response(version_json())


async def info(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return json_response(engine.info())


async def events(request: web.Request) -> web.StreamResponse:
    import asyncio
    import json

    from tether.api.http import parse_filters
    from tether.engine.events import matches

    engine = request.app[ENGINE]
    filters = parse_filters(request)

    def when(name: str) -> float | None:
        raw = request.query.get(name)
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            import datetime as dt

            try:
                return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise BadRequest(f"invalid value for {name}: {raw!r} is not a timestamp") from None

    since, until = when("since"), when("until")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    q = engine.events.subscribe()
    try:
        if since is not None:
            for ev in list(engine.events.history):
                t = ev["timeNano"] / 1e9
                if t >= since and (until is None or t <= until) and matches(ev, filters):
                    await resp.write(json.dumps(ev).encode() + b"\n")
        while True:
            timeout = None
            if until is not None:
                import time

                timeout = until - time.time()
                if timeout <= 0:
                    break
            try:
                ev = await asyncio.wait_for(q.get(), timeout)
            except TimeoutError:
                break
            if matches(ev, filters):
                await resp.write(json.dumps(ev).encode() + b"\n")
    finally:
        engine.events.unsubscribe(q)
    await resp.write_eof()
    return resp


def register(router: Router) -> None:
    router.add("GET", "/events", events)
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
