"""Exec routes: create an exec, start it on a hijacked stream, inspect it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, read_json
from tether.api.streams import Hijacked, copy_streams, parse_detach_keys
from tether.errors import BadRequest, Conflict, NotFound, TetherError


@dataclass
class ExecRecord:
    id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    tty: bool
    stdin: bool
    workdir: str
    user: str
    privileged: bool
    detach_keys: bytes = b""
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    proc: Any = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


EXECS: web.AppKey[dict[str, ExecRecord]] = web.AppKey("execs", dict)


def _execs(app: web.Application) -> dict[str, ExecRecord]:
    if EXECS not in app:
        app[EXECS] = {}
    return app[EXECS]


def check_exec_target(c: Any, ref: str) -> None:
    """Docker's getActiveContainer: running, not paused, not restarting."""
    if not c.running:
        if c.state.status == "restarting":
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        raise Conflict(f"Container {c.id} is not running")
    if c.state.paused:
        raise Conflict(f"Container {ref} is paused, unpause the container before exec")


def _command(rec: ExecRecord) -> str:
    """The event action's tail, as Docker writes it: entrypoint, a space, the arguments."""
    return rec.cmd[0] + " " + " ".join(rec.cmd[1:])


EXEC_FIELDS: tuple[str, ...] = ("AttachStdin", "AttachStdout", "AttachStderr", "ConsoleSize")
EXEC_FIELDS += ("DetachKeys", "Tty", "Env", "Cmd", "Privileged", "User", "WorkingDir")


