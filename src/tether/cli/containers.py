"""Container verbs: start, stop, restart, kill, rm, ps, inspect, exec, logs, wait, attach,
rename, port, update (``run`` and ``create`` are in :mod:`tether.cli.run`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from tether.cli.actions import remove_containers
from tether.cli.run import create, resize_tty, run
from tether.cli.text import human_size
from tether.cli.util import (
    UsageFailure,
    api_errors,
    client,
    fail,
    filters_query,
)
from tether.cli.views import (
    PS_HEADERS,
    container_row,
    displayable_ports,
    format_containers,
    list_containers,
)
from tether.client import APIError, Client

__all__ = ["PS_HEADERS", "container_row", "displayable_ports", "format_containers", "human_size"]

CONTEXT = {"help_option_names": ["--help"]}
RUN_CONTEXT = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _multi(
    verb_error: str, names: tuple[str, ...], action: Callable[[Client, str], object]
) -> None:
    """Apply ``action`` to each name, echo the name on success; docker's error summary."""
    c = client()
    errors: list[str] = []
    for name in names:
        try:
            action(c, name)
        except APIError as e:
            errors.append(str(e))
            continue
        click.echo(name)
    if errors:
        fail("\n".join(errors))
    del verb_error


# ---------------------------------------------------------------- create / run


