"""``GET /system/df`` (``docker system df``): what images, containers and volumes use.

Docker 20.10's shape: ``LayersSize`` (all layers), ``Images`` (summaries with the count of
containers using each and its ``SharedSize``), ``Containers`` (``ps -a`` summaries with
``SizeRw`` and ``SizeRootFs``), ``Volumes`` (with ``UsageData``), ``BuildCache`` (empty:
tether has no builder) and the deprecated ``BuilderSize``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tether.api import httpd as web
from tether.api.containers import summary_json as container_summary
from tether.api.http import ENGINE, Router, json_response
from tether.engine.volumes import dir_size


async def _containers(engine: Any, image_sizes: dict[str, int]) -> list[dict[str, Any]]:
    ctl = engine.ctl()
    names = ctl.link_names()
    out = []
    for c in ctl.list():
        entry = container_summary(engine, c, names)
        size_rw = await ctl.ops.size_rw(c)
        entry["SizeRw"] = size_rw
        entry["SizeRootFs"] = size_rw + image_sizes.get(c.image_id, 0)
        out.append(entry)
    return out


async def _volumes(engine: Any) -> list[dict[str, Any]]:
    svc = engine.ctl().volumes
    loop = asyncio.get_running_loop()
    out = []
    for v in svc.list({}):
        size = await loop.run_in_executor(None, dir_size, svc.path(v.name))
        out.append({**svc.json(v), "UsageData": {"Size": size, "RefCount": len(svc.users(v.name))}})
    return out


async def df(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    images = engine.images
    used: dict[str, int] = {}
    for c in engine.ctl().list():
        used[c.image_id] = used.get(c.image_id, 0) + 1
    layers_size, shared = images.disk_usage()
    summaries = []
    for image in images.list():
        entry = images.summary_json(image)
        entry["Containers"] = used.get(image.id, 0)
        entry["SharedSize"] = shared.get(image.id, 0)
        summaries.append(entry)
    sizes = {s["Id"]: int(s["Size"]) for s in summaries}
    return json_response(
        {
            "LayersSize": layers_size,
            "Images": summaries,
            "Containers": await _containers(engine, sizes),
            "Volumes": await _volumes(engine),
            "BuildCache": [],
            "BuilderSize": 0,
        }
    )


def register(router: Router) -> None:
    router.add("GET", "/system/df", df)
