"""The fast path's write verbs (network create/rm, rm, run -d): the same requests, output
and exit codes as the click commands, for a table of argv; everything else falls back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_fakedaemon import FakeDaemon, Request
from click.testing import CliRunner

from tether.cli import fast, netbody
from tether.cli.main import cli
from tether.cli.text import UsageFailure

SRC = str(Path(__file__).resolve().parents[2] / "src")
NID = "4737a3da" * 8
CID = "9c5e0d1f" * 8
BAD_CID = "badbad00" * 8
CONFLICT = 'Conflict. The container name "/taken" is already in use by container "7f9d".'


def _create_container(req: Request) -> tuple[int, Any]:
    name = req.q("name")
    if name == "taken":
        return 409, {"message": CONFLICT}
    if name == "warn":
        return 201, {"Id": CID, "Warnings": ["one thing", "another"]}
    if name == "nocmd":
        return 201, {"Id": BAD_CID, "Warnings": None}
    return 201, {"Id": CID, "Warnings": []}


def _create_network(req: Request) -> tuple[int, Any]:
    if req.body["Name"] == "dup":
        return 409, {"message": "network with name dup already exists"}
    return 201, {"Id": NID, "Warning": ""}


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    d = FakeDaemon()
    d.route("POST", "/networks/create", _create_network)
    d.route("DELETE", "/networks/[a-z]+", (204, None))
    d.route("DELETE", "/networks/nope", (404, {"message": "network nope not found"}))
    d.route("DELETE", "/networks/busy", (403, {"message": "network busy has active endpoints"}))
    d.route("DELETE", "/containers/[a-z0-9]+", (204, None))
    d.route("DELETE", "/containers/nope", (404, {"message": "No such container: nope"}))
    d.route("DELETE", "/containers/up", (409, {"message": "You cannot remove a running one"}))
    d.route("POST", "/containers/create", _create_container)
    d.route("POST", f"/containers/{CID}/start", (204, None))
    d.route(
        "POST",
        f"/containers/{BAD_CID}/start",
        (400, {"message": 'exec: "nope": executable file not found in $PATH: unknown'}),
    )
    yield d
    d.close()


def requests(d: FakeDaemon, since: int = 0) -> list[tuple[str, str, Any, Any]]:
    return [(r.method, r.path, r.query, r.body) for r in d.requests[since:]]


NET = ["network", "create"]
SAME_AS_CLICK = [
    [*NET, "n1"],
    [*NET, "--subnet", "10.77.1.0/24", "--gateway", "10.77.1.1", "benchnet1"],
    [*NET, "-d", "bridge", "--subnet=172.26.1.0/24", "--ip-range", "172.26.1.100/28",
     "--gateway", "172.26.1.254", "--aux-address", "host1=172.26.1.5", "--label", "a=b",
     "--label", "c", "-o", "mtu=1400", "-ocom.docker.network.bridge.name=br9", "--internal",
     "--attachable", "--ipv6", "--subnet", "fd00:1::/64", "--gateway", "fd00:1::1", "n2"],
    [*NET, "--subnet", "10.1.0.0/16,10.2.0.0/16", "--gateway", "10.2.0.1,10.1.0.1", "n3"],
    [*NET, "--ipam-driver", "x", "--ipam-opt", "k=v", "--scope", "local", "--config-only",
     "n4"],
    [*NET, "--config-from", "n4", "--ingress", "-dmacvlan", "n5"],
    [*NET, "--subnet", "10.1.1.0/24", "--gateway", "10.2.2.1", "bad"],
    [*NET, "--subnet", "10.1.1.0/24", "--ip-range", "10.9.9.0/28", "bad"],
    [*NET, "--gateway", "10.2.2.1", "bad"],
    [*NET, "--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24", "bad"],
    [*NET, "--subnet", "10.1.0.0/33", "bad"],
    [*NET, "--subnet", "10.1.0.0/24", "--gateway", "10.1.0.1/40", "bad"],
    [*NET, "--subnet", "10.1.0.0/24", "--gateway", "010.1.0.1", "bad"],
    [*NET, "--subnet", "10.1.0.0/255.255.255.0", "--gateway", "10.1.0.1", "n6"],
    [*NET, "dup"],
    ["network", "rm", "a"],
    ["network", "rm", "a", "busy", "b", "nope"],
    ["network", "remove", "-f", "nope", "a"],
    ["network", "rm", "--force", "busy"],
    ["rm", "web"],
    ["rm", "-f", "web", "nope", "up", "db"],
    ["rm", "-fv", "--link", "web"],
    ["container", "rm", "--volumes", "web"],
    ["run", "-d", "alpine"],
    ["run", "-d", "--name", "web0", "--network", "benchrun", "--ip", "172.30.0.10", "alpine",
     "httpd", "-f", "-p", "80", "-h", "/var/www"],
    ["run", "--detach", "--net=n", "--ip6", "fd00::5", "-e", "A=1", "--env", "B", "-eC=3",
     "-p", "10.0.0.1:8500:8500/tcp", "-p", "8080:80", "-p", "53/udp", "-p", "[::1]:1-2:1-2",
     "--restart", "on-failure:3", "-l", "k=v", "--label", "x", "-h", "box", "-w", "/srv",
     "--network-alias", "www", "--net-alias", "w2", "--expose", "9000-9001", "--dns",
     "9.9.9.9", "--dns-option", "ndots:1", "--dns-search", "ex.org", "--add-host", "a:1.2.3.4",
     "--link", "db:mysql", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--sysctl",
     "net.ipv4.ip_forward=1", "--mac-address", "02:42:ac:11:00:02", "--stop-signal", "TERM",
     "--stop-timeout", "7", "--init", "--read-only", "--privileged", "-u", "1000",
     "--domainname", "d.org", "--entrypoint", "/bin/sh", "--platform", "linux/amd64",
     "--name", "full", "alpine", "-c", "echo hi"],
    ["run", "-dP", "--rm", "--entrypoint", "", "alpine"],
    ["container", "run", "-d", "--network", "host", "alpine", "ls", "-l", "--name", "x"],
    ["run", "-d", "--network", "container:web", "alpine"],
    ["run", "-d", "--name", "taken", "alpine"],
    ["run", "-d", "--name", "warn", "alpine"],
    ["run", "-d", "--name", "nocmd", "alpine", "nope"],
    ["run", "-d", "--rm", "--restart", "always", "alpine"],
    ["run", "-d", "-p", "1.2.3:80:80", "alpine"],
    ["run", "-d", "--restart", "sometimes", "alpine"],
    ["run", "-d", "--network", "container:web", "--ip", "1.2.3.4", "alpine"],
]  # fmt: skip


@pytest.mark.parametrize("args", SAME_AS_CLICK, ids=lambda a: " ".join(a))
def test_same_requests_and_output_as_click(
    daemon: FakeDaemon,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    monkeypatch.setenv("B", "from-env")
    capsys.readouterr()
    code = fast.run(["-H", daemon.host, *args])
    out, err = capsys.readouterr()
    assert code is not None, "the fast path did not take this command"
    sent = requests(daemon)
    r = CliRunner().invoke(cli, ["-H", daemon.host, *args])
    assert (code, out, err) == (r.exit_code, r.stdout, r.stderr)
    assert sent == requests(daemon, len(sent))
    assert daemon.errors == []


def test_outputs_are_real(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    """The parity test must not pass on two empty outputs or on no requests."""
    h = ["-H", daemon.host]
    assert fast.run([*h, *SAME_AS_CLICK[1]]) == 0
    assert capsys.readouterr().out == NID + "\n"
    body = daemon.requests[-1].body
    assert body["IPAM"]["Config"] == [{"Subnet": "10.77.1.0/24", "Gateway": "10.77.1.1"}]
    assert body["Name"] == "benchnet1"
    assert fast.run([*h, "network", "rm", "a", "busy", "nope"]) == 1
    out, err = capsys.readouterr()
    assert out == "a\n"
    assert err == (
        "Error response from daemon: network busy has active endpoints\n"
        "Error response from daemon: network nope not found\nexit status 1\n"
    )
    assert fast.run([*h, "rm", "-f", "up", "web"]) == 1
    assert capsys.readouterr() == ("web\n", "Error response from daemon: You cannot remove a "
                                   "running one\n")  # fmt: skip
    assert daemon.requests[-1].q("force") == "1"
    n = len(daemon.requests)
    bench_run = next(a for a in SAME_AS_CLICK if "web0" in a)
    assert fast.run([*h, *bench_run]) == 0
    assert capsys.readouterr().out == CID + "\n"
    create, start = daemon.requests[n:]
    assert create.q("name") == "web0"
    assert create.body["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    assert create.body["NetworkingConfig"] == {
        "EndpointsConfig": {"benchrun": {"IPAMConfig": {"IPv4Address": "172.30.0.10"}}}
    }
    assert (start.method, start.path) == ("POST", f"/containers/{CID}/start")
    assert fast.run([*h, "run", "-d", "--name", "taken", "alpine"]) == 125
    assert capsys.readouterr().err == (
        f"tether: Error response from daemon: {CONFLICT}\n\n"
        "Run 'tether run --help' for more information\n"
    )
    assert fast.run([*h, "run", "-d", "--name", "nocmd", "alpine"]) == 127
    assert fast.run([*h, "network", "create", "--gateway", "10.0.0.1", "x"]) == 1


FALLBACKS = [
    ["network", "create"],
    ["network", "create", "a", "b"],
    ["network", "create", "--bogus", "x"],
    ["network", "create", "--internal=true", "x"],
    ["network", "create", "--subnet"],
    ["network", "create", "--help"],
    ["network", "rm"],
    ["network", "rm", "-x", "a"],
    ["rm"],
    ["rm", "--time", "1", "web"],
    ["container", "remove", "web"],
    ["run", "alpine"],
    ["run", "--name", "x", "alpine", "-d"],
    ["run", "-it", "alpine"],
    ["run", "-dit", "alpine"],
    ["run", "-d", "-i", "alpine"],
    ["run", "-d", "-t", "alpine"],
    ["run", "-d", "-a", "stdout", "alpine"],
    ["run", "-d", "--cidfile", "/tmp/x", "alpine"],
    ["run", "-d", "--env-file", "/tmp/x", "alpine"],
    ["run", "-d", "--no-sig-proxy", "alpine"],
    ["run", "-d", "--stop-timeout", "x", "alpine"],
    ["run", "-d"],
    ["run", "-d", "--", "alpine"],
    ["run", "-d", "alpine", "--", "ls"],
    ["run", "-d", "alpine", "ls", "--help"],
    ["run", "-d", "-", "ls"],
    ["run", "-d", "--name"],
    ["create", "alpine"],
]


@pytest.mark.parametrize("args", FALLBACKS, ids=lambda a: " ".join(a))
def test_falls_back_to_click_without_a_request(daemon: FakeDaemon, args: list[str]) -> None:
    assert fast.run(["-H", daemon.host, *args]) is None
    assert daemon.requests == []


CONTAINS = [
    ("10.1.0.0/24", "10.1.0.1"),
    ("10.1.0.0/24", "10.1.1.1"),
    ("10.1.0.5/24", "10.1.0.200"),
    ("10.1.0.0/16", "10.1.2.0"),
    ("10.1.2.0/24", "10.1.0.0"),
    ("0.0.0.0/0", "255.255.255.255"),
    ("10.1.0.0", "10.1.0.0"),
    ("10.1.0.0", "10.1.0.1"),
    ("10.1.0.0/32", "10.1.0.0/8"),
    ("10.1.0.0/24", "10.1.0.100/28"),
    ("10.1.0.0/024", "10.1.0.9"),
    ("10.1.0.0/24", "10.1.0.100/33"),
    ("10.1.0.0/33", "10.1.0.1"),
    ("10.1.0.0/255.255.0.0", "10.1.9.1"),
    ("10.1.0.0/24", "010.1.0.1"),
    ("10.1.0.0/24", "10.1.0.256"),
    ("10.1.0.0/24", "10.1.0"),
    ("10.1.0.0/24", "10.1.0.1.2"),
    ("10.1.0.0/24", "١٠.1.0.1"),
    ("10.1.0.0/24", "fd00::1"),
    ("fd00::/64", "fd00::1"),
    ("fd00::/64", "10.1.0.1"),
    ("10.1.0.0/24", "host"),
    ("10.1.0.0/24", "host/24"),
    ("10.1.0.0/ 24", "10.1.0.1"),
    ("nonsense", "10.1.0.1"),
    ("10.1.0.0/24/1", "10.1.0.1"),
]


@pytest.mark.parametrize(("subnet", "data"), CONTAINS)
def test_subnet_contains_by_hand_as_ipaddress(subnet: str, data: str) -> None:
    def outcome(fn: Any) -> object:
        try:
            return fn(subnet, data)
        except UsageFailure as e:
            return f"UsageFailure: {e}"

    assert outcome(netbody.subnet_contains) == outcome(netbody.contains_ipaddress)


def test_hand_check_covers_the_plain_ipv4_cases() -> None:
    assert netbody._contains_v4("10.1.0.0/24", "10.1.0.1") is True
    assert netbody._contains_v4("10.1.0.0/24", "10.1.1.1") is False
    assert netbody._contains_v4("10.1.0.0/24", "10.1.0.100/28") is True
    assert netbody._contains_v4("fd00::/64", "fd00::1") is None


def test_write_verbs_import_no_click_nor_heavy_modules(daemon: FakeDaemon) -> None:
    code = (
        "import sys\n"
        "from tether.cli.fast import run\n"
        f"h = ['-H', {daemon.host!r}]\n"
        "print(run([*h, 'network', 'create', '--subnet', '10.7.0.0/24', '--gateway', "
        "'10.7.0.1', 'n']))\n"
        "print(run([*h, 'run', '-d', '--name', 'w', '--network', 'n', '--ip', '10.7.0.5', "
        "'-p', '80:80', '-e', 'A=1', 'alpine', 'httpd']))\n"
        "print(run([*h, 'rm', '-f', 'w']))\n"
        "print(run([*h, 'network', 'rm', 'n']))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'typing', 'urllib', 'http', 'email', 'dataclasses', 'ipaddress', "
        "'shlex', 're', 'json')))\n"
    )
    p = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
        timeout=60,
    )
    assert p.stdout.splitlines() == [NID, "0", CID, "0", "w", "0", "n", "0", "[]"], p.stderr


LAUNCHER = str(Path(__file__).resolve().parents[2] / "bin" / "tether")


def test_launcher_output_and_exit_codes_survive_its_quick_exit(daemon: FakeDaemon) -> None:
    """bin/tether leaves with os._exit after the fast path: nothing printed may be lost."""
    env = {"PYTHONPATH": SRC, "TETHER_HOST": daemon.host}

    def launch(*args: str) -> tuple[int, str, str]:
        p = subprocess.run([LAUNCHER, *args], capture_output=True, text=True, env=env,
                           timeout=60)  # fmt: skip
        return p.returncode, p.stdout, p.stderr

    assert launch("network", "create", "n") == (0, NID + "\n", "")
    assert launch("network", "rm", "a", "nope") == (
        1,
        "a\n",
        "Error response from daemon: network nope not found\nexit status 1\n",
    )
    code, out, err = launch("run", "-d", "--name", "warn", "alpine")
    assert (code, out, err) == (0, CID + "\n", "WARNING: one thing\nWARNING: another\n")
    assert launch("run", "-d", "--name", "nocmd", "alpine")[0] == 127
    big = launch("rm", *[f"c{i}" for i in range(3000)])  # more than a pipe's buffer
    assert big[0] == 0 and big[1] == "".join(f"c{i}\n" for i in range(3000))


@pytest.mark.parametrize(
    "args",
    [["network", "create", "n"], ["network", "rm", "a"], ["rm", "-f", "a"], ["run", "-d", "x"]],
    ids=lambda a: " ".join(a),
)
def test_unreachable_daemon_as_click(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    host = f"unix://{tmp_path}/nothing.sock"
    capsys.readouterr()
    code = fast.run(["-H", host, *args])
    out, err = capsys.readouterr()
    r = CliRunner().invoke(cli, ["-H", host, *args])
    assert (code, out, err) == (r.exit_code, r.stdout, r.stderr)
    assert code in (1, 125) and "Cannot connect to the tether daemon" in err
