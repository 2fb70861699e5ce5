"""Shared helpers of the click commands: client access, error printing, filters.

The click-free text helpers live in :mod:`tether.cli.text` and are re-exported here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from tether.cli import text
from tether.cli.text import (
    UsageFailure,
    ago,
    fail,
    go_time,
    human_duration,
    human_size,
    kv_list,
    natural_key,
    parse_time,
    render_format,
    short_id,
    tabwrite,
    tabwrite_text,
)

if TYPE_CHECKING:
    from tether.client import Client

__all__ = [
    "UsageFailure",
    "ago",
    "api_errors",
    "client",
    "echo",
    "fail",
    "filters_query",
    "go_time",
    "human_duration",
    "human_size",
    "kv_list",
    "natural_key",
    "parse_filters",
    "parse_time",
    "render_format",
    "run_errors",
    "short_id",
    "tabwrite",
    "tabwrite_text",
]

P = ParamSpec("P")
R = TypeVar("R")


def client() -> Client:
    """The API client for the current invocation (``-H`` / ``TETHER_HOST``)."""
    from tether.client import Client, host_from_env

    ctx = click.get_current_context()
    root = ctx.find_root()
    host = root.params.get("host") if root.params else None
    cached = getattr(root, "_tether_client", None)
    if isinstance(cached, Client):
        return cached
    c = Client(host_from_env(host))
    root._tether_client = c  # type: ignore[attr-defined]
    return c


def api_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print daemon errors the way ``docker`` does and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from tether.client import APIError, ConnectionFailed

        try:
            return fn(*args, **kwargs)
        except APIError as e:
            fail(str(e))
        except (ConnectionFailed, UsageFailure) as e:
            fail(str(e))

    return wrapper


def run_errors(verb: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Like :func:`api_errors` but in docker run's shape (``tether: ...``, exit 125)."""

    def deco(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            from tether.client import APIError, ConnectionFailed

            try:
                return fn(*args, **kwargs)
            except (APIError, ConnectionFailed, UsageFailure) as e:
                fail(f"tether: {e}\n\nRun 'tether {verb} --help' for more information", 125)

        return wrapper

    return deco


# ---------------------------------------------------------------- filters


def parse_filters(values: Sequence[str]) -> dict[str, list[str]] | None:
    """``-f key=value`` pairs as the API's filters map."""
    try:
        return text.parse_filters(values)
    except text.BadFilter as e:
        raise click.BadParameter(str(e)) from None


def filters_query(values: Sequence[str]) -> str | None:
    """The ``filters`` query parameter (JSON of name -> {value: true})."""
    try:
        return text.filters_query(values)
    except text.BadFilter as e:
        raise click.BadParameter(str(e)) from None


def echo(message: str) -> None:
    click.echo(message)
