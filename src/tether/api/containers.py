"""Container routes and Docker's JSON shapes for containers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from tether.api import bodycheck, container_extra, container_logs, fieldgate, runopts_json, volumes
from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, parse_filters, qbool, read_json
from tether.api.streams import Hijacked, copy_streams, parse_detach_keys
from tether.contracts.model import Endpoint, check_name
from tether.engine import health, logconfig, namespaces, psfilter, resources, runopts
from tether.engine import ports as portlib
from tether.engine.containers import ZERO_TIME, Container, command_text
from tether.engine.record import network_mode, parse_restart
from tether.engine.request import ContainerCreate, check_net_mode, merge_config
from tether.engine.seams import ImageConfig
from tether.errors import BadRequest, Conflict
from tether.humanize import human_duration


def _ts(text: str) -> float:
    if not text or text.startswith("0001"):
        return 0.0
    base = text.rstrip("Z")[:26]
    try:
        return dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def status_text(c: Container) -> str:
    st = c.state
    now = time.time()
    if st.status == "running":
        up = "Up " + human_duration(now - _ts(st.started_at))
        if st.paused:
            return up + " (Paused)"
        return up + health.ps_suffix(st.health)
    if st.status == "restarting":
        return f"Restarting ({st.exit_code}) " + human_duration(now - _ts(st.finished_at)) + " ago"
    if st.status == "created":
        return "Created"
    if st.finished_at == ZERO_TIME:
        return "Exited" if st.status == "exited" else st.status.capitalize()
    return f"Exited ({st.exit_code}) " + human_duration(now - _ts(st.finished_at)) + " ago"


def _ep_json(c: Container, ep: Endpoint, user_net: bool, running: bool) -> dict[str, Any]:
    aliases: list[str] | None = None
    if user_net:
        aliases = [*list(ep.aliases), c.id[:12]]
    on = running or True
    return {
        "IPAMConfig": (
            ep.ipam_config
            if ep.ipam_config is not None
            else {"IPv4Address": ep.static_ip}
            if ep.static_ip
            else None
        ),
        "Links": ep.links or None,
        "Aliases": aliases,
        "NetworkID": ep.network_id,
        "EndpointID": ep.id if running else "",
        "Gateway": ep.gateway if on and running else "",
        "IPAddress": ep.ip if running else "",
        "IPPrefixLen": ep.prefixlen if running else 0,
        "IPv6Gateway": ep.gateway6 if running else "",
        "GlobalIPv6Address": ep.ip6 if running else "",
        "GlobalIPv6PrefixLen": ep.prefixlen6 if running else 0,
        "MacAddress": ep.mac if running else ep.mac_config,
        "DriverOpts": ep.driver_opts,
    }


def legacy_links(engine: Any, c: Container) -> list[str] | None:
    """HostConfig.Links as Docker's inspect rebuilds it from its link graph: the default
    bridge's links as ``/target:/container/alias``; None elsewhere (on a user-defined network a
    link is an endpoint's DNS alias, shown in its ``Links``)."""
    bridge = engine.networks.find("bridge")
    if bridge is None or bridge.id not in c.endpoints:
        return None
    out = []
    for tid, alias in c.links:
        target = engine.containers.containers.get(tid)
        if target is not None:
            out.append(f"/{target.name}:/{c.name}/{alias}")
    return out or None


def networks_json(engine: Any, c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mode = c.network_mode
    if mode in ("host", "none"):
        net = engine.networks.find(mode)
        if net is not None:
            out[mode] = {
                "IPAMConfig": None,
                "Links": None,
                "Aliases": None,
                "NetworkID": net.id,
                "EndpointID": "",
                "Gateway": "",
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": "",
                "DriverOpts": None,
            }
        return out
    for ep in c.eps():
        net = engine.networks.networks.get(ep.network_id)
        name = net.name if net is not None else ep.network_name
        out[name] = _ep_json(c, ep, net is not None and not net.predefined, c.running)
    return out


def _has_ports(c: Container) -> bool:
    """Docker lists ports only while the sandbox exists, and none in host mode."""
    return c.running and c.network_mode != "host"


def ports_of(c: Container) -> dict[str, Any]:
    if not _has_ports(c):
        return {}
    bindings = [portlib.PortBinding(**p) for p in c.ports]
    exposed = portlib.exposed_keys(c.config.get("ExposedPorts"), c.host_config.get("PortBindings"))
    return portlib.ports_json(exposed, bindings)


def inspect_json(engine: Any, c: Container) -> dict[str, Any]:
    d = engine.containers.files_dir(c)
    nets = networks_json(engine, c)
    cfg = inspect_config(c)
    hc = _inspect_host_config(engine, c)
    ns = engine.containers.sandbox_ns(c) if c.running else None
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": _state_json(c),
        "Image": c.image_id,
        "ResolvConfPath": str(d / "resolv.conf"),
        "HostnamePath": str(d / "hostname"),
        "HostsPath": str(d / "hosts"),
        "LogPath": str(d / "container.log"),
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": runopts_json.apparmor_profile(c.host_config),
        "ExecIDs": None,
        "HostConfig": hc,
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "Mounts": volumes.mounts_json(c),
        "Config": cfg,
        "NetworkSettings": _network_settings(c, nets, ns),
    }


