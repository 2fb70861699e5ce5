"""``run`` and ``create``: the create body from the run options, then attach, start, wait."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

import click

from tether.cli.actions import create_container, run_fail, start_detached, start_exit_code
from tether.cli.runopts import build_create_body, options_from_kwargs, run_options
from tether.cli.util import (
    client,
    fail,
    run_errors,
)
from tether.client import APIError, Client, ConnectionFailed

RUN_CONTEXT = {"help_option_names": ["--help"], "allow_interspersed_args": False}


@click.command("create", context_settings=RUN_CONTEXT)
@run_options
@run_errors("create")
def create(image: str, command: tuple[str, ...], **kw: Any) -> None:
    """Create a new container"""
    o = options_from_kwargs(image, command, kw)
    body = build_create_body(o)
    cid = create_container(client(), body, o.name, o.platform)
    if kw.get("cidfile"):
        with open(kw["cidfile"], "w") as f:
            f.write(cid)
    click.echo(cid)


@click.command("run", context_settings=RUN_CONTEXT)
@click.option(
    "-d", "--detach", is_flag=True, help="Run container in background and print container ID"
)
@click.option(
    "--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process"
)
@run_options
@run_errors("run")
def run(image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool, **kw: Any) -> None:
    """Create and run a new container from an image"""
    o = options_from_kwargs(image, command, kw)
    o.detach = detach
    body = build_create_body(o, run_detached=detach)
    c = client()
    cid = create_container(c, body, o.name, o.platform)
    if kw.get("cidfile"):
        with open(kw["cidfile"], "w") as f:
            f.write(cid)
    if detach:
        start_detached(c, cid)
        return
    del sig_proxy
    sys.exit(_run_attached(c, cid, body, o.rm))


def _run_attached(c: Client, cid: str, body: dict[str, Any], auto_remove: bool) -> int:
    from tether.cli.streams import attach_session

    tty = bool(body.get("Tty"))
    want_stdin = bool(body.get("AttachStdin"))
    attached = want_stdin or body.get("AttachStdout") or body.get("AttachStderr")
    conn = None
    if attached:
        conn = c.hijack(
            f"/containers/{cid}/attach",
            {
                "stream": True,
                "stdin": want_stdin or None,
                "stdout": bool(body.get("AttachStdout")) or None,
                "stderr": bool(body.get("AttachStderr")) or None,
            },
        )
    result: dict[str, Any] = {}

    def waiter() -> None:
        try:
            result["wait"] = c.post(
                f"/containers/{cid}/wait",
                {"condition": "removed" if auto_remove else "next-exit"},
            )
        except (APIError, ConnectionFailed, OSError) as e:
            result["error"] = e

    wait_thread = threading.Thread(target=waiter, daemon=True)
    wait_thread.start()
    try:
        c.request("POST", f"/containers/{cid}/start")
    except APIError as e:
        if conn is not None:
            conn.close()
        run_fail(e, start_exit_code(e))
    if tty:
        resize_tty(c, f"/containers/{cid}/resize")
    if conn is not None:
        attach_session(conn, tty, want_stdin)
    wait_thread.join()
    if "error" in result:
        err = result["error"]
        fail(f"tether: {err}", 125)
    status = result.get("wait") or {}
    if (status.get("Error") or {}).get("Message"):
        fail(f"tether: {status['Error']['Message']}", 125)
    return int(status.get("StatusCode", 0))


def resize_tty(c: Client, path: str) -> None:
    from tether.cli.streams import terminal_size

    size = terminal_size()
    if size is None:
        return
    with contextlib.suppress(APIError):
        c.request("POST", path, {"h": size[0], "w": size[1]})


# ---------------------------------------------------------------- lifecycle
