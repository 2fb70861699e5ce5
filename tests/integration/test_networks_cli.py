"""Networks through the real docker CLI against a tether daemon in a lab host.

One lab per module (``lab1``/``host1``): the tests use distinct names and subnets; the ones that
restart the daemon (crash, reconcile) come last. Reference texts:
``shared/reference/docker-20.10-transcript.txt``.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from typing import Any

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import docker, docker_fails, docker_ok, in_host

pytestmark = pytest.mark.lab

HEX64 = re.compile(r"^[0-9a-f]{64}$")


ok = docker_ok


def fails(host: LabHost, *args: str, code: int = 1) -> str:
    return docker_fails(host, *args, code=code)


def inspect(host: LabHost, name: str) -> dict[str, Any]:
    data = json.loads(ok(host, "network", "inspect", name))
    assert isinstance(data, list) and len(data) == 1
    out: dict[str, Any] = data[0]
    return out


def api(host: LabHost, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One raw HTTP request on the host's API socket (status, decoded JSON or text)."""

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(host.socket)
            self.sock = s

    conn = Conn("localhost", timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def links(host: LabHost) -> list[str]:
    out = in_host(host, "ip", "-br", "link", check=True).stdout
    return [line.split()[0].split("@")[0] for line in out.splitlines() if line.strip()]


def addr4(host: LabHost, ifname: str) -> list[str]:
    r = in_host(host, "ip", "-4", "-o", "addr", "show", "dev", ifname)
    return re.findall(r"inet (\S+)", r.stdout)


def bridge_of(net: dict[str, Any]) -> str:
    name = net["Options"].get("com.docker.network.bridge.name")
    if name:
        return str(name)
    # tether's naming (drivers/bridge.py): the default bridge is tether0, others tbr-<id[:11]>
    return "tether0" if net["Name"] == "bridge" else "tbr-" + net["Id"][:11]


# ---------------------------------------------------------------- listing, defaults


def test_default_pools_in_order(host1: LabHost) -> None:
    """Runs first in a fresh lab: bridge has 172.17, new networks take 172.18, 172.19..."""
    assert inspect(host1, "bridge")["IPAM"]["Config"][0]["Subnet"] == "172.17.0.0/16"
    ok(host1, "network", "create", "pool-a")
    ok(host1, "network", "create", "pool-b")
    try:
        a, b = inspect(host1, "pool-a"), inspect(host1, "pool-b")
        assert a["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
        assert b["IPAM"]["Config"] == [{"Subnet": "172.19.0.0/16", "Gateway": "172.19.0.1"}]
        # the docker CLI sends IPAM.Options {} (no subnet given): Docker shows it back as {}
        assert a["IPAM"]["Options"] == {}
    finally:
        ok(host1, "network", "rm", "pool-a", "pool-b")
    # released: the next one reuses 172.18
    ok(host1, "network", "create", "pool-c")
    try:
        assert inspect(host1, "pool-c")["IPAM"]["Config"][0]["Subnet"] == "172.18.0.0/16"
    finally:
        ok(host1, "network", "rm", "pool-c")


def test_ls_predefined_three(host1: LabHost) -> None:
    lines = ok(host1, "network", "ls").splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    rows = {tuple(line.split()[1:]) for line in lines[1:]}
    for row in [
        ("bridge", "bridge", "local"),
        ("host", "host", "local"),
        ("none", "null", "local"),
    ]:
        assert row in rows
    for line in lines[1:]:
        assert re.fullmatch(r"[0-9a-f]{12}", line.split()[0])
    ids = ok(host1, "network", "ls", "-q", "--no-trunc").split()
    assert all(HEX64.match(i) for i in ids) and len(ids) == len(lines) - 1


def test_create_seed_network_and_duplicate(host1: LabHost) -> None:
    nid = ok(
        host1,
        *("network", "create", "-d", "bridge", "--subnet", "172.28.0.0/16"),
        *("--gateway", "172.28.0.254", "jasonyin2020"),
    ).strip()
    assert HEX64.match(nid)
    names = ok(host1, "network", "ls", "--format", "{{.Name}}").split()
    assert "jasonyin2020" in names
    err = fails(
        host1,
        *("network", "create", "-d", "bridge", "--subnet", "172.28.0.0/16"),
        *("--gateway", "172.28.0.254", "jasonyin2020"),
    )
    assert (
        err.strip() == "Error response from daemon: network with name jasonyin2020 already exists"
    )
    err = fails(host1, "network", "create", "-d", "bridge", "--subnet", "172.28.0.0/24", "other")
    assert (
        err.strip()
        == "Error response from daemon: Pool overlaps with other one on this address space"
    )
    assert "other" not in ok(host1, "network", "ls", "--format", "{{.Name}}").split()


def test_inspect_shape_ip_range_seed(host1: LabHost) -> None:
    ok(
        host1,
        *("network", "create", "-d", "bridge", "--gateway", "172.26.1.254"),
        *("--subnet", "172.26.1.0/24", "--ip-range", "172.26.1.100/28", "oldboyedu2021"),
    )
    net = inspect(host1, "oldboyedu2021")
    assert list(net) == [
        "Name",
        "Id",
        "Created",
        "Scope",
        "Driver",
        "EnableIPv6",
        "IPAM",
        "Internal",
        "Attachable",
        "Ingress",
        "ConfigFrom",
        "ConfigOnly",
        "Containers",
        "Options",
        "Labels",
    ]
    assert HEX64.match(net["Id"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", net["Created"])
    assert net["Scope"] == "local" and net["Driver"] == "bridge"
    assert net["EnableIPv6"] is False and net["Internal"] is False
    assert net["Attachable"] is False and net["Ingress"] is False and net["ConfigOnly"] is False
    assert net["ConfigFrom"] == {"Network": ""}
    assert net["IPAM"] == {
        "Driver": "default",
        "Options": {},
        "Config": [
            {"Subnet": "172.26.1.0/24", "IPRange": "172.26.1.100/28", "Gateway": "172.26.1.254"}
        ],
    }
    assert net["Containers"] == {} and net["Options"] == {} and net["Labels"] == {}


def test_create_with_all_options(host1: LabHost) -> None:
    ok(
        host1,
        *("network", "create", "--subnet", "10.55.0.0/24", "--gateway", "10.55.0.1"),
        *("--ip-range", "10.55.0.128/25", "--aux-address", "printer=10.55.0.7"),
        *("--label", "team=blue", "--label", "flag", "--internal"),
        *(
            "-o",
            "com.docker.network.bridge.name=brfull",
            "-o",
            "com.docker.network.driver.mtu=1400",
        ),
        "full",
    )
    try:
        net = inspect(host1, "full")
        assert net["Internal"] is True
        assert net["IPAM"]["Config"] == [
            {
                "Subnet": "10.55.0.0/24",
                "IPRange": "10.55.0.128/25",
                "Gateway": "10.55.0.1",
                "AuxiliaryAddresses": {"printer": "10.55.0.7"},
            }
        ]
        assert net["Labels"] == {"team": "blue", "flag": ""}
        assert net["Options"] == {
            "com.docker.network.bridge.name": "brfull",
            "com.docker.network.driver.mtu": "1400",
        }
        r = in_host(host1, "ip", "-d", "link", "show", "dev", "brfull", check=True)
        assert "mtu 1400" in r.stdout and "bridge" in r.stdout
        assert addr4(host1, "brfull") == ["10.55.0.1/24"]
    finally:
        ok(host1, "network", "rm", "full")
    assert "brfull" not in links(host1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["bad", "--subnet", "300.1.1.0/24"],
            "Error response from daemon: Invalid subnet 300.1.1.0/24 : "
            "invalid CIDR address: 300.1.1.0/24",
        ),
        (
            ["bad2", "--subnet", "10.1.1.0/24", "--gateway", "10.2.2.1"],
            "no matching subnet for gateway 10.2.2.1",
        ),
        (
            ["bad3", "--subnet", "10.1.1.0/24", "--ip-range", "10.9.9.0/28"],
            "no matching subnet for range 10.9.9.0/28",
        ),
        (
            ["-d", "host", "h2"],
            'Error response from daemon: only one instance of "host" network is allowed',
        ),
    ],
)
def test_create_errors(host1: LabHost, args: list[str], message: str) -> None:
    before = ok(host1, "network", "ls", "-q")
    err = fails(host1, "network", "create", *args)
    assert message in err
    assert ok(host1, "network", "ls", "-q") == before


@pytest.mark.parametrize("name", ["  ", "\t", "a\nb", "\x1b[31mred"])  # empty; control chars
def test_bad_names_rejected_with_400(host1: LabHost, name: str) -> None:
    status, body = api(host1, "POST", "/v1.41/networks/create", {"Name": name, "Driver": "bridge"})
    assert status == 400, (status, body)
    assert isinstance(body, dict) and body.get("message")
    err = fails(host1, "network", "create", name)
    assert err.startswith("Error response from daemon: ")
    assert name not in ok(host1, "network", "ls", "--format", "{{.Name}}").splitlines()


def test_predefined_cannot_be_removed(host1: LabHost) -> None:
    r = docker(host1, "network", "rm", "bridge")
    assert r.returncode == 1
    assert (
        "Error response from daemon: bridge is a pre-defined network and cannot be removed"
        in r.stderr
    )
    for name in ("host", "none"):
        r = docker(host1, "network", "rm", name)
        assert r.returncode == 1
        assert f"{name} is a pre-defined network and cannot be removed" in r.stderr
    names = ok(host1, "network", "ls", "--format", "{{.Name}}").split()
    assert {"bridge", "host", "none"} <= set(names)


# ---------------------------------------------------------------- ls filters and formats


def test_ls_filters_quiet_and_format(host1: LabHost) -> None:
    ok(host1, "network", "create", "--label", "env=test", "--subnet", "10.60.0.0/24", "flt-one")
    two = ok(host1, "network", "create", "--subnet", "10.61.0.0/24", "flt-two").strip()
    try:
        out = ok(host1, "network", "ls", "--filter", "name=flt-", "--format", "{{.Name}}")
        assert sorted(out.split()) == ["flt-one", "flt-two"]
        out = ok(host1, "network", "ls", "--filter", "id=" + two[:10], "--format", "{{.Name}}")
        assert out.split() == ["flt-two"]
        out = ok(host1, "network", "ls", "--filter", "driver=null", "--format", "{{.Name}}")
        assert out.split() == ["none"]
        out = ok(host1, "network", "ls", "--filter", "label=env=test", "--format", "{{.Name}}")
        assert out.split() == ["flt-one"]
        out = ok(host1, "network", "ls", "--filter", "label=env", "--format", "{{.Name}}")
        assert out.split() == ["flt-one"]
        out = ok(host1, "network", "ls", "--filter", "type=builtin", "--format", "{{.Name}}")
        assert sorted(out.split()) == ["bridge", "host", "none"]
        out = ok(host1, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
        assert {"flt-one", "flt-two"} <= set(out.split())
        assert not {"bridge", "host", "none"} & set(out.split())
        quiet = ok(host1, "network", "ls", "-q", "--filter", "name=flt-two").split()
        assert quiet == [two[:12]]
        out = ok(
            host1,
            *("network", "ls", "--filter", "name=flt-one"),
            *("--format", "{{.ID}}|{{.Name}}|{{.Driver}}|{{.Scope}}|{{.Labels}}"),
        )
        fields = out.strip().split("|")
        assert fields[1:] == ["flt-one", "bridge", "local", "env=test"]
        assert re.fullmatch(r"[0-9a-f]{12}", fields[0])
        js = json.loads(
            ok(host1, "network", "ls", "--filter", "name=flt-two", "--format", "{{json .}}")
        )
        assert js["Name"] == "flt-two" and js["Driver"] == "bridge"
    finally:
        ok(host1, "network", "rm", "flt-one", "flt-two")


def test_rm_by_id_prefix_and_prune(host1: LabHost) -> None:
    nid = ok(host1, "network", "create", "--subnet", "10.62.0.0/24", "byprefix").strip()
    net = inspect(host1, "byprefix")
    br = bridge_of(net)
    assert br in links(host1)
    assert addr4(host1, br) == ["10.62.0.1/24"]
    assert ok(host1, "network", "rm", nid[:8]).strip() == nid[:8]
    assert "byprefix" not in ok(host1, "network", "ls", "--format", "{{.Name}}").split()
    assert br not in links(host1)
    ok(host1, "network", "create", "--subnet", "10.63.0.0/24", "prune-me")
    out = ok(host1, "network", "prune", "-f")
    assert out.startswith("Deleted Networks:")
    assert "prune-me" in out.split()
    names = ok(host1, "network", "ls", "--format", "{{.Name}}").split()
    assert "prune-me" not in names
    assert {"bridge", "host", "none"} <= set(names)


def test_nft_table_in_host_netns(host1: LabHost) -> None:
    r = in_host(host1, "nft", "list", "table", "ip", "tether")
    assert r.returncode == 0, r.stderr
    assert "table ip tether" in r.stdout
    assert "masquerade" in r.stdout


# ---------------------------------------------------------------- active endpoints


@pytest.fixture(scope="module")
def alpine(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> str:
    from .imagefix import build_busybox_tar, import_alpine

    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    return "alpine:latest"


def test_rm_with_active_endpoints(host1: LabHost, alpine: str) -> None:
    nid = ok(host1, "network", "create", "--subnet", "10.64.0.0/24", "busy").strip()
    ok(host1, "run", "-d", "--name", "busy-c", "--network", "busy", alpine, "sleep", "300")
    try:
        r = docker(host1, "network", "rm", "busy")
        assert r.returncode == 1
        assert r.stderr.splitlines()[0] == (
            "Error response from daemon: error while removing network: network busy id "
            f"{nid} has active endpoints"
        )
        assert "exit status 1" in r.stderr
        assert "busy" in ok(host1, "network", "ls", "--format", "{{.Name}}").split()
    finally:
        ok(host1, "rm", "-f", "busy-c")
    ok(host1, "network", "rm", "busy")


# ---------------------------------------------------------------- crash and reconcile (last)


def test_crash_kill9_keeps_everything(lab1: Lab, host1: LabHost) -> None:
    ok(host1, "network", "create", "--subnet", "10.70.0.0/24", "crash-a")
    ok(host1, "network", "create", "--subnet", "10.71.0.0/24", "--internal", "crash-b")
    before = ok(host1, "network", "ls", "--no-trunc").splitlines()
    nets = [inspect(host1, n) for n in ("crash-a", "crash-b", "bridge")]
    lab1.restart_daemon("host1", kill9=True)
    after = ok(host1, "network", "ls", "--no-trunc").splitlines()
    assert sorted(after) == sorted(before)
    for net in nets:
        again = inspect(host1, net["Name"])
        assert again["Id"] == net["Id"] and again["IPAM"] == net["IPAM"]
        br = bridge_of(net)
        assert links(host1).count(br) == 1
        gw = net["IPAM"]["Config"][0]["Gateway"]
        prefix = net["IPAM"]["Config"][0]["Subnet"].split("/")[1]
        assert addr4(host1, br) == [f"{gw}/{prefix}"]
    err = fails(host1, "network", "create", "--subnet", "10.70.0.128/25", "crash-overlap")
    assert "Pool overlaps with other one on this address space" in err
    # a second restart (clean this time) changes nothing either
    lab1.restart_daemon("host1")
    assert sorted(ok(host1, "network", "ls", "--no-trunc").splitlines()) == sorted(before)
    assert links(host1).count(bridge_of(nets[0])) == 1
    table = in_host(host1, "nft", "list", "table", "ip", "tether", check=True).stdout
    assert table.count(f'"{bridge_of(nets[0])}" . "{bridge_of(nets[0])}"') == 1
    ok(host1, "network", "rm", "crash-a", "crash-b")


def test_reconcile_recreates_deleted_bridge(lab1: Lab, host1: LabHost) -> None:
    ok(host1, "network", "create", "--subnet", "10.72.0.0/24", "--gateway", "10.72.0.9", "recon")
    try:
        br = bridge_of(inspect(host1, "recon"))
        assert br in links(host1)
        in_host(host1, "ip", "link", "del", br, check=True)
        assert br not in links(host1)
        lab1.restart_daemon("host1")
        assert links(host1).count(br) == 1
        assert addr4(host1, br) == ["10.72.0.9/24"]
    finally:
        ok(host1, "network", "rm", "recon")
    assert br not in links(host1)