def inspect_config(c: Container) -> dict[str, Any]:
    """``Config`` as Docker shows it (its defaults filled in, tether's own keys left out)."""
    cfg = {k: v for k, v in c.config.items() if not k.startswith("_")}
    cfg.setdefault("Hostname", c.config.get("Hostname") or c.id[:12])
    for key, default in (
        ("Domainname", ""),
        ("User", ""),
        ("AttachStdin", False),
        ("AttachStdout", False),
        ("AttachStderr", False),
        ("Tty", False),
        ("OpenStdin", False),
        ("StdinOnce", False),
        ("Volumes", None),
        ("OnBuild", None),
    ):
        cfg.setdefault(key, default)
    if not cfg.get("ExposedPorts"):
        cfg.pop("ExposedPorts", None)
    runopts_json.config_defaults(cfg)
    return cfg


def _inspect_host_config(engine: Any, c: Container) -> dict[str, Any]:
    """``HostConfig`` as Docker shows it (its defaults filled in, legacy links resolved)."""
    hc = dict(c.host_config)
    hc.setdefault("NetworkMode", c.network_mode)
    hc.setdefault("PortBindings", {})
    hc.setdefault("AutoRemove", False)
    hc["Links"] = legacy_links(engine, c)
    hc.setdefault("Dns", [])
    hc.setdefault("Runtime", "runc")
    for key, default in resources.INSPECT_DEFAULTS.items():
        hc.setdefault(key, default)
    runopts_json.host_config_defaults(hc)
    hc.setdefault("DeviceCgroupRules", None)
    # Docker fills in its default driver (and keeps the options sent); docker-py's run()
    # reads logs only for json-file/journald, and tether's logs read back the same way
    log: dict[str, Any] = hc.get("LogConfig") or {}
    hc["LogConfig"] = {"Type": log.get("Type") or "json-file", "Config": log.get("Config") or {}}
    return hc


def _state_json(c: Container) -> dict[str, Any]:
    st = c.state
    return {
        "Status": c.status,
        "Running": st.status == "running",
        "Paused": st.paused,
        "Restarting": st.status == "restarting",
        "OOMKilled": False,
        "Dead": st.status == "dead",
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
        **({"Health": st.health} if st.health is not None else {}),
    }


def _network_settings(c: Container, nets: dict[str, Any], ns: str | None) -> dict[str, Any]:
    """``NetworkSettings``: the sandbox, ports, the networks and the legacy top-level fields
    of the default bridge network."""
    bridge = nets.get("bridge") or {}
    return {
        "Bridge": "",
        "SandboxID": c.id if ns else "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports_of(c),
        "SandboxKey": ns or "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": bridge.get("EndpointID", ""),
        "Gateway": bridge.get("Gateway", ""),
        "GlobalIPv6Address": bridge.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": bridge.get("IPAddress", ""),
        "IPPrefixLen": bridge.get("IPPrefixLen", 0),
        "IPv6Gateway": bridge.get("IPv6Gateway", ""),
        "MacAddress": bridge.get("MacAddress", ""),
        "Networks": nets,
    }


def summary_json(
    engine: Any, c: Container, link_names: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    ports: list[dict[str, Any]] = []
    if _has_ports(c):
        for p in c.ports:
            ports.append(
                {
                    "IP": p["host_ip"],
                    "PrivatePort": p["container_port"],
                    "PublicPort": p["host_port"],
                    "Type": p["proto"],
                }
            )
        bound = {(p["container_port"], p["proto"]) for p in c.ports}
        for key in portlib.exposed_keys(c.config.get("ExposedPorts")):
            port, proto = portlib.parse_port_key(key)
            if (port, proto) not in bound:
                ports.append({"PrivatePort": port, "Type": proto})
    return {
        "Id": c.id,
        "Names": [
            "/" + c.name,
            *(link_names.get(c.id, []) if link_names is not None else _link_names(engine, c)),
        ],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": command_text(c),
        "Created": int(_ts(c.created)),
        "Ports": ports,
        "Labels": c.config.get("Labels") or {},
        "State": c.status,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.network_mode},
        "NetworkSettings": {"Networks": networks_json(engine, c)},
        "Mounts": volumes.mounts_json(c),
    }


