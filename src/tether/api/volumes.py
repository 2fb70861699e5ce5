"""Volume routes (``/volumes``) and a container's ``Mounts`` as Docker 20.10 shows them."""

from __future__ import annotations

from typing import Any

from tether.api import bodycheck
from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, parse_filters, qbool, read_json
from tether.engine.mounts import public
from tether.engine.record import Container


def mounts_json(c: Container) -> list[dict[str, Any]]:
    """Inspect's and ps's ``Mounts``: the container's mount points (not ``--tmpfs``)."""
    return [public(m) for m in c.mounts]


def _service(request: web.Request) -> Any:
    return request.app[ENGINE].ctl().volumes


async def create(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)
    bodycheck.check(body, bodycheck.VOLUME_CREATE, "VolumeCreateBody")
    svc = _service(request)
    v = await svc.create(
        body.get("Name") or None, body.get("Driver") or None, body.get("DriverOpts"),
        body.get("Labels"),
    )  # fmt: skip
    return json_response(svc.json(v), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    svc = _service(request)
    vols = svc.list(parse_filters(request))
    return json_response({"Volumes": [svc.json(v) for v in vols], "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    svc = _service(request)
    return json_response(svc.json(svc.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    await _service(request).remove(request.match_info["name"], qbool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    gone, size = await _service(request).prune(parse_filters(request))
    return json_response({"VolumesDeleted": gone or None, "SpaceReclaimed": size})


def register(router: Router) -> None:
    router.add("POST", "/volumes/create", create)
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)
