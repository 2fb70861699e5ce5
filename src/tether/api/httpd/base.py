"""What every module of :mod:`tether.api.httpd` uses: the HTTP errors and the match info."""

from __future__ import annotations

from typing import Any


class HTTPException(Exception):
    status = 500

    def __init__(self, *, text: str | None = None) -> None:
        super().__init__(text or "")
        self.text = text or f"{self.status}: {type(self).__name__}"


class HTTPBadRequest(HTTPException):
    status = 400


class HTTPNotFound(HTTPException):
    status = 404


class HTTPMethodNotAllowed(HTTPException):
    status = 405


class HTTPRequestEntityTooLarge(HTTPException):
    status = 413


class MatchInfo(dict[str, str]):
    """The path's parameters; ``route`` (its ``pattern``) is None when nothing matched."""

    def __init__(self, values: dict[str, str], route: Any) -> None:
        super().__init__(values)
        self.route = route
