"""A small HTTP/1.1 server on asyncio streams for the daemon's API (issue 20: memory).

aiohttp's server cost the idle daemon ~12 MB of resident memory (and pulled in ``ssl``);
this package serves the same API with the part of ``aiohttp.web``'s interface the route
modules use (``from tether.api import httpd as web``): :class:`Application` with
:class:`AppKey` state, routes and middlewares, :class:`Request` (``match_info``, ``query``,
``headers``, ``read()``, ``content.iter_chunked``), :class:`Response` and
:class:`StreamResponse` (chunked), the ``HTTP...`` errors, and :class:`Server` on a unix or
TCP socket. Request bodies by ``Content-Length`` or chunked; keep-alive; ``HEAD``;
``Expect: 100-continue``; the attach/exec hijack (:meth:`StreamResponse.raw_stream`, then
the request's ``reader``/``writer`` are the handler's).
"""

from tether.api.httpd.app import AppKey, Application, Handler, middleware
from tether.api.httpd.base import (
    HTTPBadRequest,
    HTTPException,
    HTTPMethodNotAllowed,
    HTTPNotFound,
    HTTPRequestEntityTooLarge,
)
from tether.api.httpd.message import FileResponse, Request, Response, StreamResponse
from tether.api.httpd.server import Server

__all__ = [
    "AppKey",
    "Application",
    "FileResponse",
    "HTTPBadRequest",
    "HTTPException",
    "HTTPMethodNotAllowed",
    "HTTPNotFound",
    "HTTPRequestEntityTooLarge",
    "Handler",
    "Request",
    "Response",
    "Server",
    "StreamResponse",
    "middleware",
]
