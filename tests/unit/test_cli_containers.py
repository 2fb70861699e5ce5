"""Container verbs against a fake daemon: create bodies, attach/exec streams, errors, ps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_fakedaemon import FakeDaemon, Hijack, Request, frame
from click.testing import CliRunner, Result

from tether.cli.containers import displayable_ports, format_containers
from tether.cli.main import cli
from tether.cli.runopts import PortMapping, parse_port_spec, parse_restart
from tether.cli.util import UsageFailure, human_duration

CID = "511bdd7e596023f6d94be53496b7417d96e14e15b2c2265012ff53fd7ff3d5a8"
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    d = FakeDaemon()
    d.route("POST", "/containers/create", (201, {"Id": CID, "Warnings": []}))
    d.route("POST", f"/containers/{CID}/start", (204, None))
    yield d
    d.close()


def run(d: FakeDaemon, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-H", d.host, *args], input=stdin)


def test_run_detached_body(daemon: FakeDaemon) -> None:
    r = run(
        daemon,
        "run",
        "-itd",
        "--name",
        "web",
        "--network",
        "n",
        "--ip",
        "1.2.3.4",
        "-p",
        "10.0.0.1:8500:8500/tcp",
        "-p",
        "8080:80",
        "-p",
        "53/udp",
        "--link",
        "db:mysql",
        "--restart",
        "on-failure:3",
        "-e",
        "A=1",
        "--env",
        "B=2",
        "-h",
        "box",
        "-w",
        "/srv",
        "--network-alias",
        "www",
        "--expose",
        "9000",
        "--dns",
        "9.9.9.9",
        "-l",
        "k=v",
        "--entrypoint",
        "/bin/sh",
        "alpine",
        "-c",
        "echo hi",
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == CID + "\n"
    req = daemon.find("POST", "/containers/create")[0]
    assert req.q("name") == "web"
    b = req.body
    assert b["Image"] == "alpine"
    assert b["Cmd"] == ["-c", "echo hi"]
    assert b["Entrypoint"] == ["/bin/sh"]
    assert (b["Tty"], b["OpenStdin"], b["StdinOnce"]) == (True, True, False)
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, False, False)
    assert b["Env"] == ["A=1", "B=2"]
    assert (b["Hostname"], b["WorkingDir"]) == ("box", "/srv")
    assert b["Labels"] == {"k": "v"}
    assert b["ExposedPorts"] == {"8500/tcp": {}, "80/tcp": {}, "53/udp": {}, "9000/tcp": {}}
    hc = b["HostConfig"]
    assert hc["NetworkMode"] == "n"
    assert hc["PortBindings"] == {
        "8500/tcp": [{"HostIp": "10.0.0.1", "HostPort": "8500"}],
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
    }
    assert hc["Links"] == ["db:mysql"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["AutoRemove"] is False
    assert hc["Dns"] == ["9.9.9.9"]
    assert hc["PublishAllPorts"] is False
    assert b["NetworkingConfig"] == {
        "EndpointsConfig": {
            "n": {
                "IPAMConfig": {"IPv4Address": "1.2.3.4"},
                "Links": ["db:mysql"],
                "Aliases": ["www"],
            }
        }
    }
    assert len(daemon.find("POST", f"/containers/{CID}/start")) == 1


def test_run_defaults_and_rm(daemon: FakeDaemon) -> None:
    r = run(daemon, "create", "--rm", "-P", "alpine")
    assert r.exit_code == 0, r.output
    b = daemon.find("POST", "/containers/create")[0].body
    assert b["Cmd"] is None and b["Entrypoint"] is None
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, True, True)
    assert b["HostConfig"]["AutoRemove"] is True
    assert b["HostConfig"]["PublishAllPorts"] is True
    assert b["HostConfig"]["NetworkMode"] == "default"
    assert b["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert b["NetworkingConfig"] == {"EndpointsConfig": {}}


def test_options_after_image_belong_to_command(daemon: FakeDaemon) -> None:
    r = run(daemon, "run", "-d", "alpine", "ls", "-l", "--name", "x")
    assert r.exit_code == 0, r.output
    req = daemon.find("POST", "/containers/create")[0]
    assert req.body["Cmd"] == ["ls", "-l", "--name", "x"]
    assert req.q("name") is None


def test_run_error_shape_and_exit_125(daemon: FakeDaemon) -> None:
    msg = (
        'Conflict. The container name "/web" is already in use by container "7f9d". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    daemon.route("POST", "/containers/create", (409, {"message": msg}))
    r = run(daemon, "run", "-itd", "--name", "web", "alpine")
    assert r.exit_code == 125
    assert r.stdout == ""
    assert r.stderr == (
        f"tether: Error response from daemon: {msg}\n\n"
        "Run 'tether run --help' for more information\n"
    )


def test_run_start_error_after_id(daemon: FakeDaemon) -> None:
    daemon.route("POST", f"/containers/{CID}/start", (500, {"message": "Address already in use"}))
    r = run(daemon, "run", "-d", "alpine")
    assert r.exit_code == 125
    assert r.stdout == CID + "\n"
    assert r.stderr.startswith("tether: Error response from daemon: Address already in use\n\n")
    daemon.route(
        "POST",
        f"/containers/{CID}/start",
        (500, {"message": 'exec: "true": executable file not found in $PATH: unknown'}),
    )
    assert run(daemon, "run", "-d", "alpine", "true").exit_code == 127


def test_run_warnings_printed(daemon: FakeDaemon) -> None:
    daemon.route(
        "POST",
        "/containers/create",
        (
            201,
            {"Id": CID, "Warnings": ["Published ports are discarded when using host network mode"]},
        ),
    )
    r = run(daemon, "run", "-d", "--network", "host", "-p", "9999:80", "alpine")
    assert r.stderr == "WARNING: Published ports are discarded when using host network mode\n"


def test_bad_flag_values_exit_125(daemon: FakeDaemon) -> None:
    r = run(daemon, "run", "-p", "1.2.3:80:80", "alpine")
    assert r.exit_code == 125
    assert "invalid IP address: 1.2.3" in r.stderr
    r = run(daemon, "run", "--restart", "sometimes", "alpine")
    assert r.exit_code == 125
    assert daemon.requests == []


def test_run_attached_demuxes_and_exits_with_code(daemon: FakeDaemon) -> None:
    out = [frame(1, b"hello\n"), frame(2, b"oops\n"), frame(1, b"bye\n")]
    attach = Hijack(out)
    daemon.route("POST", f"/containers/{CID}/attach", lambda _r: attach)
    daemon.route("POST", f"/containers/{CID}/wait", (200, {"StatusCode": 3, "Error": None}))
    r = run(daemon, "run", "--rm", "alpine", "sh", "-c", "x")
    assert r.exit_code == 3, r.output
    assert r.stdout == "hello\nbye\n"
    assert r.stderr == "oops\n"
    a = daemon.find("POST", f"/containers/{CID}/attach")[0]
    assert a.headers["upgrade"] == "tcp" and a.headers["connection"] == "Upgrade"
    assert (a.q("stream"), a.q("stdout"), a.q("stderr"), a.q("stdin")) == ("1", "1", "1", None)
    assert daemon.find("POST", f"/containers/{CID}/wait")[0].q("condition") == "removed"
    # attach happens before start, as docker does
    order = [r.path for r in daemon.requests]
    assert order.index(f"/containers/{CID}/attach") < order.index(f"/containers/{CID}/start")


def _subprocess(
    daemon: FakeDaemon, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=SRC, TETHER_HOST=daemon.host)
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_run_interactive_forwards_stdin(daemon: FakeDaemon) -> None:
    attach = Hijack([frame(1, b"got it\n")], read_stdin=True)
    daemon.route("POST", f"/containers/{CID}/attach", lambda _r: attach)
    daemon.route("POST", f"/containers/{CID}/wait", (200, {"StatusCode": 0}))
    p = _subprocess(daemon, "run", "-i", "alpine", "cat", stdin=b"line one\nline two\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"got it\n"
    assert bytes(attach.stdin) == b"line one\nline two\n"
    b = daemon.find("POST", "/containers/create")[0].body
    assert (b["AttachStdin"], b["OpenStdin"], b["StdinOnce"]) == (True, True, True)
    assert daemon.find("POST", f"/containers/{CID}/attach")[0].q("stdin") == "1"
    assert daemon.find("POST", f"/containers/{CID}/wait")[0].q("condition") == "next-exit"


def test_run_tty_output_is_raw(daemon: FakeDaemon) -> None:
    daemon.route("POST", f"/containers/{CID}/attach", lambda _r: Hijack([b"\x01raw bytes"]))
    daemon.route("POST", f"/containers/{CID}/wait", (200, {"StatusCode": 0}))
    p = _subprocess(daemon, "run", "-t", "alpine")
    assert (p.returncode, p.stdout) == (0, b"\x01raw bytes")


def test_exec_streams_and_exit_code(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/r1/exec", (201, {"Id": "e1"}))
    daemon.route("POST", "/exec/e1/start", lambda _r: Hijack([frame(1, b"127.0.0.1\tlocalhost\n")]))
    daemon.route("GET", "/exec/e1/json", (200, {"ExitCode": 7, "Running": False}))
    r = run(daemon, "exec", "-e", "X=1", "-w", "/tmp", "r1", "cat", "/etc/hosts")
    assert r.exit_code == 7
    assert r.stdout == "127.0.0.1\tlocalhost\n"
    body = daemon.find("POST", "/containers/r1/exec")[0].body
    assert body["Cmd"] == ["cat", "/etc/hosts"]
    assert (body["Env"], body["WorkingDir"], body["Tty"], body["AttachStdin"]) == (
        ["X=1"],
        "/tmp",
        False,
        False,
    )
    assert daemon.find("POST", "/exec/e1/start")[0].body == {"Detach": False, "Tty": False}


def test_exec_detached(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/r1/exec", (201, {"Id": "e2"}))
    daemon.route("POST", "/exec/e2/start", (200, None))
    r = run(daemon, "exec", "-d", "r1", "sleep", "9")
    assert r.exit_code == 0
    assert daemon.find("POST", "/exec/e2/start")[0].body == {"Detach": True, "Tty": False}


def test_exec_not_running_error(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/r1/exec", (409, {"message": "container r1 is not running"}))
    r = run(daemon, "exec", "r1", "true")
    assert (r.exit_code, r.stderr) == (
        1,
        "Error response from daemon: container r1 is not running\n",
    )


def test_stop_kill_rm_restart(daemon: FakeDaemon) -> None:
    for verb in ("stop", "kill", "restart"):
        daemon.route("POST", f"/containers/web/{verb}", (204, None))
    daemon.route("DELETE", "/containers/web", (204, None))
    daemon.route("POST", "/containers/nope/stop", (404, {"message": "No such container: nope"}))
    r = run(daemon, "stop", "-t", "0", "web", "nope")
    assert (r.exit_code, r.stdout) == (1, "web\n")
    assert r.stderr == "Error response from daemon: No such container: nope\n"
    assert daemon.find("POST", "/containers/web/stop")[0].q("t") == "0"
    assert run(daemon, "kill", "-s", "HUP", "web").stdout == "web\n"
    assert daemon.find("POST", "/containers/web/kill")[0].q("signal") == "HUP"
    assert run(daemon, "rm", "-f", "web").stdout == "web\n"
    assert daemon.find("DELETE", "/containers/web")[0].q("force") == "1"
    assert run(daemon, "restart", "web").stdout == "web\n"


def test_start_failure_summary(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/db/start", (204, None))
    daemon.route("POST", "/containers/x/start", (404, {"message": "No such container: x"}))
    r = run(daemon, "start", "db", "x")
    assert r.exit_code == 1
    assert r.stdout == "db\n"
    assert r.stderr == (
        "Error response from daemon: No such container: x\nError: failed to start containers: x\n"
    )


def test_logs_demux_and_query(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/containers/web/json", (200, {"Config": {"Tty": False}}))
    daemon.route("GET", "/containers/web/logs", (200, frame(1, b"a\n") + frame(2, b"b\n")))
    r = run(daemon, "logs", "--tail", "5", "web")
    assert (r.stdout, r.stderr) == ("a\n", "b\n")
    q = daemon.find("GET", "/containers/web/logs")[0]
    assert (q.q("tail"), q.q("stdout"), q.q("stderr"), q.q("follow")) == ("5", "1", "1", None)


def test_wait_port_rename(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/w/wait", (200, {"StatusCode": 4}))
    assert run(daemon, "wait", "w").stdout == "4\n"
    ports = {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
        "53/udp": None,
    }
    daemon.route("GET", "/containers/w/json", (200, {"NetworkSettings": {"Ports": ports}}))
    assert run(daemon, "port", "w").stdout == "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n"
    assert run(daemon, "port", "w", "80").stdout == "0.0.0.0:8080\n[::]:8080\n"
    r = run(daemon, "port", "w", "81")
    assert (r.exit_code, r.stderr) == (1, "Error: No public port '81/tcp' published for w\n")
    daemon.route("POST", "/containers/w/rename", (204, None))
    assert run(daemon, "rename", "w", "w2").exit_code == 0
    assert daemon.find("POST", "/containers/w/rename")[0].q("name") == "w2"


def test_generic_inspect_falls_back_to_network(daemon: FakeDaemon) -> None:
    ct = {
        "Id": CID,
        "Name": "/r1",
        "NetworkSettings": {
            "Networks": {"oldboyedu2021": {"IPAddress": "172.26.1.96", "Gateway": "172.26.1.254"}}
        },
    }
    daemon.route("GET", "/containers/r1/json", (200, ct))
    daemon.route("GET", "/containers/n1/json", (404, {"message": "No such container: n1"}))
    daemon.route("GET", "/images/n1/json", (404, {"message": "No such image: n1"}))
    daemon.route("GET", "/networks/n1", (200, {"Name": "n1", "Driver": "bridge"}))
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}"
    assert run(daemon, "inspect", "-f", fmt, "r1").stdout == "172.26.1.96 172.26.1.254\n"
    assert run(daemon, "inspect", "-f", "{{.Driver}}", "n1").stdout == "bridge\n"
    r = run(daemon, "inspect", "-f", "{{.Name}}", "r1", "ghost")
    assert r.exit_code == 1
    assert r.stdout == "/r1\n"
    assert r.stderr == "Error: No such object: ghost\n"


def test_update_restart_policy(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/containers/w/update", (200, {"Warnings": []}))
    r = run(daemon, "update", "--restart", "always", "-m", "512m", "w")
    assert (r.exit_code, r.stdout) == (0, "w\n")
    assert daemon.find("POST", "/containers/w/update")[0].body == {
        "Memory": 512 << 20,
        "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
    }


# ---------------------------------------------------------------- ps

NOW = 1_800_000_000.0
PS = [
    {
        "Id": "7f9de90f67c557b9e2cf78f9cebf516de84fc3d4fe0eb0aced8e254e93e5a20b",
        "Names": ["/web"],
        "Image": "alpine",
        "Command": "httpd -f -p 80 --verbose-flag",
        "Created": NOW - 125,
        "State": "running",
        "Status": "Up 2 minutes",
        "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        ],
        "Labels": {},
        "NetworkSettings": {"Networks": {"jasonyin2020": {}}},
    },
    {
        "Id": "b8e96f47ad99a5c22e0b224aa373c68218f7c82e6daeb6788dd32e3f4ccbf628",
        "Names": ["/db", "/linked/mysql"],
        "Image": "alpine",
        "Command": "/bin/sh",
        "Created": NOW - 70,
        "State": "exited",
        "Status": "Exited (0) 2 seconds ago",
        "Ports": [],
        "Labels": {"a": "b"},
        "NetworkSettings": {"Networks": {"bridge": {}}},
    },
]


def test_ps_table_spacing() -> None:
    out = format_containers(PS, "", False, False, now=NOW)
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED              "
        "STATUS                     PORTS                                     NAMES",
        '7f9de90f67c5   alpine    "httpd -f -p 80 --ve…"   2 minutes ago        '
        "Up 2 minutes               0.0.0.0:8080->80/tcp, [::]:8080->80/tcp   web",
        'b8e96f47ad99   alpine    "/bin/sh"                About a minute ago   '
        "Exited (0) 2 seconds ago                                             db",
    ]


def test_ps_table_exact() -> None:
    rows = [dict(PS[1], Ports=[], Names=["/db"], Created=NOW - 3, Status="Up 3 seconds")]
    out = format_containers(rows, "", False, False, now=NOW)
    assert out == (
        "CONTAINER ID   IMAGE     COMMAND     CREATED         STATUS         PORTS     NAMES\n"
        'b8e96f47ad99   alpine    "/bin/sh"   3 seconds ago   Up 3 seconds             db\n'
    )


def test_ps_format_fields() -> None:
    out = format_containers(
        PS, '{{.Names}}|{{.Networks}}|{{.Label "a"}}|{{.State}}', False, False, now=NOW
    )
    assert out == "web|jasonyin2020||running\ndb|bridge|b|exited\n"
    out = format_containers(PS, "table {{.ID}}\\t{{.Status}}", False, True, now=NOW)
    assert out.splitlines()[0] == "CONTAINER ID" + " " * 55 + "STATUS"
    assert format_containers(PS, "", True, False) == "7f9de90f67c5\nb8e96f47ad99\n"


def test_ps_query(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/containers/json", (200, []))
    r = run(daemon, "ps", "-a", "--filter", "name=web")
    assert r.stdout.startswith("CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS")
    q = daemon.find("GET", "/containers/json")[0]
    assert q.q("all") == "1"
    assert json.loads(q.q("filters") or "") == {"name": {"web": True}}


def test_displayable_ports_groups_ranges() -> None:
    ports = [{"PrivatePort": p, "Type": "tcp"} for p in (80, 81, 82, 90)]
    ports.append({"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"})
    ports.append({"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"})
    assert displayable_ports(ports) == (
        "80-82/tcp, 0.0.0.0:53->53/udp, 90/tcp, 127.0.0.1:2222->22/tcp"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (3, "3 seconds"),
        (61, "About a minute"),
        (150, "2 minutes"),
        (3600, "About an hour"),
        (7200, "2 hours"),
        (50 * 3600, "2 days"),
        (15 * 86400, "2 weeks"),
        (70 * 86400, "2 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# ---------------------------------------------------------------- -p parsing


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortMapping("80/tcp", "", "")]),
        ("8080:80", [PortMapping("80/tcp", "", "8080")]),
        ("10.0.0.1:8500:8500/tcp", [PortMapping("8500/tcp", "10.0.0.1", "8500")]),
        ("127.0.0.1::80/udp", [PortMapping("80/udp", "127.0.0.1", "")]),
        ("[::1]:80:80", [PortMapping("80/tcp", "::1", "80")]),
        ("8000-8001:80-81", [PortMapping("80/tcp", "", "8000"), PortMapping("81/tcp", "", "8001")]),
        ("8000-8010:80", [PortMapping("80/tcp", "", "8000-8010")]),
        ("80-81", [PortMapping("80/tcp", "", ""), PortMapping("81/tcp", "", "")]),
    ],
)
def test_parse_port_spec(spec: str, expected: list[PortMapping]) -> None:
    assert parse_port_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ("x:80", "invalid hostPort: x"),
        ("80:y", "invalid containerPort: y"),
        ("80/foo", "invalid proto: foo"),
        (
            "8000-8001:80-82",
            "invalid ranges specified for container and host Ports: 80-82 and 8000-8001",
        ),
    ],
)
def test_parse_port_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageFailure, match="^" + message.replace("(", r"\(")):
        parse_port_spec(spec)


def test_parse_restart() -> None:
    assert parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    assert parse_restart("on-failure") == {"Name": "on-failure", "MaximumRetryCount": 0}
    # the daemon refuses a count with another policy (as Docker's does), not the CLI
    assert parse_restart("always:3") == {"Name": "always", "MaximumRetryCount": 3}
    with pytest.raises(UsageFailure, match=r"^maximum retry count must be an integer$"):
        parse_restart("on-failure:x")


def test_request_recorded(daemon: FakeDaemon) -> None:
    # the fake itself records method/path without the version prefix
    run(daemon, "create", "alpine")
    assert isinstance(daemon.requests[0], Request)
    assert daemon.requests[0].path == "/containers/create"
