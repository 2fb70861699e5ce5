"""Tether's own views of the network (issue 19): ``GET /tether/topology`` and ``/tether/path``.

Read-only. The shapes are documented in docs/operations.md ("Seeing the network").
"""

from __future__ import annotations

from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, qbool
from tether.errors import BadRequest


async def topology(request: web.Request) -> web.Response:
    """The topology model; ``kernel=0`` skips the kernel check (no ``drift``)."""
    model = await request.app[ENGINE].topology(kernel=qbool(request, "kernel", True))
    return json_response(model)


async def path(request: web.Request) -> web.Response:
    src = request.query.get("from", "")
    dst = request.query.get("to", "")
    if not src or not dst:
        raise BadRequest("path needs from= and to= (a container, host, or an IPv4 address)")
    return json_response(await request.app[ENGINE].path(src, dst))


def register(router: Router) -> None:
    router.add("GET", "/tether/topology", topology)
    router.add("GET", "/tether/path", path)
