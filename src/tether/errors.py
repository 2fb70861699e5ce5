"""The error tree, by meaning.

Every layer raises these; only the API layer turns them into HTTP
(``tether.api.errors``). The message is what the user sees after
``Error response from daemon: `` and follows Docker's texts where Docker has one.
"""

from __future__ import annotations


class TetherError(Exception):
    """Base of every error tether raises on purpose."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(TetherError):
    """The request is malformed or names something invalid (400)."""

    status = 400


class Forbidden(TetherError):
    """The request is well formed but not allowed (403)."""

    status = 403


class NotFound(TetherError):
    """The named object does not exist (404)."""

    status = 404


class Conflict(TetherError):
    """The request collides with existing state (409)."""

    status = 409


class NotModified(TetherError):
    """Nothing to do: e.g. starting a running container (304)."""

    status = 304


class NotImplementedHere(TetherError):
    """A feature the object was set up without: e.g. reading logs of the ``none`` log
    driver (501, Docker's ``errdefs.NotImplemented``)."""

    status = 501


class Unavailable(TetherError):
    """A backend the request needs (etcd, the kernel) cannot be reached (503)."""

    status = 503


class Internal(TetherError):
    """An invariant broke or a system call failed unexpectedly (500)."""

    status = 500
