"""The HTTP API itself: version negotiation, unknown routes, and every served route's JSON
answer against the v1.41 spec (raw requests through a checked docker-py session)."""

from __future__ import annotations

import json
import time
from typing import Any

import docker
import pytest
from tests.compat.conftest import IMAGE, checked_client
from tests.compat.schema import load_spec

from tether.lab.lab import LabHost

BASE = "http+docker://localhost"


def raw(client: Any, method: str, path: str, **kw: Any) -> Any:
    """One request on ``path`` exactly as given (no version prefix added); answer checked."""
    kw.setdefault("timeout", 30)
    return client.api.request(method, BASE + path, **kw)


@pytest.mark.parametrize("version", ["1.24", "1.30", "1.41", "auto"])
def test_clients_asking_supported_versions_work(host: LabHost, client: Any, version: str) -> None:
    c = checked_client(host, version=version)
    try:
        expected = "1.41" if version == "auto" else version
        assert c.api.api_version == expected
        assert c.version()["ApiVersion"] == "1.41"
        net = c.networks.create(f"v{version.replace('.', '')}")
        try:
            box = c.containers.run(IMAGE, ["sleep", "60"], detach=True, network=net.name)
            try:
                box.reload()
                assert box.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
                assert box.exec_run(["true"]).exit_code == 0
            finally:
                box.remove(force=True)
        finally:
            net.remove()
        # the request really went out under the asked version
        r = c.api.get(c.api._url("/networks"))
        assert r.url.endswith(f"/v{expected}/networks")
        assert r.status_code == 200
    finally:
        c.close()


def test_too_old_client_gets_dockers_400(client: Any) -> None:
    r = raw(client, "GET", "/v1.12/version")
    assert r.status_code == 400
    assert r.json() == {
        "message": "client version 1.12 is too old. Minimum supported API version is 1.24, "
        "please upgrade your client to a newer version"
    }
    r = raw(client, "GET", "/v1.23/networks")
    assert r.status_code == 400 and "too old" in r.json()["message"]


def test_too_new_client_gets_dockers_400_and_ping_tells_the_version(
    client: Any, host: LabHost
) -> None:
    r = raw(client, "GET", "/v1.50/version")
    assert r.status_code == 400
    assert r.json() == {
        "message": "client version 1.50 is too new. Maximum supported API version is 1.41"
    }
    # what a newer client (docker CLI 28, API 1.50) reads before falling back
    for method in ("GET", "HEAD"):
        r = raw(client, method, "/_ping")
        assert r.status_code == 200
        assert r.headers["Api-Version"] == "1.41"
        assert r.headers["OSType"] == "linux"
    assert raw(client, "GET", "/_ping").text == "OK"
    newer = docker.APIClient(base_url=host.docker_host, version="auto")
    assert newer.api_version == "1.41"  # docker-py negotiates from /version
    newer.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/v1.41/nope"),
        ("POST", "/session"),
        ("GET", "/plugins"),
        ("GET", "/containers/x/top"),
        ("GET", "/v1.41/containers/x/stats"),
        ("GET", "/../../etc/passwd"),
    ],
)
def test_unknown_routes_answer_404_with_a_message(client: Any, method: str, path: str) -> None:
    r = raw(client, method, path)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert isinstance(r.json()["message"], str) and r.json()["message"]


def test_wrong_method_is_a_4xx_with_a_message(client: Any) -> None:
    r = raw(client, "DELETE", "/version")
    assert 400 <= r.status_code < 500
    assert r.json()["message"]


def test_missing_objects_answer_404_with_dockers_texts(client: Any) -> None:
    cases = {
        "/containers/nosuch/json": "No such container: nosuch",
        "/networks/nosuch": "network nosuch not found",
        "/images/nosuch:1/json": "No such image: nosuch:1",
        "/exec/nosuch/json": "No such exec instance: nosuch",
    }
    for path, text in cases.items():
        r = raw(client, "GET", path)
        assert (r.status_code, r.json()) == (404, {"message": text}), path