def go_keys(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Go's JSON decoding matches field names without regard to case (docker-py sends
    ``detachKeys``): keys that match a field so are renamed to it."""
    canon = {f.lower(): f for f in fields}
    return {canon.get(k.lower(), k): v for k, v in body.items()}


async def create_exec(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    ref = request.match_info["id"]
    c = engine.containers.get(ref)
    body = go_keys(await read_json(request), EXEC_FIELDS)
    check_exec_target(c, ref)
    cmd = body.get("Cmd")
    if not isinstance(cmd, list) or not cmd or not all(isinstance(x, str) for x in cmd):
        raise BadRequest("No exec command specified")
    keys_spec = body.get("DetachKeys") or ""
    try:
        keys = parse_detach_keys(str(keys_spec)) if keys_spec else b""
    except ValueError:
        raise BadRequest(f"Invalid escape keys ({keys_spec}) provided") from None
    env = body.get("Env") or []
    rec = ExecRecord(
        id=os.urandom(32).hex(),
        container_id=c.id,
        cmd=cmd,
        env=list(c.config.get("Env") or []) + [e for e in env if isinstance(e, str)],
        tty=bool(body.get("Tty")),
        stdin=bool(body.get("AttachStdin")),
        workdir=str(body.get("WorkingDir") or c.config.get("WorkingDir") or ""),
        user=str(body.get("User") or c.config.get("User") or ""),  # Docker: the container's
        privileged=bool(body.get("Privileged")),
        detach_keys=keys,
    )
    _execs(request.app)[rec.id] = rec
    engine.containers.emit(f"exec_create: {_command(rec)}", c, execID=rec.id)
    return json_response({"Id": rec.id}, status=201)


def _get(request: web.Request) -> ExecRecord:
    rec = _execs(request.app).get(request.match_info["id"])
    if rec is None:
        raise NotFound(f"No such exec instance: {request.match_info['id']}")
    return rec


async def start_exec(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    rec = _get(request)
    body = await read_json(request, required=False)
    detach = bool(body.get("Detach"))
    if rec.running or rec.exit_code is not None:
        raise Conflict(f"exec {rec.id} has already been started")
    c = engine.containers.get(rec.container_id)
    check_exec_target(c, c.id)
    # The process gets a TTY when the exec was created with one; the stream is framed unless
    # the start body says Tty (Docker's router: the two may differ, docker-py sends both).
    # Like Docker, answer 101 before the process starts: output written together with the
    # upgrade headers lands in the client's HTTP buffer, which docker-py never reads.
    hj = None if detach else await Hijacked.open(request, multiplex=not body.get("Tty"))
    engine.containers.emit(f"exec_start: {_command(rec)}", c, execID=rec.id)
    proc = await _run(engine, rec, hj, tty=rec.tty, detach=detach)
    if proc is None:
        assert hj is not None
        return hj.resp
    rec.proc, rec.running, rec.pid = proc, True, proc.pid
    reap = _reaper(rec, proc, lambda code: _died(engine, c, rec, code))
    if detach:
        engine.spawn(_drain_and_reap(proc, reap))
        return web.Response(status=200)
    assert hj is not None
    await _attach(engine, hj, rec, proc, reap)
    return hj.resp


def _died(engine: Any, c: Any, rec: ExecRecord, code: int) -> None:
    engine.containers.emit("exec_die", c, execID=rec.id, exitCode=str(code))


async def _run(
    engine: Any, rec: ExecRecord, hj: Hijacked | None, *, tty: bool, detach: bool
) -> Any:
    """Start the exec's process; None when it failed after the upgrade (the error then went
    on the stream, and the stream is finished)."""
    try:
        return await engine.exec(
            rec.container_id,
            rec.cmd,
            env=rec.env,
            cwd=rec.workdir or None,
            user=rec.user or None,
            tty=tty,
            stdin=rec.stdin and not detach,
            privileged=rec.privileged,
        )
    except TetherError as exc:
        if hj is None:
            raise
        # after the upgrade the error goes on the stream; docker exec reads 126 from inspect
        rec.exit_code = 126
        rec.done.set()
        hj.write("stderr", (exc.message + "\r\n").encode())
        await hj.finish()
        return None


def _reaper(
    rec: ExecRecord, proc: Any, died: Callable[[int], None]
) -> Callable[[], Awaitable[None]]:
    """A coroutine function that waits for ``proc``, records its exit in ``rec`` and tells
    ``died`` (the ``exec_die`` event)."""

    async def reap() -> None:
        try:
            rec.exit_code = await proc.wait()
        finally:
            rec.running = False
            rec.done.set()
        died(rec.exit_code)

    return reap


async def _attach(
    engine: Any,
    hj: Hijacked,
    rec: ExecRecord,
    proc: Any,
    reap: Callable[[], Awaitable[None]],
) -> None:
    """Copy the process's output to the stream (and the stream to its stdin) until it exits,
    or until the client types the detach keys (a TTY exec: the process keeps running)."""
    try:
        detached = await copy_streams(
            hj,
            proc.output(),
            write=proc.write if rec.stdin else None,
            close_stdin=proc.close_stdin,
            keys=rec.detach_keys if rec.tty else None,  # b"": Docker's ctrl-p,ctrl-q
        )
        if detached:
            c = engine.containers.find(rec.container_id)
            if c is not None:
                engine.containers.emit("exec_detach", c, execID=rec.id)
            engine.spawn(_drain_and_reap(proc, reap))
            return
        await reap()
    finally:
        await hj.finish()


async def _drain_and_reap(proc: Any, reap: Any) -> None:
    async for _ in proc.output():
        pass
    await reap()


async def inspect_exec(request: web.Request) -> web.Response:
    rec = _get(request)
    return json_response(
        {
            "ID": rec.id,
            "Running": rec.running,
            "ExitCode": rec.exit_code,
            "ProcessConfig": {
                "tty": rec.tty,
                "entrypoint": rec.cmd[0],
                "arguments": rec.cmd[1:],
                "privileged": rec.privileged,
                "user": rec.user,
            },
            "OpenStdin": rec.stdin,
            "OpenStderr": True,
            "OpenStdout": True,
            "CanRemove": False,
            "ContainerID": rec.container_id,
            "DetachKeys": base64.b64encode(rec.detach_keys).decode(),
            "Pid": rec.pid,
        }
    )


async def resize_exec(request: web.Request) -> web.Response:
    rec = _get(request)
    try:
        h, w = int(request.query.get("h", "0")), int(request.query.get("w", "0"))
    except ValueError:
        raise BadRequest("invalid size") from None
    if rec.proc is not None and rec.tty:
        with contextlib.suppress(Exception):
            rec.proc.resize(h, w)
    return web.Response(status=200)


def register(router: Router) -> None:
    router.add("POST", "/containers/{id}/exec", create_exec)
    router.add("POST", "/exec/{id}/start", start_exec)
    router.add("GET", "/exec/{id}/json", inspect_exec)
    router.add("POST", "/exec/{id}/resize", resize_exec)
