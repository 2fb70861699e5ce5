"""An aiohttp client session on a :class:`tether.api.httpd.Server` serving an app on a unix
socket in a temporary folder (what ``aiohttp.test_utils.TestClient`` was for aiohttp apps)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from tether.api.httpd import Application, Server


@asynccontextmanager
async def api_client(app: Application) -> AsyncIterator[aiohttp.ClientSession]:
    with tempfile.TemporaryDirectory(prefix="tether-api-") as folder:
        path = f"{folder}/api.sock"
        server = Server(app)
        await server.start_unix(path)
        try:
            connector = aiohttp.UnixConnector(path)
            async with aiohttp.ClientSession("http://localhost", connector=connector) as session:
                yield session
        finally:
            await server.close(0.5)
