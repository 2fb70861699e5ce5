"""The aiohttp application: routing (unversioned and ``/v1.NN/``) and errors.

This is the one place where tether's typed errors become HTTP answers
(``{"message": ...}`` with the status the error's meaning carries).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tether import API_VERSION, MIN_API_VERSION
from tether.errors import TetherError

log = logging.getLogger("tether.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENGINE: web.AppKey[Any] = web.AppKey("engine", object)
_VERSION_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


def _api_version(request: web.Request) -> str | None:
    m = _VERSION_RE.match(request.path)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _too_old(version: str) -> bool:
    return _vkey(version) < _vkey(MIN_API_VERSION)


def _too_new(version: str) -> bool:
    return _vkey(version) > _vkey(API_VERSION)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = _api_version(request)
    if version is not None and _too_old(version):
        return error_response(
            400,
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version",
        )
    if version is not None and _too_new(version):  # Docker 20.10 refuses these too
        return error_response(
            400,
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}",
        )
    try:
        resp = await handler(request)
    except TetherError as exc:
        if exc.status == 304:
            return web.Response(status=304)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return error_response(exc.status, exc.message)
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "method not allowed")
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "request body is too large")
    except web.HTTPException:
        raise
    except json.JSONDecodeError as exc:
        return error_response(400, f"invalid JSON: {exc}")
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error: {exc}")
    return resp


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if not resp.prepared:
        resp.headers["Api-Version"] = API_VERSION
        resp.headers["Server"] = "Tether/0.1.0 (linux)"
    return resp


class Router:
    """Registers each route twice: as given and under ``/v{version}``."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)
        self.app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)


def make_app(engine: Any, client_max_size: int = 1 << 30) -> web.Application:
    from tether.api import containers, exec_, images, networks, system

    app = web.Application(
        middlewares=[headers_middleware, error_middleware], client_max_size=client_max_size
    )
    app[ENGINE] = engine
    router = Router(app)
    for module in (system, networks, containers, exec_, images):
        module.register(router)
    return app


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    from tether.errors import BadRequest

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
    from tether.errors import BadRequest

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
