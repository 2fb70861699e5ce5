"""`tether network ...` against a fake daemon: request bodies, tables, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cli_fakedaemon import FakeDaemon
from click.testing import CliRunner, Result

from tether.cli.main import cli

NETS = [
    {"Name": "none", "Id": "cc1e4c32f1eb" + "0" * 52, "Driver": "null", "Scope": "local"},
    {"Name": "bridge", "Id": "e1f08e9ec71f" + "1" * 52, "Driver": "bridge", "Scope": "local"},
    {"Name": "jasonyin2020", "Id": "1b104d80725c" + "2" * 52, "Driver": "bridge", "Scope": "local"},
    {"Name": "host", "Id": "3e4ca894f5e9" + "3" * 52, "Driver": "host", "Scope": "local"},
]

# From reference/docker-20.10-transcript.txt
TRANSCRIPT_LS = """\
NETWORK ID     NAME           DRIVER    SCOPE
e1f08e9ec71f   bridge         bridge    local
3e4ca894f5e9   host           host      local
1b104d80725c   jasonyin2020   bridge    local
cc1e4c32f1eb   none           null      local
"""


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    d = FakeDaemon()
    yield d
    d.close()


def run(d: FakeDaemon, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-H", d.host, *args], input=stdin)


def test_ls_table_matches_docker(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/networks", (200, NETS))
    r = run(daemon, "network", "ls")
    assert r.exit_code == 0
    assert r.stdout == TRANSCRIPT_LS


def test_ls_quiet_notrunc_and_filter(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/networks", (200, NETS))
    r = run(daemon, "network", "ls", "-q", "--no-trunc", "-f", "driver=bridge")
    assert r.stdout.splitlines() == [NETS[1]["Id"], NETS[3]["Id"], NETS[2]["Id"], NETS[0]["Id"]]
    req = daemon.find("GET", "/networks")[0]
    assert json.loads(req.q("filters") or "") == {"driver": {"bridge": True}}


def test_ls_format_table_and_plain(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/networks", (200, NETS[:2]))
    r = run(daemon, "network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}")
    assert r.stdout == "NAME      DRIVER\nbridge    bridge\nnone      null\n"
    r = run(daemon, "network", "ls", "--format", "{{.ID}}: {{.Name}} {{.IPv6}}")
    assert r.stdout == "e1f08e9ec71f: bridge false\ncc1e4c32f1eb: none false\n"


def test_ls_natural_sort(daemon: FakeDaemon) -> None:
    nets = [
        {"Name": n, "Id": "a" * 64, "Driver": "bridge", "Scope": "local"}
        for n in ("net10", "net9", "net1")
    ]
    daemon.route("GET", "/networks", (200, nets))
    r = run(daemon, "network", "ls", "--format", "{{.Name}}")
    assert r.stdout == "net1\nnet9\nnet10\n"


def test_create_body(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/networks/create", (201, {"Id": "4737a3da" * 8, "Warning": ""}))
    r = run(
        daemon,
        "network",
        "create",
        "-d",
        "bridge",
        "--gateway",
        "172.26.1.254",
        "--subnet",
        "172.26.1.0/24",
        "--ip-range",
        "172.26.1.100/28",
        "--aux-address",
        "host1=172.26.1.5",
        "--label",
        "a=b",
        "-o",
        "mtu=1400",
        "--internal",
        "--attachable",
        "oldboyedu2021",
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == "4737a3da" * 8 + "\n"
    body = daemon.find("POST", "/networks/create")[0].body
    assert body == {
        "Name": "oldboyedu2021",
        "CheckDuplicate": True,
        "Driver": "bridge",
        "Scope": "",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {
                    "Subnet": "172.26.1.0/24",
                    "IPRange": "172.26.1.100/28",
                    "Gateway": "172.26.1.254",
                    "AuxiliaryAddresses": {"host1": "172.26.1.5"},
                }
            ],
        },
        "Internal": True,
        "Attachable": True,
        "Ingress": False,
        "ConfigOnly": False,
        "Options": {"mtu": "1400"},
        "Labels": {"a": "b"},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--subnet", "10.1.1.0/24", "--gateway", "10.2.2.1"],
            "no matching subnet for gateway 10.2.2.1",
        ),
        (
            ["--subnet", "10.1.1.0/24", "--ip-range", "10.9.9.0/28"],
            "no matching subnet for range 10.9.9.0/28",
        ),
        (["--gateway", "10.2.2.1"], "every ip-range or gateway must have a corresponding subnet"),
        (
            ["--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24"],
            "multiple overlapping subnet configuration is not supported",
        ),
    ],
)
def test_create_client_side_validation(daemon: FakeDaemon, args: list[str], message: str) -> None:
    r = run(daemon, "network", "create", "bad", *args)
    assert r.exit_code == 1
    assert r.stderr == message + "\n"
    assert daemon.requests == []


def test_create_daemon_error(daemon: FakeDaemon) -> None:
    daemon.route(
        "POST",
        "/networks/create",
        (409, {"message": "network with name jasonyin2020 already exists"}),
    )
    r = run(daemon, "network", "create", "jasonyin2020")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr == "Error response from daemon: network with name jasonyin2020 already exists\n"


def test_rm_reports_each_error_then_exit_status(daemon: FakeDaemon) -> None:
    msg = "error while removing network: network x id 1 has active endpoints"
    daemon.route("DELETE", "/networks/busy", (403, {"message": msg}))
    daemon.route("DELETE", "/networks/ok", (204, None))
    r = run(daemon, "network", "rm", "busy", "ok")
    assert r.exit_code == 1
    assert r.stdout == "ok\n"
    assert r.stderr == f"Error response from daemon: {msg}\nexit status 1\n"


def test_rm_force_ignores_missing(daemon: FakeDaemon) -> None:
    daemon.route("DELETE", "/networks/gone", (404, {"message": "network gone not found"}))
    r = run(daemon, "network", "rm", "-f", "gone")
    assert r.exit_code == 0
    assert r.stdout == ""


def test_connect_and_disconnect_bodies(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/networks/n1/connect", (200, None))
    daemon.route("POST", "/networks/n1/disconnect", (200, None))
    r = run(
        daemon,
        "network",
        "connect",
        "--ip",
        "10.0.0.5",
        "--alias",
        "a,b",
        "--alias",
        "c",
        "n1",
        "r1",
    )
    assert r.exit_code == 0, r.output
    assert daemon.find("POST", "/networks/n1/connect")[0].body == {
        "Container": "r1",
        "EndpointConfig": {
            "IPAMConfig": {"IPv4Address": "10.0.0.5"},
            "Links": None,
            "Aliases": ["a", "b", "c"],
            "DriverOpts": None,
        },
    }
    r = run(daemon, "network", "disconnect", "-f", "n1", "r1")
    assert r.exit_code == 0
    assert daemon.find("POST", "/networks/n1/disconnect")[0].body == {
        "Container": "r1",
        "Force": True,
    }


def test_connect_error(daemon: FakeDaemon) -> None:
    msg = "endpoint with name r1 already exists in network jasonyin2020"
    daemon.route("POST", "/networks/jasonyin2020/connect", (403, {"message": msg}))
    r = run(daemon, "network", "connect", "jasonyin2020", "r1")
    assert (r.exit_code, r.stderr) == (1, f"Error response from daemon: {msg}\n")


def test_prune(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/networks/prune", (200, {"NetworksDeleted": ["bad name!"]}))
    r = run(daemon, "network", "prune", "-f")
    assert r.stdout == "Deleted Networks:\nbad name!\n\n"
    r = run(daemon, "network", "prune", stdin="n\n")
    assert "Are you sure you want to continue? [y/N] " in r.stdout
    assert len(daemon.find("POST", "/networks/prune")) == 1


def test_inspect_json_and_format(daemon: FakeDaemon) -> None:
    net = {
        "Name": "n1",
        "Id": "ab" * 32,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.0.0.0/24"}]},
        "Options": {},
        "Labels": {},
    }
    daemon.route("GET", "/networks/n1", (200, net))
    daemon.route("GET", "/networks/nope", (404, {"message": "network nope not found"}))
    r = run(daemon, "network", "inspect", "n1")
    assert r.exit_code == 0
    assert r.stdout == json.dumps([net], indent=4) + "\n"
    assert '        "IPAM": {\n            "Driver": "default",\n' in r.stdout
    r = run(daemon, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "n1")
    assert r.stdout == "10.0.0.0/24\n"
    r = run(daemon, "network", "inspect", "nope")
    assert (r.exit_code, r.stdout, r.stderr) == (
        1,
        "[]\n",
        "Error response from daemon: network nope not found\n",
    )
