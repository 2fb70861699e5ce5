"""The ``tether`` command: a thin client of the daemon's Docker Engine API.

Start-up is the budget (well under 100 ms for ``tether network ls``): importing click
alone costs ~30 ms, so this module does not import it. :func:`main` first offers argv to
:mod:`tether.cli.fast`, which hand-parses the hottest read-only verbs (``network ls``,
``network inspect``, ``ps``, ``images``, ``version``) and prints through the same
functions as the click commands; anything else (other verbs, ``--help``, a flag form it
does not know, a usage error) goes to the click application in :mod:`tether.cli.app`.
``cli`` and ``LazyGroup`` are still importable from here (loaded on first access).
"""

from __future__ import annotations

import sys

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> Any:
    """``cli`` and ``LazyGroup`` live in :mod:`tether.cli.app` (it imports click)."""
    if name in ("cli", "LazyGroup"):
        from tether.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console entry point."""
    from tether.cli.fast import run

    code = run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from tether.cli.app import cli

    cli(prog_name="tether")
