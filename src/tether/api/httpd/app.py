"""The application side of :mod:`tether.api.httpd`: app keys, the router, middlewares, errors.

The names and their behaviour are the subset of ``aiohttp.web`` the API modules use, so a
route module changes only its import line. Routes use aiohttp's patterns: ``{name}`` is one
path segment, ``{name:regex}`` a regular expression; the first route registered that matches
wins; a path some route matches with another method is 405, anything else 404 (both raised
inside the middlewares, so the API's error middleware words them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from tether.api.httpd.base import HTTPMethodNotAllowed, HTTPNotFound, MatchInfo
from tether.api.httpd.message import Request, StreamResponse

T = TypeVar("T")
Handler = Callable[["Request"], Awaitable["StreamResponse"]]
Middleware = Callable[["Request", Handler], Awaitable["StreamResponse"]]


class AppKey(Generic[T]):
    """A typed key of :class:`Application`'s state (``app[KEY]``)."""

    def __init__(self, name: str, t: type[T] | type[object] = object) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<AppKey {self.name}>"


def middleware(fn: Middleware) -> Middleware:
    """aiohttp's decorator; every middleware here is new-style ``(request, handler)``."""
    return fn


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::((?:[^{}]|\{[^{}]*\})+))?\}")


def compile_pattern(path: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^{}/]+'})")
        pos = m.end()
    out.append(re.escape(path[pos:]))
    return re.compile("".join(out))


class Route:
    def __init__(self, method: str, pattern: str, handler: Handler) -> None:
        self.method = method.upper()
        self.pattern = pattern  # aiohttp's ``resource.canonical``
        self.regex = compile_pattern(pattern)
        self.handler = handler


async def _not_found(_request: Request) -> StreamResponse:
    raise HTTPNotFound()


async def _not_allowed(_request: Request) -> StreamResponse:
    raise HTTPMethodNotAllowed()


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add_route(self, method: str, path: str, handler: Handler) -> Route:
        route = Route(method, path, handler)
        self.routes.append(route)
        return route

    def add_get(self, path: str, handler: Handler) -> Route:
        return self.add_route("GET", path, handler)

    def resolve(self, method: str, path: str) -> tuple[Handler, MatchInfo]:
        other = False
        for route in self.routes:
            m = route.regex.fullmatch(path)
            if m is None:
                continue
            if route.method == method or (route.method == "*"):
                return route.handler, MatchInfo(m.groupdict(), route)
            other = True
        return (_not_allowed if other else _not_found), MatchInfo({}, None)


class Application:
    """Routes, middlewares (the first is the outermost), state by :class:`AppKey`, and
    ``headers`` every response gets unless it sets them itself (``Server``...)."""

    def __init__(
        self,
        *,
        middlewares: list[Middleware] | tuple[Middleware, ...] = (),
        client_max_size: int = 1 << 20,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.middlewares = list(middlewares)
        self.client_max_size = client_max_size
        self.headers = dict(headers or {})
        self.router = Router()
        self._state: dict[AppKey[Any], Any] = {}

    def __getitem__(self, key: AppKey[T]) -> T:
        value: T = self._state[key]
        return value

    def __setitem__(self, key: AppKey[T], value: T) -> None:
        self._state[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def get(self, key: AppKey[T], default: T | None = None) -> T | None:
        value: T | None = self._state.get(key, default)
        return value

    def chain(self, handler: Handler) -> Handler:
        """``handler`` wrapped in the middlewares."""
        for mw in reversed(self.middlewares):
            handler = _bind(mw, handler)
        return handler


def _bind(mw: Middleware, inner: Handler) -> Handler:
    async def call(request: Request) -> StreamResponse:
        return await mw(request, inner)

    return call