@click.command("start", context_settings=CONTEXT)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.argument("containers", nargs=-1, required=True)
@api_errors
def start(attach: bool, interactive: bool, containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers"""
    if attach or interactive:
        if len(containers) > 1:
            fail("you cannot start and attach multiple containers at once")
        sys.exit(_attach(containers[0], stdin=interactive, start=True))
    c = client()
    failed: list[str] = []
    for name in containers:
        try:
            c.request("POST", f"/containers/{name}/start")
        except APIError as e:
            click.echo(str(e), err=True)
            failed.append(name)
            continue
        click.echo(name)
    if failed:
        fail(f"Error: failed to start containers: {', '.join(failed)}")


def _stop_options(f: Callable[..., None]) -> Callable[..., None]:
    """The options ``stop`` and ``restart`` share: a signal, a grace time, the containers."""
    f = api_errors(f)
    f = click.argument("containers", nargs=-1, required=True)(f)
    f = click.option(
        "-t",
        "--time",
        "--timeout",
        "timeout",
        type=int,
        default=None,
        help="Seconds to wait before killing the container",
    )(f)
    return click.option("-s", "--signal", default="", help="Signal to send to the container")(f)


@click.command("stop", context_settings=CONTEXT)
@_stop_options
def stop(signal: str, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Stop one or more running containers"""
    q = {"t": timeout, "signal": signal or None}
    _multi("stop", containers, lambda c, n: c.request("POST", f"/containers/{n}/stop", q))


@click.command("restart", context_settings=CONTEXT)
@_stop_options
def restart(signal: str, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Restart one or more containers"""
    q = {"t": timeout, "signal": signal or None}
    _multi(
        "restart",
        containers,
        lambda c, n: c.request("POST", f"/containers/{n}/restart", q),
    )


@click.command("kill", context_settings=CONTEXT)
@click.option("-s", "--signal", default="", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@api_errors
def kill(signal: str, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers"""
    q = {"signal": signal or None}
    _multi("kill", containers, lambda c, n: c.request("POST", f"/containers/{n}/kill", q))


@click.command("rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container")
@click.option("-l", "--link", is_flag=True, help="Remove the specified link")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes")
@click.argument("containers", nargs=-1, required=True)
@api_errors
def rm(force: bool, link: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers"""
    remove_containers(client(), containers, force, link, volumes)


@click.command("wait", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@api_errors
def wait(containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes"""
    c = client()
    errors: list[str] = []
    for name in containers:
        try:
            r = c.post(f"/containers/{name}/wait")
        except APIError as e:
            errors.append(str(e))
            continue
        click.echo(str(r.get("StatusCode", 0)))
    if errors:
        fail("\n".join(errors))


@click.command("rename", context_settings=CONTEXT)
@click.argument("container")
@click.argument("new_name")
@api_errors
def rename(container: str, new_name: str) -> None:
    """Rename a container"""
    if not new_name.strip():
        fail("Error: Neither old nor new names may be empty")
    client().request("POST", f"/containers/{container}/rename", {"name": new_name})


def _bytes(value: str) -> int:
    """docker's RAMInBytes: ``512m`` -> 536870912."""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    v = value.strip().lower()
    num = v.rstrip("bkmgtpi")
    unit = v[len(num) :].rstrip("b").rstrip("i")
    if unit not in units or not num:
        raise UsageFailure(f"invalid size: '{value}'")
    return int(float(num) * units[unit])


@click.command("update", context_settings=CONTEXT)
@click.option("--cpu-shares", "-c", type=int, default=None, help="CPU shares (relative weight)")
@click.option("--cpus", type=float, default=None, help="Number of CPUs")
@click.option("-m", "--memory", default=None, help="Memory limit")
@click.option("--pids-limit", type=int, default=None, help="Tune container pids limit")
@click.option("--restart", default=None, help="Restart policy to apply when a container exits")
@click.argument("containers", nargs=-1, required=True)
@api_errors
def update(
    cpu_shares: int | None,
    cpus: float | None,
    memory: str | None,
    pids_limit: int | None,
    restart: str | None,
    containers: tuple[str, ...],
) -> None:
    """Update configuration of one or more containers"""
    from tether.cli.runopts import parse_restart

    body: dict[str, Any] = {}
    if cpu_shares is not None:
        body["CpuShares"] = cpu_shares
    if cpus is not None:
        body["NanoCpus"] = int(cpus * 1e9)
    if memory is not None:
        body["Memory"] = _bytes(memory)
    if pids_limit is not None:
        body["PidsLimit"] = pids_limit
    if restart is not None:
        body["RestartPolicy"] = parse_restart(restart)
    if not body:
        fail("you must provide one or more flags when using this command")

    def act(c: Client, n: str) -> None:
        r = c.post(f"/containers/{n}/update", body=body) or {}
        for w in r.get("Warnings") or []:
            click.echo(f"WARNING: {w}", err=True)

    _multi("update", containers, act)


# ---------------------------------------------------------------- ps


@click.command("ps", context_settings=CONTEXT)
@click.option(
    "-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)"
)
@click.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided"
)
@click.option("--format", "fmt", default="", help="Format output using a custom template")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@api_errors
def ps(
    all_: bool,
    filters: tuple[str, ...],
    fmt: str,
    last: int,
    latest: bool,
    no_trunc: bool,
    quiet: bool,
    size: bool,
) -> None:
    """List containers"""
    text = list_containers(
        client(), all_, filters_query(filters), fmt, last, latest, no_trunc, quiet, size
    )
    click.echo(text, nl=False)


# ---------------------------------------------------------------- inspect


@click.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.option(
    "-s", "--size", is_flag=True, help="Display total file sizes if the type is container"
)
@click.option("--type", "type_", default="", help="Only inspect objects of the given type")
@click.argument("names", nargs=-1, required=True)
@api_errors
def inspect(fmt: str, size: bool, type_: str, names: tuple[str, ...]) -> None:
    """Return low-level information on Docker objects"""
    from tether.cli.network import print_inspect

    kinds: dict[str, tuple[str, dict[str, bool | None] | None]] = {
        "container": ("/containers/{}/json", {"size": size or None}),
        "network": ("/networks/{}", None),
        "image": ("/images/{}/json", None),
    }
    if type_ and type_ not in kinds:
        fail(f'"{type_}" is not a valid value for --type')
    order = [type_] if type_ else ["container", "image", "network"]
    c = client()
    items: list[Any] = []
    errors: list[str] = []
    for name in names:
        for kind in order:
            path, q = kinds[kind][0].format(name), kinds[kind][1]
            try:
                items.append(c.get(path, q))
                break
            except APIError as e:
                if e.status != 404:
                    errors.append(str(e))
                    break
        else:
            errors.append(f"Error: No such {type_ or 'object'}: {name}")
    print_inspect(items, errors, fmt)


@click.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.argument("names", nargs=-1, required=True)
@api_errors
def container_inspect(fmt: str, size: bool, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more containers"""
    from tether.cli.network import print_inspect

    c = client()
    items: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            items.append(c.get(f"/containers/{name}/json", {"size": size or None}))
        except APIError as e:
            errors.append(str(e))
    print_inspect(items, errors, fmt)


# ---------------------------------------------------------------- exec / attach / logs


@click.command("exec", context_settings=RUN_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("--detach-keys", default="", help="Override the key sequence for detaching")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-u", "--user", default="", help="Username or UID")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@api_errors
def exec_(
    detach: bool,
    detach_keys: str,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    interactive: bool,
    privileged: bool,
    tty: bool,
    user: str,
    workdir: str,
    container: str,
    command: tuple[str, ...],
) -> None:
    """Execute a command in a running container"""
    from tether.cli.runopts import parse_env, read_env_files

    body = exec_body(
        list(command),
        read_env_files(env_file) + parse_env(env),
        detach,
        interactive,
        tty,
        user,
        workdir,
        privileged,
        detach_keys,
    )
    sys.exit(run_exec(client(), container, body))


def exec_body(
    command: list[str],
    env: list[str],
    detach: bool,
    interactive: bool,
    tty: bool,
    user: str = "",
    workdir: str = "",
    privileged: bool = False,
    detach_keys: str = "",
) -> dict[str, Any]:
    """The POST /containers/{id}/exec body docker sends."""
    return {
        "User": user,
        "Privileged": privileged,
        "Tty": tty,
        "AttachStdin": interactive and not detach,
        "AttachStderr": not detach,
        "AttachStdout": not detach,
        "Detach": detach,
        "DetachKeys": detach_keys,
        "Env": env or None,
        "WorkingDir": workdir,
        "Cmd": command,
    }


def run_exec(c: Client, container: str, body: dict[str, Any]) -> int:
    """Create and start an exec; returns the exit code to leave with."""
    from tether.cli.streams import attach_session

    exec_id = c.post(f"/containers/{container}/exec", body=body)["Id"]
    start_body = {"Detach": body["Detach"], "Tty": body["Tty"]}
    if body["Detach"]:
        c.request("POST", f"/exec/{exec_id}/start", body=start_body)
        return 0
    conn = c.hijack(f"/exec/{exec_id}/start", body=start_body)
    if body["Tty"]:
        resize_tty(c, f"/exec/{exec_id}/resize")
    attach_session(conn, bool(body["Tty"]), bool(body["AttachStdin"]))
    info = c.get(f"/exec/{exec_id}/json") or {}
    return int(info.get("ExitCode") or 0)


def _attach(container: str, stdin: bool, start: bool = False) -> int:
    from tether.cli.streams import attach_session

    c = client()
    info = c.get(f"/containers/{container}/json")
    cfg = info.get("Config") or {}
    tty = bool(cfg.get("Tty"))
    stdin = stdin and bool(cfg.get("OpenStdin"))
    if not start and not (info.get("State") or {}).get("Running"):
        fail("You cannot attach to a stopped container, start it first")
    conn = c.hijack(
        f"/containers/{container}/attach",
        {"stream": True, "stdin": stdin or None, "stdout": True, "stderr": True},
    )
    if start:
        c.request("POST", f"/containers/{container}/start")
    if tty:
        resize_tty(c, f"/containers/{container}/resize")
    attach_session(conn, tty, stdin)
    state = (c.get(f"/containers/{container}/json") or {}).get("State") or {}
    return int(state.get("ExitCode") or 0)


@click.command("attach", context_settings=CONTEXT)
@click.option("--detach-keys", default="", help="Override the key sequence for detaching")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals")
@click.argument("container")
@api_errors
def attach(detach_keys: str, no_stdin: bool, sig_proxy: bool, container: str) -> None:
    """Attach local standard input, output, and error streams to a running container"""
    sys.exit(_attach(container, stdin=not no_stdin))


@click.command("logs", context_settings=CONTEXT)
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", default="", help="Show logs since timestamp")
@click.option(
    "-n", "--tail", default="all", help="Number of lines to show from the end of the logs"
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--until", default="", help="Show logs before a timestamp")
@click.argument("container")
@api_errors
def logs(
    details: bool,
    follow: bool,
    since: str,
    tail: str,
    timestamps: bool,
    until: str,
    container: str,
) -> None:
    """Fetch the logs of a container"""
    from tether.cli.streams import _out, demux_frames

    c = client()
    info = c.get(f"/containers/{container}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    q = {
        "stdout": True,
        "stderr": True,
        "follow": follow or None,
        "since": since or None,
        "until": until or None,
        "tail": tail,
        "timestamps": timestamps or None,
        "details": details or None,
    }
    resp = c.stream("GET", f"/containers/{container}/logs", q)
    try:
        if tty:
            while True:
                data = resp.read1(32768)
                if not data:
                    break
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
        else:
            for stream, payload in demux_frames(resp):
                out = _out(stream)
                out.write(payload)
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        resp.close()


@click.command("port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("private_port", required=False)
@api_errors
def port(container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container"""
    info = client().get(f"/containers/{container}/json")
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    click.echo(format_ports(ports, private_port, container), nl=False)


def _join_host(ip: str, port_: str) -> str:
    return f"[{ip}]:{port_}" if ":" in ip else f"{ip}:{port_}"


def format_ports(ports: dict[str, Any], private_port: str | None, container: str) -> str:
    if private_port:
        p, _, proto = private_port.partition("/")
        key = f"{p}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise UsageFailure(f"Error: No public port '{key}' published for {container}")
        return "".join(_join_host(b["HostIp"], b["HostPort"]) + "\n" for b in bindings)

    def sort_key(k: str) -> tuple[int, str]:
        num, _, proto = k.partition("/")
        return (int(num) if num.isdigit() else 0, proto)

    out = []
    for k in sorted(ports, key=sort_key):
        for b in ports[k] or []:
            out.append(f"{k} -> {_join_host(b['HostIp'], b['HostPort'])}\n")
    return "".join(out)


# ---------------------------------------------------------------- `container` group

CONTAINER_COMMANDS = {
    "run": run,
    "create": create,
    "start": start,
    "stop": stop,
    "restart": restart,
    "kill": kill,
    "rm": rm,
    "ps": ps,
    "ls": ps,
    "list": ps,
    "inspect": container_inspect,
    "exec": exec_,
    "logs": logs,
    "wait": wait,
    "attach": attach,
    "rename": rename,
    "port": port,
    "update": update,
}


@click.group("container", context_settings=CONTEXT)
def container() -> None:
    """Manage containers"""


for _name, _cmd in CONTAINER_COMMANDS.items():
    container.add_command(_cmd, _name)
