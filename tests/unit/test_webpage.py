"""The ``--web-addr`` app (issue 19): the page, its read-only API and its event stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.unit.apiclient import api_client
from tests.unit.test_container_controller import aio
from tests.unit.test_topology import world

from tether.api.web import WEBUI, make_web_app


@aio
async def test_page_api_and_events(tmp_path: Path) -> None:
    w = await world(tmp_path)
    async with api_client(make_web_app(w.engine, None)) as web:
        r = await web.get("/")
        assert r.status == 200 and "cytoscape" in await r.text()
        r = await web.get("/vendor/cytoscape.min.js")
        assert r.status == (200 if (WEBUI / "vendor" / "cytoscape.min.js").is_file() else 404)
        assert (await web.get("/vendor/../index.html")).status == 404
        model = await (await web.get("/api/topology")).json()
        assert {c["name"] for c in model["containers"]} == {"web", "api", "db", "vault"}
        assert model["kernel_checked"] is False
        p = await (await web.get("/api/path", params={"from": "web", "to": "db"})).json()
        assert p["ok"] is False
        r = await web.get("/api/path", params={"from": "web", "to": "ghost"})
        assert r.status == 404 and "ghost" in (await r.json())["message"]
        for method in ("POST", "PUT", "DELETE"):
            assert (await web.request(method, "/api/topology")).status == 405
        assert (await web.get("/metrics")).status == 404  # no metrics given
        stream = await web.get("/api/events")
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert await stream.content.readline() == b": hello\n"
        await stream.content.readline()
        await w.run("late", network="front")
        line = await asyncio.wait_for(stream.content.readline(), 5)
        assert line.startswith(b"data: ")
        assert json.loads(line[6:])["Type"] == "container"
        stream.close()
    await w.close()
