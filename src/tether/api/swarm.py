"""Swarm-mode routes, answered as a dockerd that is not in a swarm answers them.

Tether has no swarm mode. Clients still call these routes (docker-py's test
tearDowns call ``POST /swarm/leave`` after every network test, ``docker info``
users ask ``GET /swarm``), and they accept only Docker's answers: 503 with
"This node is not part of a swarm" for leave, "This node is not a swarm
manager..." for the manager-only routes. ``init`` and ``join`` would make this
node part of a swarm, which tether does not do: they are refused with a 503
that says so.
"""

from __future__ import annotations

from tether.api import httpd as web
from tether.api.http import Router
from tether.errors import Unavailable

NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
NOT_MEMBER = "This node is not part of a swarm"
NO_SWARM = "tether does not support swarm mode: this node cannot init or join a swarm"

MANAGER_ROUTES = (
    ("GET", "/swarm"),
    ("POST", "/swarm/update"),
    ("GET", "/swarm/unlockkey"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"),
    ("POST", "/services/{id}/update"),
    ("GET", "/services/{id}/logs"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{id}"),
    ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("GET", "/tasks/{id}/logs"),
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"),
    ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"),
    ("POST", "/configs/create"),
    ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"),
    ("POST", "/configs/{id}/update"),
)


async def not_manager(request: web.Request) -> web.StreamResponse:
    raise Unavailable(NOT_MANAGER)


async def not_member(request: web.Request) -> web.StreamResponse:
    raise Unavailable(NOT_MEMBER)


async def no_swarm(request: web.Request) -> web.StreamResponse:
    raise Unavailable(NO_SWARM)


def register(router: Router) -> None:
    for method, path in MANAGER_ROUTES:
        router.add(method, path, not_manager)
    router.add("POST", "/swarm/leave", not_member)
    router.add("POST", "/swarm/unlock", not_member)
    router.add("POST", "/swarm/init", no_swarm)
    router.add("POST", "/swarm/join", no_swarm)