def _link_names(engine: Any, c: Container) -> list[str]:
    names: dict[str, list[str]] = engine.containers.link_names()
    return names.get(c.id, [])


async def list_containers(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    show_all = qbool(request, "all")
    filters = parse_filters(request)
    match = psfilter.matcher(filters, engine.containers.get)
    names = engine.containers.link_names()
    out = []
    for c in engine.containers.list():
        if not show_all and not c.running and "status" not in filters:
            continue
        if match(c):
            out.append(summary_json(engine, c, names))
    limit = request.query.get("limit")
    if limit and limit.lstrip("-").isdigit() and int(limit) > 0:
        out = out[: int(limit)]
    return json_response(out)


async def create(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await read_json(request)
    bodycheck.check(body, bodycheck.CONTAINER_CREATE, "ContainerConfigWrapper")
    for settings in ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).values():
        bodycheck.check_endpoint_addresses(settings)
    fieldgate.check_create(body)
    warnings = create_warnings(body) + namespaces.check_run_options(body)
    req = parse_create(body, request.query.get("name") or None, engine.image)
    c = await engine.ctl().create(req)
    return json_response({"Id": c.id, "Warnings": warnings}, status=201)


def parse_create(
    body: dict[str, Any], name: str | None, image_of: Callable[[str], ImageConfig]
) -> ContainerCreate:
    """A create body checked and typed, with Docker's texts in Docker's order: the image
    (looked up through ``image_of``), the config merged with the image's, the restart
    policy, the network mode and the options it refuses, the endpoint settings."""
    image_ref = body.get("Image")
    if not isinstance(image_ref, str) or not image_ref:
        raise BadRequest("No image was specified")
    host_config = body.get("HostConfig") or {}
    if not isinstance(host_config, dict):
        raise BadRequest("HostConfig must be an object")
    if name:
        name = name.lstrip("/")
        check_name(name, "container")
    health.check(body.get("Healthcheck"))  # Docker checks it before it looks at the image
    image = image_of(image_ref)
    cfg = merge_config(body, image)
    host_config["RestartPolicy"] = parse_restart(host_config.get("RestartPolicy"))
    if host_config.get("AutoRemove") and host_config["RestartPolicy"]["Name"] != "no":
        raise BadRequest("can't create 'AutoRemove' container with restart policy")
    kind, target = network_mode(host_config)
    check_net_mode(body, host_config)
    netcfg = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(netcfg, dict):
        raise BadRequest("NetworkingConfig.EndpointsConfig must be an object")
    runopts.check_create(cfg, host_config, netcfg, kind)
    if kind == "host" and (host_config.get("PortBindings") or host_config.get("PublishAllPorts")):
        host_config["PortBindings"] = {}
        host_config["PublishAllPorts"] = False
    return ContainerCreate(name, image_ref, image, cfg, host_config, kind, target, netcfg)


def create_warnings(body: dict[str, Any]) -> list[str]:
    """Docker's create warnings (the CLI prints each as ``WARNING: ...``)."""
    hc = body.get("HostConfig") or {}
    if isinstance(hc, dict) and hc.get("NetworkMode") == "host" and hc.get("PortBindings"):
        return ["Published ports are discarded when using host network mode"]
    return []


async def inspect(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    c = engine.containers.get(request.match_info["id"])
    return json_response(inspect_json(engine, c))


async def start(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    await engine.containers.start_container(request.match_info["id"])
    return web.Response(status=204)


def _timeout(request: web.Request) -> int | None:
    t = request.query.get("t")
    if t is None or t == "":
        return None
    try:
        return int(t)
    except ValueError:
        raise BadRequest(f"invalid value for t: {t}") from None


async def stop(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    await engine.containers.stop(request.match_info["id"], _timeout(request))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    await engine.containers.restart(request.match_info["id"], _timeout(request))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    await engine.containers.kill(request.match_info["id"], request.query.get("signal"))
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    force, volumes_too = qbool(request, "force"), qbool(request, "v")
    await engine.containers.remove(request.match_info["id"], force, volumes_too)
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    name = request.query.get("name")
    if not name:
        raise BadRequest("name is required")
    await engine.containers.rename(request.match_info["id"], name)
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await read_json(request)
    fieldgate.check_update(body)
    warnings = await engine.containers.update(request.match_info["id"], body)
    return json_response({"Warnings": warnings})


async def wait(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    ctl = engine.containers
    c = ctl.get(request.match_info["id"])
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise BadRequest(f"invalid condition: {condition}")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    if condition == "not-running" and not c.running and c.state.status != "restarting":
        return json_response({"StatusCode": c.state.exit_code, "Error": None})
    fut = ctl.exit_future(c)
    await resp.prepare(request)
    code = await fut
    if condition == "removed":
        while c.id in ctl.containers:
            fut = ctl.exit_future(c)
            code = await fut
    with contextlib.suppress(ConnectionError):
        await resp.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
        await resp.write_eof()
    return resp


async def _attachment(engine: Any, c: Container, done: asyncio.Future[int]) -> Any | None:
    """The container's attach stream; for a container not started yet (``docker run``
    attaches before it starts) connect between runc create and start. None when the
    container exited before that."""
    if c.running:
        return await engine.attach(c.id)
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def hook() -> None:
        if not got.done():
            got.set_result(await engine.attach(c.id))

    engine.containers.attach_hooks.setdefault(c.id, []).append(hook)
    await asyncio.wait([got, done], return_when=asyncio.FIRST_COMPLETED)
    return got.result() if got.done() else None


async def attach(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    ctl = engine.containers
    ref = request.match_info["id"]
    keys_spec = request.query.get("detachKeys") or ""
    try:
        keys = parse_detach_keys(keys_spec) if keys_spec else b""
    except ValueError:
        raise BadRequest(f"Invalid detach keys ({keys_spec}) provided") from None
    c = ctl.get(ref)
    if c.state.paused:
        raise Conflict(f"container {ref} is paused, unpause the container before attach")
    want_stdin = qbool(request, "stdin")
    logs = qbool(request, "logs")
    # Docker's flags, all false by default: which streams to send, and whether to stay
    # attached after the log replay (stream=0 answers the logs and ends: it hung before)
    wanted = {name for name in ("stdout", "stderr") if qbool(request, name)}
    live = qbool(request, "stream")
    hj = await Hijacked.open(request, multiplex=not c.tty)
    done = ctl.exit_future(c)
    try:
        if logs and not logconfig.is_none_driver(c.host_config):
            log_path = ctl.files_dir(c) / "container.log"
            async for stream, data in engine.read_logs(log_path):
                if stream in wanted:
                    hj.write(stream, data)
        if not live:
            return hj.resp
        att = await _attachment(engine, c, done)
        if att is None:
            return hj.resp
        # StdinOnce without a TTY: the client's EOF closes the container's stdin (conmon, see
        # Runtime.create); otherwise stdin stays open and the attach just ends, as Docker's
        once = bool(c.config.get("StdinOnce")) and not c.tty
        with_stdin = bool(want_stdin and c.config.get("OpenStdin"))
        try:
            detached = await copy_streams(
                hj,
                aiter(att),
                write=att.write if with_stdin else None,
                close_stdin=att.close_stdin,
                keys=keys if c.tty else None,  # b"": Docker's ctrl-p,ctrl-q
                wanted=frozenset(wanted),
                end_on_eof=not once,
            )
        finally:
            att.close()
        if detached:
            ctl.emit("detach", c)
            return hj.resp
        if with_stdin and not once and not done.done():
            return hj.resp  # ended by the client's EOF: the container runs on
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout=2)
    finally:
        await hj.finish()
    return hj.resp


async def resize(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    c = engine.containers.get(request.match_info["id"])
    try:
        h, w = int(request.query.get("h", "0")), int(request.query.get("w", "0"))
    except ValueError:
        raise BadRequest("invalid size") from None
    if c.running and c.tty:
        with contextlib.suppress(Exception):
            engine.resize(c.id, h, w)
    return web.Response(status=200)


async def port(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    c = engine.containers.get(request.match_info["id"])
    return json_response(ports_of(c))


def register(router: Router) -> None:
    router.add("GET", "/containers/json", list_containers)
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("DELETE", "/containers/{id}", remove)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/{id}/update", update)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("GET", "/containers/{id}/port", port)
    container_extra.register(router)
    container_logs.register(router)
