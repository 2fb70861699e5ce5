"""Image routes: import, load, list, inspect, remove, tag."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, parse_filters, qbool
from tether.engine.imagefilter import filter_images
from tether.errors import BadRequest, NotFound


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(1 << 20):
        yield chunk


async def create(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    q = request.query
    if q.get("fromSrc") not in (None, "-"):
        raise BadRequest("importing from a URL is not supported: send the tarball as the body")
    if q.get("fromImage"):
        name = q["fromImage"]
        # Docker's text for a repository the registry does not have (docker-py raises
        # ImageNotFound on it): tether has no registry, so no repository exists there
        raise NotFound(
            f"pull access denied for {name}, repository does not exist or may require "
            "'docker login': tether has no registry access; use docker import or docker load"
        )
    if q.get("fromSrc") != "-":
        raise BadRequest("fromSrc or fromImage is required")
    repo = q.get("repo") or ""
    tag = q.get("tag") or ""
    ref = None
    if repo:
        ref = repo + (":" + tag if tag else "")
    changes = q.getall("changes", [])
    image = await engine.images.import_tar(
        _body(request), ref, changes, message=q.get("message", "")
    )
    return json_response({"status": image.id})


async def load(request: web.Request) -> web.Response:
    """Docker answers 200 whatever happens and puts a failure in the stream, as an
    ``errorDetail`` (docker-py raises ``ImageLoadError``, the CLI prints it and exits 1)."""
    engine = request.app[ENGINE]
    try:
        tags = await engine.images.load(_body(request))
    except BadRequest as exc:
        line = {"errorDetail": {"message": exc.message}, "error": exc.message}
        return web.Response(body=json.dumps(line).encode() + b"\n", content_type="application/json")
    lines = []
    for t in tags:
        if t.startswith("sha256:"):
            lines.append(json.dumps({"stream": f"Loaded image ID: {t}\n"}))
        else:
            lines.append(json.dumps({"stream": f"Loaded image: {t}\n"}))
    return web.Response(body=("\n".join(lines) + "\n").encode(), content_type="application/json")


async def list_images(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    images = engine.images

    def created_of(ref: str) -> int:
        return int(images.summary_json(images.get(ref))["Created"])

    summaries = [images.summary_json(i) for i in images.list()]
    return json_response(filter_images(summaries, parse_filters(request), created_of))


async def inspect(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    image = engine.images.get(request.match_info["name"])
    return json_response(engine.images.inspect_json(image))


async def remove(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    out = await engine.images.remove(
        request.match_info["name"], force=qbool(request, "force"), in_use=engine.image_in_use
    )
    return json_response(out)


async def tag(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    repo = request.query.get("repo")
    if not repo:
        raise BadRequest("repo is required")
    await engine.images.tag(request.match_info["name"], repo, request.query.get("tag") or None)
    return web.Response(status=201)


def register(router: Router) -> None:
    router.add("POST", "/images/create", create)
    router.add("POST", "/images/load", load)
    router.add("GET", "/images/json", list_images)
    router.add("GET", "/images/{name:.+}/json", inspect)
    router.add("POST", "/images/{name:.+}/tag", tag)
    router.add("DELETE", "/images/{name:.+}", remove)