def test_every_served_route_answers_per_spec(client: Any) -> None:
    """Drive each JSON route once in a realistic state; the hook checks each answer."""
    spec = load_spec()
    r = raw(client, "GET", "/version")
    spec.check("GET", "/version", r.status_code, r.json())  # explicit, besides the hook
    raw(client, "GET", "/info")
    raw(client, "GET", "/v1.41/images/json")
    raw(client, "GET", f"/images/{IMAGE}/json")
    r = raw(
        client,
        "POST",
        "/networks/create",
        json={
            "Name": "specnet",
            "IPAM": {
                "Config": [
                    {
                        "Subnet": "10.77.0.0/16",
                        "IPRange": "10.77.1.0/24",
                        "Gateway": "10.77.0.1",
                        "AuxiliaryAddresses": {"router": "10.77.0.2"},
                    }
                ]
            },
            "Labels": {"k": "v"},
            "Options": {"com.docker.network.bridge.enable_icc": "true"},
        },
    )
    assert r.status_code == 201, r.text
    net_id = r.json()["Id"]
    r = raw(
        client,
        "POST",
        "/containers/create?name=specbox",
        json={
            "Image": IMAGE,
            "Cmd": ["sh", "-c", "echo hi; sleep 60"],
            "Labels": {"a": "b"},
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]},
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                "NetworkMode": "specnet",
            },
            "NetworkingConfig": {
                "EndpointsConfig": {
                    "specnet": {"Aliases": ["spec"], "IPAMConfig": {"IPv4Address": "10.77.1.9"}}
                }
            },
        },
    )
    assert r.status_code == 201, r.text
    cid = r.json()["Id"]
    try:
        raw(client, "GET", f"/containers/{cid}/json")  # created, not running
        raw(client, "GET", "/containers/json?all=1")
        assert raw(client, "POST", f"/containers/{cid}/start").status_code == 204
        raw(client, "GET", f"/containers/{cid}/json")
        raw(client, "GET", "/containers/json")
        raw(client, "GET", "/containers/json?filters=" + json.dumps({"label": ["a=b"]}))
        raw(client, "GET", f"/networks/{net_id}")
        raw(client, "GET", "/networks")
        raw(client, "GET", "/networks?filters=" + json.dumps({"driver": {"bridge": True}}))
        r = raw(client, "POST", f"/containers/{cid}/exec", json={"Cmd": ["true"]})
        assert r.status_code == 201
        exec_id = r.json()["Id"]
        raw(client, "GET", f"/exec/{exec_id}/json")  # not started yet: ExitCode null
        raw(client, "POST", f"/exec/{exec_id}/start", json={"Detach": True})
        deadline = time.monotonic() + 10
        while raw(client, "GET", f"/exec/{exec_id}/json").json()["Running"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert raw(client, "GET", f"/exec/{exec_id}/json").json()["ExitCode"] == 0
        assert raw(client, "POST", f"/containers/{cid}/stop?t=1").status_code == 204
        r = raw(client, "POST", f"/containers/{cid}/wait")
        spec.check("POST", f"/containers/{cid}/wait", r.status_code, r.json())
        raw(client, "GET", f"/containers/{cid}/json")  # exited
        # an event stream, bounded by until; each line is an EventMessage
        r = raw(client, "GET", f"/events?since=0&until={int(time.time()) + 1}", timeout=10)
        events = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        assert any(e.get("Type") == "network" for e in events)
        for e in events:
            spec.check("GET", "/events", 200, e)
    finally:
        raw(client, "DELETE", f"/containers/{cid}?force=1")
        raw(client, "DELETE", f"/networks/{net_id}")
    r = raw(client, "POST", "/containers/prune")
    spec.check("POST", "/containers/prune", r.status_code, r.json())
    r = raw(client, "POST", "/networks/prune")
    spec.check("POST", "/networks/prune", r.status_code, r.json())


def test_swarm_routes_answer_as_a_node_outside_a_swarm(client: Any) -> None:
    """docker-py's network tests call ``leave_swarm`` in tearDown and accept only Docker's 503."""
    r = raw(client, "POST", "/v1.41/swarm/leave?force=1")
    assert (r.status_code, r.json()) == (503, {"message": "This node is not part of a swarm"})
    for path in ("/swarm", "/services", "/nodes", "/tasks", "/secrets", "/configs"):
        r = raw(client, "GET", "/v1.41" + path)
        assert r.status_code == 503, path
        assert r.json()["message"].startswith("This node is not a swarm manager."), path
    # docker-py's leave_swarm(force=True), called by its tests' tearDown, takes exactly this 503
    assert client.api.leave_swarm(force=True) is True
    with pytest.raises(docker.errors.APIError) as info:
        client.api.leave_swarm()
    assert info.value.status_code == 503
    assert "not part of a swarm" in str(info.value.explanation)


def test_api_socket_listens_with_dockers_backlog(host: LabHost) -> None:
    """Backlog 4096 as dockerd's (128 refused ~130 of 300 parallel `docker ps`)."""
    out = host.run(["ss", "-xlnH"], capture_output=True, text=True, check=True).stdout
    rows = [ln.split() for ln in out.splitlines() if host.socket in ln]
    assert rows, out
    # ss -xl: Netid State Recv-Q Send-Q(backlog) Local ...
    assert int(rows[0][3]) == 4096


def test_attach_logs_without_stream_returns(client: Any) -> None:
    """``attach?logs=1&stream=0`` answers the log replay and ends (it stayed attached to a
    running container: docker-py's attach tests hung); stdout/stderr pick the streams."""
    box = client.containers.run(
        IMAGE, ["sh", "-c", "echo out; echo err >&2; sleep 60"], detach=True
    )
    try:
        deadline = time.monotonic() + 10
        while b"err" not in box.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        path = f"/v1.41/containers/{box.id}/attach?logs=1&stream=0"
        r = raw(client, "POST", path + "&stdout=1&stderr=1", timeout=5)
        assert r.status_code == 200
        assert (
            r.content
            == b"\x01\x00\x00\x00\x00\x00\x00\x04out\n\x02\x00\x00\x00\x00\x00\x00\x04err\n"
        )
        r = raw(client, "POST", path + "&stderr=1", timeout=5)
        assert r.content == b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    finally:
        box.remove(force=True)
