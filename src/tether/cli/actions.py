"""The write verbs the click commands and the fast path (:mod:`tether.cli.fast`) share:
``network create``/``rm``, ``rm`` and ``run -d``. No click here: requests, what is printed
and the exit codes are these functions', whichever parser read argv."""

from __future__ import annotations

from tether.cli.text import emit, fail

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

    from tether.cli.runbody import RunOptions
    from tether.client import APIError, Client


def create_network(c: Client, body: dict[str, Any]) -> None:
    """POST the ``network create`` body; print the new network's ID."""
    resp = c.post("/networks/create", body=body)
    emit(f"{resp['Id']}\n")


def remove_networks(c: Client, names: Sequence[str], force: bool) -> None:
    """``network rm``: each name printed when removed, each error on stderr, then exit 1."""
    from tether.client import APIError

    status = 0
    for name in names:
        try:
            c.request("DELETE", f"/networks/{name}")
        except APIError as e:
            if force and e.status == 404:
                continue
            emit(f"{e}\n", err=True)
            status = 1
            continue
        emit(f"{name}\n")
    if status:
        fail(f"exit status {status}", status)


def remove_containers(
    c: Client, names: Sequence[str], force: bool, link: bool, volumes: bool
) -> None:
    """``rm``: each name printed when removed; the errors together at the end (exit 1)."""
    from tether.client import APIError

    q = {"force": force or None, "link": link or None, "v": volumes or None}
    errors: list[str] = []
    for name in names:
        try:
            c.request("DELETE", f"/containers/{name}", q)
        except APIError as e:
            errors.append(str(e))
            continue
        emit(f"{name}\n")
    if errors:
        fail("\n".join(errors))


def create_container(c: Client, body: dict[str, Any], name: str, platform: str) -> str:
    """POST /containers/create; print the daemon's warnings; the new container's ID."""
    query: dict[str, str | None] = {"name": name or None, "platform": platform or None}
    resp = c.post("/containers/create", query, body)
    for w in resp.get("Warnings") or []:
        emit(f"WARNING: {w}\n", err=True)
    return str(resp["Id"])


def start_exit_code(err: APIError) -> int:
    """docker run's exit code for a start that failed: 127 no such command, 126 not
    executable, 125 anything else."""
    msg = err.message
    if "executable file not found" in msg or "no such file or directory" in msg:
        return 127
    if "permission denied" in msg:
        return 126
    return 125


def run_fail(err: Exception, code: int = 125) -> NoReturn:
    """docker run's error: ``tether: <err>`` and the hint, exit ``code``."""
    fail(f"tether: {err}\n\nRun 'tether run --help' for more information", code)


def start_detached(c: Client, cid: str) -> None:
    """``run -d`` after the create: print the ID, start; a failed start exits as docker's."""
    from tether.client import APIError

    emit(f"{cid}\n")
    try:
        c.request("POST", f"/containers/{cid}/start")
    except APIError as e:
        run_fail(e, start_exit_code(e))


def run_detached(c: Client, o: RunOptions) -> None:
    """``run -d`` without a ``--cidfile`` (the fast path's case)."""
    from tether.cli.runbody import build_create_body

    o.detach = True
    body = build_create_body(o, run_detached=True)
    start_detached(c, create_container(c, body, o.name, o.platform))
