"""Hostile and malformed requests: each answer is a 4xx with a message, nothing is created,
and the daemon keeps running (same pid, still answering)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.compat.conftest import IMAGE

from tether.lab.lab import LabHost

BASE = "http+docker://localhost"
BOX = "fuzzbox"
NET = "fuzznet"
MiB = 1 << 20


def _net(**kw: Any) -> dict[str, Any]:
    return {"Name": "fz", **kw}


def _ipam(*configs: dict[str, Any]) -> dict[str, Any]:
    return _net(IPAM={"Config": list(configs)})


def _ctr(**kw: Any) -> dict[str, Any]:
    return {"Image": IMAGE, "Cmd": ["true"], **kw}


def _hc(**kw: Any) -> dict[str, Any]:
    return _ctr(HostConfig=kw)


def _eps(cfg: Any) -> dict[str, Any]:
    return _ctr(HostConfig={"NetworkMode": NET}, NetworkingConfig={"EndpointsConfig": {NET: cfg}})


# (method, path, body): a dict/list is sent as JSON, bytes as they are, None without a body
CASES: list[tuple[str, str, Any]] = [
    # bad JSON and wrong top-level types
    ("POST", "/networks/create", b"{bad"),
    ("POST", "/networks/create", b""),
    ("POST", "/networks/create", b"[]"),
    ("POST", "/networks/create", b"null"),
    ("POST", "/networks/create", b"\xff\xfe\x00"),
    ("POST", "/networks/create", b'{"Name": "fz", "Name": '),
    ("POST", "/networks/create", b"[" * 200_000 + b"]" * 200_000),
    ("POST", "/containers/create", b'"just a string"'),
    ("POST", "/containers/create", b"{" * 100_000),
    # huge bodies (a bad image archive answers 200 with the error in the stream, as Docker:
    # tests/compat/test_dockerpy_parity.py)
    ("POST", "/networks/create", b"[" * (24 * MiB)),
    ("POST", "/networks/create", {"Name": "x" * (8 * MiB)}),
    ("POST", "/containers/create", _ctr(Env=["A=" + "x" * 1000] * 10_000, Image="nosuch:huge")),
    # network names (Docker 20.10 accepts "a/b", "..", "../../etc": so does tether)
    ("POST", "/networks/create", {"Name": 5}),
    ("POST", "/networks/create", {"Name": ""}),
    ("POST", "/networks/create", {"Name": "a\x00b"}),
    ("POST", "/networks/create", {"Name": "a\nb"}),
    ("POST", "/networks/create", {"Name": "tab\there"}),
    ("POST", "/networks/create", {"Name": "\x1b[31mred"}),
    ("POST", "/networks/create", {"Name": "bridge"}),
    ("POST", "/networks/create", {"Name": NET}),
    # network types and options
    ("POST", "/networks/create", _net(Driver=5)),
    ("POST", "/networks/create", _net(Driver="nosuch")),
    ("POST", "/networks/create", _net(Driver="../bridge")),
    ("POST", "/networks/create", _net(Driver="host")),
    ("POST", "/networks/create", _net(Internal="yes")),
    ("POST", "/networks/create", _net(Labels=["a"])),
    ("POST", "/networks/create", _net(Labels={"a": {"b": 1}})),
    ("POST", "/networks/create", _net(Options="x")),
    ("POST", "/networks/create", _net(IPAM="x")),
    ("POST", "/networks/create", _net(IPAM={"Driver": "nosuch"})),
    ("POST", "/networks/create", _net(IPAM={"Config": "x"})),
    ("POST", "/networks/create", _net(IPAM={"Config": [5]})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.bridge.name": "eth0"})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.bridge.name": "lo"})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.bridge.name": "../x"})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.bridge.name": "a:b"})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.bridge.name": "x" * 16})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.driver.mtu": "abc"})),
    ("POST", "/networks/create", _net(Options={"com.docker.network.driver.mtu": "1"})),
    ("POST", "/networks/create", _net(Driver="macvlan", Options={"parent": "nosuch0"})),
    ("POST", "/networks/create", _net(Driver="macvlan", Options={"parent": "../eth0"})),
    # CIDRs and addresses
    ("POST", "/networks/create", _ipam({"Subnet": "300.1.1.0/24"})),
    ("POST", "/networks/create", _ipam({"Subnet": "0.0.0.0/0"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/33"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/-1"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/32"})),
    ("POST", "/networks/create", _ipam({"Subnet": "fe80::/200"})),
    ("POST", "/networks/create", _ipam({"Subnet": "banana"})),
    ("POST", "/networks/create", _ipam({"Subnet": 5})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24", "Gateway": "10.8.0.1"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24", "Gateway": "300.0.0.1"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24", "IPRange": "10.8.0.0/24"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.0/33"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.0/16"})),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24"}, {"Subnet": "10.9.0.0/25"})),
    (
        "POST",
        "/networks/create",
        _ipam({"Subnet": "10.9.0.0/24", "AuxiliaryAddresses": {"a": "10.8.0.1"}}),
    ),
    ("POST", "/networks/create", _ipam({"Subnet": "10.9.0.0/24", "AuxiliaryAddresses": "x"})),
    # container names and bodies
    ("POST", "/containers/create?name=a/b", _ctr()),
    ("POST", "/containers/create?name=..", _ctr()),
    ("POST", "/containers/create?name=a%0Ab", _ctr()),
    ("POST", "/containers/create?name=a%00b", _ctr()),
    ("POST", f"/containers/create?name={BOX}", _ctr()),
    ("POST", "/containers/create", {"Image": 5}),
    ("POST", "/containers/create", {"Cmd": ["true"]}),
    ("POST", "/containers/create", _ctr(Image="nosuch:img")),
    ("POST", "/containers/create", _ctr(Image="../../etc/passwd")),
    ("POST", "/containers/create", _ctr(Cmd=[1])),
    ("POST", "/containers/create", _ctr(Env="A=1")),
    ("POST", "/containers/create", _ctr(Labels=["a"])),
    ("POST", "/containers/create", _ctr(ExposedPorts=["80/tcp"])),
    ("POST", "/containers/create", _ctr(Hostname=5)),
    ("POST", "/containers/create", _ctr(HostConfig=[])),
    ("POST", "/containers/create", _hc(NetworkMode="nosuch")),
    ("POST", "/containers/create", _hc(NetworkMode="container:nosuch")),
    ("POST", "/containers/create", _hc(NetworkMode=5)),
    ("POST", "/containers/create", _hc(PortBindings="x")),
    ("POST", "/containers/create", _hc(PortBindings={"80/tcp": "x"})),
    ("POST", "/containers/create", _hc(PortBindings={"80/tcp": [{"HostPort": 80}]})),
    ("POST", "/containers/create", _hc(PortBindings={"80/tcp": [{"HostPort": "99999"}]})),
    ("POST", "/containers/create", _hc(PortBindings={"abc": [{"HostPort": "1"}]})),
    ("POST", "/containers/create", _hc(PortBindings={"80/tcp": [{"HostIp": "300.0.0.1"}]})),
    ("POST", "/containers/create", _hc(RestartPolicy="always")),
    ("POST", "/containers/create", _hc(RestartPolicy={"Name": "sometimes"})),
    ("POST", "/containers/create", _hc(RestartPolicy={"Name": "always", "MaximumRetryCount": 3})),
    (
        "POST",
        "/containers/create",
        _hc(RestartPolicy={"Name": "on-failure", "MaximumRetryCount": -1}),
    ),
    ("POST", "/containers/create", _hc(Links=["nosuch:alias"])),
    ("POST", "/containers/create", _hc(Links="x")),
    ("POST", "/containers/create", _hc(Dns="8.8.8.8")),
    ("POST", "/containers/create", _ctr(NetworkingConfig="x")),
    ("POST", "/containers/create", _ctr(NetworkingConfig={"EndpointsConfig": "x"})),
    ("POST", "/containers/create", _eps({"IPAMConfig": {"IPv4Address": "300.0.0.1"}})),
    ("POST", "/containers/create", _eps({"IPAMConfig": {"IPv4Address": "10.99.0.1"}})),
    ("POST", "/containers/create", _eps({"IPAMConfig": {"IPv4Address": "10.66.0.1"}})),
    ("POST", "/containers/create", _eps({"IPAMConfig": {"IPv4Address": 5}})),
    ("POST", "/containers/create", _eps({"Aliases": "x"})),
    ("POST", "/containers/create", _eps({"Aliases": [1]})),
    # connect / disconnect
    ("POST", f"/networks/{NET}/connect", {"Container": 5}),
    ("POST", f"/networks/{NET}/connect", {"Container": ""}),
    ("POST", f"/networks/{NET}/connect", {"Container": "nosuch"}),
    ("POST", f"/networks/{NET}/connect", {"Container": BOX, "EndpointConfig": "x"}),
    ("POST", f"/networks/{NET}/connect", {"Container": BOX, "EndpointConfig": {"Aliases": "a"}}),
    (
        "POST",
        f"/networks/{NET}/connect",
        {"Container": BOX, "EndpointConfig": {"IPAMConfig": {"IPv4Address": "300.1.1.1"}}},
    ),
    (
        "POST",
        f"/networks/{NET}/connect",
        {"Container": BOX, "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.67.0.1"}}},
    ),
    ("POST", "/networks/nosuch/connect", {"Container": BOX}),
    ("POST", "/networks/none/connect", {"Container": BOX}),
    ("POST", f"/networks/{NET}/disconnect", {"Container": BOX}),
    ("POST", f"/networks/{NET}/disconnect", {"Container": 5}),
    ("DELETE", "/networks/bridge", None),
    ("DELETE", "/networks/host", None),
    ("DELETE", "/networks/a%00b", None),
    ("DELETE", "/networks/..%2F..", None),
    # paths and queries
    ("GET", "/containers/..%2F..%2Fetc%2Fpasswd/json", None),
    ("GET", "/containers/%00/json", None),
    ("GET", "/networks/%0A", None),
    ("GET", "/containers/json?filters=%7Bbad", None),
    ("GET", "/containers/json?filters=%5B%5D", None),
    ("GET", "/containers/json?filters=" + json.dumps({"nokey": ["x"]}), None),
    ("GET", "/networks?filters=" + json.dumps({"type": ["weird"]}), None),
    ("GET", "/networks?filters=" + json.dumps({"name": "x"}), None),
    ("POST", "/networks/prune?filters=%7Bbad", None),
    ("POST", "/containers/prune?filters=%7Bbad", None),
    ("POST", "/containers/prune?filters=" + json.dumps({"nokey": ["x"]}), None),
    ("GET", "/events?since=yesterday", None),
    ("GET", "/events?filters=%7Bbad", None),
    ("GET", f"/containers/{BOX}/logs?stdout=1&since=abc", None),
    ("GET", f"/containers/{BOX}/logs", None),
    ("POST", f"/containers/{BOX}/stop?t=abc", None),
    ("POST", f"/containers/{BOX}/resize?h=abc&w=1", None),
    ("POST", f"/containers/{BOX}/kill?signal=NOSUCH", None),
    ("POST", f"/containers/{BOX}/rename?name=a/b", None),
    ("POST", f"/containers/{BOX}/wait?condition=sometimes", None),
    ("POST", f"/containers/{BOX}/exec", {"Cmd": "ls"}),
    ("POST", f"/containers/{BOX}/exec", {"Cmd": []}),
    ("POST", "/exec/nosuch/start", {}),
    ("POST", "/images/create?fromImage=busybox", None),
    ("POST", "/images/create?fromSrc=http://198.18.0.1/x.tar", None),
    ("POST", "/images/create?fromSrc=-&repo=UPPER", b"not a tar"),
    ("POST", "/images/create?fromSrc=-&repo=a/../b", b"not a tar"),
    ("POST", "/images/create?fromSrc=-&repo=fz", b"not a tar"),
    ("POST", "/images/create?fromSrc=-&repo=fz", b"\x1f\x8b\x08\x00garbage"),
    ("POST", "/images/nosuch/tag?repo=x", None),
    ("POST", f"/images/{IMAGE}/tag?repo=UPPER", None),
    ("DELETE", "/images/nosuch", None),
]


def _send(client: Any, method: str, path: str, body: Any) -> Any:
    kw: dict[str, Any] = {"timeout": 60}
    if isinstance(body, bytes):
        kw["data"] = body
        kw["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kw["data"] = json.dumps(body)
        kw["headers"] = {"Content-Type": "application/json"}
    return client.api.request(method, BASE + path, **kw)


def _state(client: Any) -> tuple[list[str], list[str], list[str]]:
    nets = sorted(n["Name"] for n in client.api.networks())
    ctrs = sorted(c["Names"][0] for c in client.api.containers(all=True))
    images = sorted(t for i in client.api.images() for t in i.get("RepoTags") or [])
    return nets, ctrs, images


@pytest.fixture(scope="module")
def baseline(client: Any, host: LabHost) -> Any:
    """A user network, a running container on the default bridge; the state to keep."""
    client.api.create_network(
        NET,
        ipam={
            "Driver": "default",
            "Config": [{"Subnet": "10.66.0.0/24", "IPRange": "10.66.0.0/25"}],
        },
    )
    box = client.containers.run(IMAGE, ["sleep", "600"], name=BOX, detach=True)
    return {"state": _state(client), "pid": host.daemon_pid, "box": box.id}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    CASES,
    ids=[f"{i:03d}-{m}-{p[:40]}" for i, (m, p, _) in enumerate(CASES)],
)
def test_bad_request_is_a_4xx_with_a_message(
    client: Any, baseline: Any, method: str, path: str, body: Any
) -> None:
    r = _send(client, method, path, body)  # the conftest hook checks the error's shape
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    message = r.json()["message"]
    assert isinstance(message, str) and message.strip()
    assert "internal error" not in message


def test_nothing_was_created_and_the_daemon_lives(
    client: Any, baseline: Any, host: LabHost
) -> None:
    assert _state(client) == baseline["state"]
    assert host.daemon_pid == baseline["pid"]
    assert client.ping()
    box = client.containers.get(BOX)
    assert box.status == "running"
    assert box.exec_run(["true"]).exit_code == 0
    # the lab host's own interface survived the bridge-name cases
    from tests.integration.helpers import in_host

    assert in_host(host, "ip", "link", "show", "eth0").returncode == 0
    assert "tbr-" not in in_host(host, "ip", "-br", "link").stdout.replace(
        _bridge_of(client, NET), ""
    )


def _bridge_of(client: Any, name: str) -> str:
    return "tbr-" + client.api.inspect_network(name)["Id"][:11]
