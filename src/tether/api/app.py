"""The API application (:mod:`tether.api.httpd`): middlewares, the route modules, and errors.

This is the one place where tether's typed errors become HTTP answers
(``{"message": ...}`` with the status the error's meaning carries).
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from tether import API_VERSION, MIN_API_VERSION
from tether.api import (
    containers,
    exec_,
    image_extra,
    images,
    networks,
    swarm,
    sysdf,
    system,
    topology,
    volumes,
)
from tether.api import httpd as web
from tether.api.http import ENGINE, Handler, Router, json_response
from tether.errors import TetherError

if TYPE_CHECKING:  # prometheus_client is loaded only with --web-addr
    from tether.api.metrics import Metrics

log = logging.getLogger("tether.api")

SERVER = "Tether/0.1.0 (linux)"
_VERSION_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


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


def make_app(
    engine: Any, client_max_size: int = 1 << 30, metrics: Metrics | None = None
) -> web.Application:
    """The API app; with ``metrics`` (``--web-addr``), requests are counted and timed."""
    counting = [metrics.middleware] if metrics is not None else []
    app = web.Application(
        middlewares=[*counting, error_middleware],
        client_max_size=client_max_size,
        headers={"Api-Version": API_VERSION, "Server": SERVER},
    )
    app[ENGINE] = engine
    router = Router(app)
    modules = (system, networks, containers, exec_, images, image_extra, swarm, volumes)
    for module in (*modules, sysdf, topology):
        module.register(router)
    return app
