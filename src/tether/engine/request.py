"""A container create, typed: the request the API parses and the engine carries out.

``ContainerCreate`` is what ``POST /containers/create`` asks for once its body passed every
check that needs no engine state (the API's ``parse_create`` runs them, in Docker's order);
the checks that need the engine (name clash, networks, links, addresses) run in
``tether.engine.create``. The helpers here are the request's own rules: the image's
defaults merged into the container config, and the options the network mode refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.engine import health
from tether.engine.seams import ImageConfig
from tether.errors import BadRequest

IPAM_KEYS = ("IPv4Address", "IPv6Address", "LinkLocalIPs")
CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "StopSignal",
    "StopTimeout",
    "Volumes",  # issue 16, P2
    "MacAddress",
)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ContainerCreate:
    """A checked create request.

    ``config`` is the container config with the image's defaults merged in (``_argv`` is the
    command line); ``host_config`` has its restart policy parsed; ``kind``/``target`` is the
    network mode (network | host | none | container, and the network or container named);
    ``endpoints`` is ``NetworkingConfig.EndpointsConfig`` by network reference.
    """

    name: str | None
    image_ref: str
    image: ImageConfig
    config: dict[str, Any]
    host_config: dict[str, Any]
    kind: str
    target: str
    endpoints: dict[str, Any]


def sent_ipam(raw: Any) -> dict[str, Any] | None:
    """An endpoint's IPAMConfig as inspect shows it: None when not sent, else its non-empty
    fields (Docker's omitempty)."""
    if not isinstance(raw, dict):
        return None
    return {k: v for k, v in raw.items() if k in IPAM_KEYS and v}


def sent_driver_opts(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        return None
    return {str(k): str(v) for k, v in raw.items()}


def check_net_mode(body: dict[str, Any], hc: dict[str, Any]) -> None:
    """Options that make no sense with the network mode, refused at create with Docker's texts
    (runconfig's validateNetMode: the request's own settings, before the image's merge)."""
    mode = hc.get("NetworkMode") or ""
    if mode == "container:":
        raise BadRequest("Invalid network mode: invalid container format container:<name|id>")
    shared = mode.startswith("container:")
    conflicts = (
        (shared and bool(body.get("Hostname")), "hostname and the network mode"),
        (
            shared and bool(hc.get("Links")),
            "container type network can't be used with links. "
            "This would result in undefined behavior",
        ),
        (shared and bool(hc.get("Dns")), "dns and the network mode"),
        (shared and bool(hc.get("ExtraHosts")), "custom host-to-IP mapping and the network mode"),
        (
            (shared or mode == "host") and bool(body.get("MacAddress")),
            "mac-address and the network mode",
        ),
        (
            shared and bool(hc.get("PortBindings") or hc.get("PublishAllPorts")),
            "port publishing and the container type network mode",
        ),
        (
            shared and bool(body.get("ExposedPorts")),
            "port exposing and the container type network mode",
        ),
        (
            mode == "host" and bool(hc.get("Links")),
            "host type networking can't be used with links. "
            "This would result in undefined behavior",
        ),
    )
    for bad, text in conflicts:
        if bad:
            raise BadRequest(f"conflicting options: {text}")


def _sent_config(body: dict[str, Any]) -> dict[str, Any]:
    cfg = {key: body[key] for key in CONFIG_KEYS if key in body}
    for key in ("Env", "Cmd", "Entrypoint"):
        v = cfg.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            if key == "Entrypoint" and isinstance(v, str):
                cfg[key] = [v] if v else []
                continue
            raise BadRequest(f"{key} must be a list of strings")
    return cfg


def _merged_env(image_env: list[str], sent: list[str]) -> list[str]:
    env = list(image_env or [])
    keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for e in sent:
        k = e.split("=", 1)[0]
        if k in keys:
            env[keys[k]] = e
        else:
            keys[k] = len(env)
            env.append(e)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    return env


def merge_config(body: dict[str, Any], image: ImageConfig) -> dict[str, Any]:
    """The container config: the body's settings over the image's (Docker's merge)."""
    cfg = _sent_config(body)
    cfg["Env"] = _merged_env(image.env, cfg.get("Env") or [])
    entry = cfg.get("Entrypoint")
    if entry is None:
        entry = image.entrypoint or []
    cmd = cfg.get("Cmd")
    if not cmd:
        cmd = image.cmd or [] if cfg.get("Entrypoint") is None else cmd or []
    cfg["Entrypoint"] = entry or None
    cfg["Cmd"] = cmd or None
    argv = list(entry or []) + list(cmd or [])
    if not argv:
        raise BadRequest("No command specified")
    cfg["_argv"] = argv
    cfg["WorkingDir"] = cfg.get("WorkingDir") or image.working_dir or ""
    cfg["Image"] = body.get("Image")
    exposed = dict(image.exposed_ports or {})
    exposed.update(cfg.get("ExposedPorts") or {})
    cfg["ExposedPorts"] = exposed
    labels = dict(image.labels or {})
    labels.update(cfg.get("Labels") or {})
    cfg["Labels"] = labels
    volumes = dict(image.volumes or {})  # issue 16, P2: the image's VOLUMEs and the request's
    volumes.update(cfg.get("Volumes") or {})
    cfg["Volumes"] = volumes or None
    health.apply(cfg, body, image)  # P4: Healthcheck, the image's merged in
    return cfg
