"""Network routes, in Docker's JSON shapes."""

from __future__ import annotations

from typing import Any

from tether.api import bodycheck, fieldgate
from tether.api import httpd as web
from tether.api.http import ENGINE, Router, json_response, parse_filters, qbool, read_json
from tether.contracts.model import Network
from tether.engine.networks import CreateRequest
from tether.errors import BadRequest


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str | int | float | bool):
            raise BadRequest(f"{what} must be an object of strings")
        out[k] = str(v) if not isinstance(v, bool) else str(v).lower()
    return out


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{what} must be a boolean")
    return value


def parse_create(body: dict[str, Any]) -> CreateRequest:
    name = body.get("Name")
    if not isinstance(name, str):
        raise BadRequest("network name must be a string")
    driver = body.get("Driver") or "bridge"
    if not isinstance(driver, str):
        raise BadRequest("Driver must be a string")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise BadRequest("IPAM must be an object")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise BadRequest("IPAM.Config must be a list of objects")
    clean: list[dict[str, Any]] = []
    for c in configs:
        entry: dict[str, Any] = {}
        for key in ("Subnet", "IPRange", "Gateway"):
            v = c.get(key)
            if v is not None and not isinstance(v, str):
                raise BadRequest(f"IPAM.Config.{key} must be a string")
            if v:
                entry[key] = v
        aux = c.get("AuxiliaryAddresses") or c.get("AuxAddress")
        if aux:
            entry["AuxiliaryAddresses"] = _str_map(aux, "AuxiliaryAddresses")
        clean.append(entry)
    return CreateRequest(
        name=name,
        driver=driver,
        internal=_bool(body.get("Internal"), "Internal"),
        attachable=_bool(body.get("Attachable"), "Attachable"),
        ipv6=_bool(body.get("EnableIPv6"), "EnableIPv6"),
        ipam_driver=str(ipam.get("Driver") or "default"),
        ipam_options=(
            None if ipam.get("Options") is None else _str_map(ipam["Options"], "IPAM.Options")
        ),
        configs=clean,
        options=_str_map(body.get("Options"), "Options"),
        labels=_str_map(body.get("Labels"), "Labels"),
        check_duplicate=bool(body.get("CheckDuplicate", True)),
    )


def network_json(net: Network, containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": net.scope,
        "Driver": net.driver,
        "EnableIPv6": net.ipv6,
        "IPAM": {
            "Driver": net.ipam_driver,
            # as the request sent it: null when absent (docker-py), {} from the docker CLI
            "Options": None if net.ipam_options is None else dict(net.ipam_options),
            "Config": list(net.configs),
        },
        "Internal": net.internal,
        "Attachable": net.attachable,
        "Ingress": net.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(net.options),
        "Labels": dict(net.labels),
    }


def _label_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        if "=" in w:
            k, v = w.split("=", 1)
            if labels.get(k) != v:
                return False
        elif w not in labels:
            return False
    return True


def match_filters(net: Network, filters: dict[str, list[str]], in_use: bool) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "name":
            if not any(v in net.name for v in values):
                return False
        elif key == "id":
            if not any(net.id.startswith(v) for v in values):
                return False
        elif key == "driver":
            if net.driver not in values:
                return False
        elif key == "scope":
            if net.scope not in values:
                return False
        elif key == "type":
            kind = "builtin" if net.predefined else "custom"
            for v in values:
                if v not in ("custom", "builtin"):
                    raise BadRequest(f"invalid filter: 'type'='{v}'")
            if kind not in values:
                return False
        elif key == "label":
            if not _label_match(net.labels, values):
                return False
        elif key == "dangling":
            want = values[0].lower() in ("1", "true")
            if want == (in_use or net.predefined):
                return False
        else:
            raise BadRequest(f"invalid filter '{key}'")
    return True


async def list_networks(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    filters = parse_filters(request)
    out = []
    for net in engine.networks.list():
        if match_filters(net, filters, engine.network_in_use(net)):
            out.append(network_json(net, {}))
    return json_response(out)


async def inspect_network(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    net = engine.networks.get(request.match_info["id"])
    return json_response(network_json(net, engine.network_containers(net)))


async def create_network(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    req = parse_create(await read_json(request))
    net = await engine.create_network(req)
    return json_response({"Id": net.id, "Warning": ""}, status=201)


async def remove_network(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    await engine.remove_network(request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await read_json(request)
    bodycheck.check(body, bodycheck.NETWORK_CONNECT, "NetworkConnect")
    bodycheck.check_endpoint_addresses(body.get("EndpointConfig"))
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise BadRequest("Container must be given")
    cfg = body.get("EndpointConfig") or {}
    if not isinstance(cfg, dict):
        raise BadRequest("EndpointConfig must be an object")
    fieldgate.check_endpoint(cfg, "EndpointConfig")
    await engine.connect(request.match_info["id"], container, cfg)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await read_json(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise BadRequest("Container must be given")
    await engine.disconnect(request.match_info["id"], container, bool(body.get("Force")))
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    filters = parse_filters(request)
    gone = await engine.prune_networks(filters)
    return json_response({"NetworksDeleted": gone})


def register(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("POST", "/networks/create", create_network)
    router.add("POST", "/networks/prune", prune)
    router.add("GET", "/networks/{id}", inspect_network)
    router.add("DELETE", "/networks/{id}", remove_network)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)


__all__ = ["network_json", "parse_create", "qbool", "register"]
