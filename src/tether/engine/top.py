"""``docker top``: Docker's checks of the ``ps`` arguments and its reading of ``ps`` output
(daemon/top_unix.go): the header's words are the titles, rows whose PID is one of the
container's are kept (and the thread rows, PID ``-``, that follow one of them), each row cut
into as many fields as there are titles, the last one taking the rest of the line."""

from __future__ import annotations

import re
from typing import Any

from tether.errors import BadRequest, Internal

_RENAME = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def check_ps_args(ps_args: str) -> list[str]:
    """Only ``pid=PID...`` may name a column PID; the arguments split on single spaces."""
    for key, value in _RENAME.findall(ps_args):
        if key != "pid":
            raise BadRequest(f'specifying "{key}={value}" is not allowed')
    return ps_args.split(" ")


def parse_ps_output(output: str, pids: list[int]) -> dict[str, Any]:
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise Internal("Couldn't find PID field in ps output")
    at = titles.index("PID")
    procs: list[list[str]] = []
    kept = False
    wanted = set(pids)

    def add(fields: list[str]) -> None:
        row = fields[: len(titles) - 1]
        row += [""] * (len(titles) - 1 - len(row))
        procs.append([*row, " ".join(fields[len(titles) - 1 :])])

    for line in lines[1:]:
        fields = line.split()
        if not fields or len(fields) <= at:
            continue
        if fields[at] == "-":
            if kept:
                add(fields)
            continue
        try:
            pid = int(fields[at])
        except ValueError:
            raise Internal(f"Unexpected pid '{fields[at]}': invalid syntax") from None
        kept = pid in wanted
        if kept:
            add(fields)
    return {"Titles": titles, "Processes": procs or None}
