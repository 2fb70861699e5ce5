"""Text helpers shared by the click commands and the fast path: no click import here.

Go tabwriter tables, ``--format`` rendering, humanised times and sizes, filters as the
API's query, and the two ways out (:func:`emit` on stdout, :func:`fail` on stderr).
:func:`emit` writes the way ``click.echo`` does: click strips ANSI escapes when the
stream is not a terminal, so text holding an escape goes through click itself (imported
only then), and both paths print the same bytes.
"""

from __future__ import annotations

import sys
import time

from tether.humanize import human_duration as human_duration

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import IO, Any, NoReturn


def emit(text: str, err: bool = False) -> None:
    """Write ``text`` as is (no newline added) and flush, like ``click.echo(nl=False)``."""
    stream: IO[str] = sys.stderr if err else sys.stdout
    if "\x1b" in text:
        import click

        click.echo(text, file=stream, nl=False)
        return
    if text:
        stream.write(text)
    stream.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``."""
    emit(message + "\n", err=True)
    sys.exit(code)


# ---------------------------------------------------------------- tables


def tabwrite(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's tabwriter(minwidth 10, padding 3).

    Every cell but the last in a row is padded to its column's width
    (the widest cell plus ``padding``, at least ``minwidth``).
    """
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), max(len(cell) + padding, minwidth))
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        if row:
            cells.append(row[-1])
        out.append("".join(cells))
    return "\n".join(out) + ("\n" if out else "")


def tabwrite_text(text: str) -> str:
    """Align a block of text whose cells are separated by tabs (Go tabwriter style).

    Like Go, consecutive lines sharing a column form one block: a line with
    fewer cells ends the blocks of the columns it lacks.
    """
    lines = text.split("\n")
    trailing = text.endswith("\n")
    if trailing:
        lines = lines[:-1]
    rows = [line.split("\t") for line in lines]
    col_width: dict[tuple[int, int], int] = {}
    # compute blocks per column
    max_cols = max((len(r) for r in rows), default=0)
    for c in range(max_cols - 1):
        start = None
        for i in range(len(rows) + 1):
            has = i < len(rows) and len(rows[i]) - 1 > c
            if has and start is None:
                start = i
            elif not has and start is not None:
                w = max(max(len(rows[j][c]) + 3, 10) for j in range(start, i))
                for j in range(start, i):
                    col_width[(j, c)] = w
                start = None
    out = []
    for i, r in enumerate(rows):
        cells = [cell.ljust(col_width[(i, c)]) for c, cell in enumerate(r[:-1])]
        cells.append(r[-1])
        out.append("".join(cells))
    return "\n".join(out) + ("\n" if trailing else "")


def render_format(
    fmt: str,
    items: Iterable[Mapping[str, Any]],
    headers: Mapping[str, str],
) -> str:
    """Render ``--format`` (``table ...``, ``json``, or a template) for a list."""
    from tether.cli.gotemplate import Template, TemplateError

    if fmt == "json":
        from tether.cli.gotemplate import FUNCS

        return "".join(FUNCS["json"](dict(item)) + "\n" for item in items)
    is_table = fmt.startswith("table")
    body = fmt[len("table") :] if is_table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        tmpl = Template(body)
        out = [tmpl.execute(item) + "\n" for item in items]
        if not is_table:
            return "".join(out)
        header_ctx = {k: v for k, v in headers.items()}
        header = tmpl.execute(header_ctx) + "\n"
    except TemplateError as e:
        fail(f"template parsing error: {e}")
    return tabwrite_text(header + "".join(out))


# ---------------------------------------------------------------- humanising


def ago(created: float, now: float | None = None) -> str:
    """``"2 minutes ago"`` for a unix timestamp."""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - created)) + " ago"


def human_size(size: float) -> str:
    """docker's HumanSizeWithPrecision(size, 3) with decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    s = float(size)
    while s >= 1000 and i < len(units) - 1:
        s /= 1000
        i += 1
    return f"{s:.3g}{units[i]}"


# re, json and datetime are imported where used: on the fast path's common verbs they are
# not needed, and ``re`` alone is ~5 ms of a CLI command (tether.jsonlite).
_RFC3339 = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?"


def parse_time(value: str) -> float:
    """Parse an RFC 3339 timestamp (nanoseconds allowed) to a unix time."""
    import re
    from datetime import UTC, datetime

    m = re.match(_RFC3339, value or "")
    if not m:
        return 0.0
    d = m.group(1)  # fixed positions; datetime.strptime would import _strptime (~3 ms)
    base = datetime(int(d[0:4]), int(d[5:7]), int(d[8:10]), int(d[11:13]), int(d[14:16]),
                    int(d[17:19]))  # fmt: skip
    tz = m.group(3) or "Z"
    offset = 0
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    frac = float("0" + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=UTC).timestamp() - offset + frac


def go_time(ts: float) -> str:
    """Go's ``time.Time.String()`` for a local time: ``2006-01-02 15:04:05 -0700 MST``."""
    from datetime import datetime

    dt = datetime.fromtimestamp(ts).astimezone()
    off = dt.strftime("%z")
    name = dt.strftime("%Z") or off
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + f"{off} {name}"


# ---------------------------------------------------------------- misc


def natural_key(s: str) -> list[Any]:
    """Sort key for docker's natural sort order (digits compare as numbers)."""
    out: list[Any] = []
    i, n = 0, len(s)
    while i < n:  # runs of decimal digits and of anything else (re's split on \d+)
        j, digits = i, s[i].isdecimal()
        while j < n and s[j].isdecimal() == digits:
            j += 1
        out.append((0, int(s[i:j]), "") if digits else (1, 0, s[i:j]))
        i = j
    return out


class UsageFailure(Exception):
    """A flag value the CLI itself rejects (before talking to the daemon)."""


def kv_list(values: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` list into a map (a bare KEY maps to "")."""
    out: dict[str, str] = {}
    for v in values:
        k, _, val = v.partition("=")
        out[k] = val
    return out


class BadFilter(ValueError):
    """A ``-f`` value without ``=``."""


def parse_filters(values: Sequence[str]) -> dict[str, list[str]] | None:
    """``-f key=value`` pairs as the API's filters map (:class:`BadFilter` without ``=``)."""
    if not values:
        return None
    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            raise BadFilter(f"bad format of filter (expected name=value): {v}")
        k, val = v.split("=", 1)
        out.setdefault(k.strip().lower(), []).append(val)
    return out


def filters_query(values: Sequence[str]) -> str | None:
    """The ``filters`` query parameter (JSON of name -> {value: true})."""
    f = parse_filters(values)
    if f is None:
        return None
    from tether import jsonlite

    return jsonlite.dumps({k: {v: True for v in vs} for k, vs in f.items()})


def short_id(value: str) -> str:
    if value.startswith("sha256:"):
        value = value[7:]
    return value[:12]
