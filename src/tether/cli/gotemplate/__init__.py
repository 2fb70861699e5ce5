"""A small interpreter for the subset of Go's text/template that ``--format`` uses.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming, comments,
fields (``.A.B``), ``.``, ``$`` and ``$var`` (with fields), string/number/bool/nil
literals, parenthesised pipelines, ``|`` pipes, variable declaration and
assignment, ``if``/``else if``/``else``, ``range`` (lists, maps in sorted key
order, integers; with ``$i, $v :=`` and ``else``), ``with``, ``break``,
``continue``, and the functions Go and docker register (``json``, ``join``,
``split``, ``upper``, ``lower``, ``title``, ``pad``, ``truncate``, ``index``,
``len``, ``slice``, ``not``, ``and``, ``or``, ``eq``/``ne``/``lt``/``le``/``gt``/``ge``,
``print``, ``printf``, ``println``).

Values come from decoded JSON, so Go's typed printing is approximated:
a JSON object named by a known map field (``Labels``, ``Networks``, ...) prints as
``map[k:v ...]`` in sorted key order; other objects print as structs
``{v1 v2 ...}`` in the order the daemon sent their fields; objects Go holds
through a pointer inside a map or struct (``Networks`` values, ``IPAMConfig``, ...)
print as a stable pointer-like ``0xc000...`` value, as docker does for
``{{.NetworkSettings.Networks}}`` (``map[net:0xc0004a2000]``).
"""

from __future__ import annotations

from typing import Any

from tether.cli.gotemplate.execute import Break, Continue, Exec, State
from tether.cli.gotemplate.funcs import FUNCS
from tether.cli.gotemplate.parse import Parser
from tether.cli.gotemplate.values import (
    MAP_FIELDS,
    MISSING,
    PTR_FIELDS,
    PTR_VALUE_MAPS,
    GoMap,
    TemplateError,
    go_str,
)

__all__ = [
    "FUNCS",
    "MAP_FIELDS",
    "MISSING",
    "PTR_FIELDS",
    "PTR_VALUE_MAPS",
    "GoMap",
    "Template",
    "TemplateError",
    "go_str",
    "render",
]


class Template:
    """A parsed template; ``execute(data)`` returns the rendered text."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self.nodes = Parser(source).parse()
        except TemplateError as e:
            raise TemplateError(f"template: :1: {e}") from None

    def execute(self, data: Any) -> str:
        state = State(data)
        try:
            Exec(state).nodes(self.nodes, data)
        except (Break, Continue):
            raise TemplateError("template: :1: break or continue outside range") from None
        except TemplateError as e:
            raise TemplateError(f"template: :1: executing: {e}") from None
        return "".join(state.out)


def render(source: str, data: Any) -> str:
    """Parse and execute ``source`` against ``data``."""
    return Template(source).execute(data)
