"""The click application behind ``tether``: a group whose sub-commands load on first use.

Sub-commands are imported only when used, so start-up pays for click and the
one module a command needs (``tether lab`` and ``tether daemon`` pull in their
heavy dependencies only inside their own bodies). The command table lives in
:mod:`tether.cli.main` (no click there).
"""

from __future__ import annotations

import importlib

import click

from tether.cli.commands import COMMANDS, OPTIONAL


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = sorted(COMMANDS)
        return [n for n in names if n not in OPTIONAL or self._load(n) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            if name in OPTIONAL:
                return None
            raise
        if not isinstance(cmd, click.Command):
            return None
        return cmd


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from tether import __version__

    click.echo(f"Tether version {__version__}")
    ctx.exit()


@click.group(
    "tether",
    cls=LazyGroup,
    context_settings={"help_option_names": ["--help"]},
)
@click.option(
    "-H",
    "--host",
    default=None,
    metavar="HOST",
    help="Daemon socket to connect to (default unix:///run/tether/tether.sock, or $TETHER_HOST)",
)
@click.option(
    "-v",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Print version information and quit",
)
def cli(host: str | None) -> None:
    """A container networking engine that speaks the Docker Engine API."""
