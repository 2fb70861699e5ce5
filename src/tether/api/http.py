"""The API's small shared helpers: the engine key, the router, JSON in and out, filters.

Route modules (``containers``, ``networks``, ...) import this module; ``app``
imports the route modules. Nothing here imports a route module, so there is
no cycle.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from tether.api import httpd as web
from tether.errors import BadRequest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENGINE: web.AppKey[Any] = web.AppKey("engine", object)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


class Router:
    """Registers each route twice: as given and under ``/v{version}``."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)
        self.app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise BadRequest("request body is empty")
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def parse_filters(request: web.Request) -> dict[str, list[str]]:
    """Docker's ``filters`` query: ``{"k": ["v"]}`` or ``{"k": {"v": true}}``."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest(f"invalid filter '{raw}'") from None
    if not isinstance(data, dict):
        raise BadRequest(f"invalid filter '{raw}'")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[str(key)] = [str(k) for k, v in value.items() if v]
        elif isinstance(value, list):
            out[str(key)] = [str(v) for v in value]
        else:
            raise BadRequest(f"invalid filter '{raw}'")
    return out


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes")
