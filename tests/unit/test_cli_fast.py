"""The click-free fast path (tether.cli.fast): same output as click, falls back otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_fakedaemon import FakeDaemon
from click.testing import CliRunner

from tether.cli import fast
from tether.cli.main import cli
from tether.cli.text import emit
from tether.client import quote_plus

SRC = str(Path(__file__).resolve().parents[2] / "src")
OLD = 1_500_000_000  # years ago: "ago" texts do not change between the two runs

NETS = [
    {
        "Name": "none",
        "Id": "cc1e4c32f1eb" + "0" * 52,
        "Driver": "null",
        "Scope": "local",
        "Created": "2021-01-02T03:04:05.123456789Z",
    },
    {
        "Name": "bridge",
        "Id": "e1f08e9ec71f" + "1" * 52,
        "Driver": "bridge",
        "Scope": "local",
        "Labels": {"a": "1"},
        "Created": "2021-01-02T03:04:05+02:00",
    },
    {"Name": "net10", "Id": "1b104d80725c" + "2" * 52, "Driver": "bridge", "Scope": "local"},
    {"Name": "net9", "Id": "3e4ca894f5e9" + "3" * 52, "Driver": "macvlan", "Scope": "local"},
]
CONTAINERS = [
    {
        "Id": "511bdd7e5960" + "a" * 52,
        "Names": ["/web", "/other/web"],
        "Image": "alpine",
        "Command": "/bin/sh -c 'sleep 1000000000'",
        "Created": OLD,
        "Status": "Up 2 hours",
        "State": "running",
        "Ports": [
            {"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"},
        ],
        "Labels": {"k": "v"},
        "NetworkSettings": {"Networks": {"bridge": {}, "net9": {}}},
    },
    {
        "Id": "7f3c9a2b1d0e" + "b" * 52,
        "Names": ["/db"],
        "Image": "sha256:" + "c" * 64,
        "Command": "mysqld",
        "Created": OLD + 60,
        "Status": "Exited (0) 5 minutes ago",
        "State": "exited",
        "SizeRw": 1234,
        "SizeRootFs": 5_600_000,
    },
]
IMAGES = [
    {
        "Id": "sha256:" + "d" * 64,
        "RepoTags": ["alpine:latest", "reg:5000/x/alpine:3"],
        "Created": OLD,
        "Size": 1_300_000,
    },
    {"Id": "sha256:" + "e" * 64, "RepoTags": None, "Created": OLD, "Size": 12},
]
VERSION = {"Version": "0.1.0", "ApiVersion": "1.41", "MinAPIVersion": "1.24", "Os": "linux",
           "Arch": "amd64", "GoVersion": "python3", "GitCommit": "tether"}  # fmt: skip


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    d = FakeDaemon()
    d.route("GET", "/networks", (200, NETS))
    d.route("GET", "/networks/bridge", (200, NETS[1]))
    d.route("GET", "/networks/none", (200, NETS[0]))
    d.route("GET", "/networks/nope", (404, {"message": "network nope not found"}))
    d.route("GET", "/containers/json", (200, CONTAINERS))
    d.route("GET", "/images/json", (200, IMAGES))
    d.route("GET", "/version", (200, VERSION))
    yield d
    d.close()


def via_fast(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int | None, str, str]:
    capsys.readouterr()
    code = fast.run(argv)
    out, err = capsys.readouterr()
    return code, out, err


def via_click(argv: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, argv)
    return r.exit_code, r.stdout, r.stderr


SAME_AS_CLICK = [
    ["network", "ls"],
    ["network", "list", "-q"],
    ["network", "ls", "--no-trunc", "-f", "driver=bridge", "--filter", "name=n"],
    ["network", "ls", "-qf", "driver=bridge"],
    ["network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}\\t{{.Labels}}"],
    ["network", "ls", '--format={{.ID}} {{.CreatedAt}} {{.Label "a"}}'],
    ["network", "ls", "--format", "json"],
    ["network", "ls", "--format", "{{.Nope"],
    ["network", "inspect", "bridge"],
    ["network", "inspect", "bridge", "none", "-v"],
    ["network", "inspect", "-f", "{{.Name}} {{.Driver}}", "none", "bridge"],
    ["network", "inspect", "bridge", "nope", "none"],
    ["network", "inspect", "nope"],
    ["ps"],
    ["ps", "-a"],
    ["ps", "-aq", "--no-trunc"],
    ["ps", "-s", "-n", "3"],
    ["ps", "-n5", "-l"],
    ["ps", "--last=2", "-f", "status=running", "-f", "name=web"],
    ["ps", "--format", "table {{.Names}}\\t{{.Ports}}\\t{{.Networks}}\\t{{.Size}}"],
    ["ps", "--format", "json"],
    ["container", "ls", "-a"],
    ["container", "list", "-q"],
    ["container", "ps", "--format", '{{.ID}}: {{.Command}} {{.Label "k"}}'],
    ["images"],
    ["images", "-a", "--no-trunc"],
    ["images", "-q"],
    ["images", "alpine"],
    ["images", "-f", "dangling=true", "alpine"],
    ["image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"],
    ["image", "list", "--format", "table {{.Repository}}\\t{{.CreatedSince}}"],
    ["version"],
    ["version", "-f", "{{.Server.Version}} {{.Client.ApiVersion}}"],
    ["version", "--format={{.Nope"],
]


@pytest.mark.parametrize("args", SAME_AS_CLICK, ids=lambda a: " ".join(a))
def test_same_output_as_click(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = via_fast(capsys, ["-H", daemon.host, *args])
    assert code is not None, "the fast path did not take this command"
    sent = list(daemon.requests)
    assert (code, out, err) == via_click(["-H", daemon.host, *args])
    again = daemon.requests[len(sent) :]
    assert [(r.method, r.path, r.query) for r in sent] == [
        (r.method, r.path, r.query) for r in again
    ]


def test_outputs_are_real(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    """The parity test must not pass on two empty outputs."""
    code, out, _ = via_fast(capsys, ["-H", daemon.host, "network", "ls"])
    assert code == 0
    assert out.splitlines()[1:] == [
        "e1f08e9ec71f   bridge    bridge    local",
        "3e4ca894f5e9   net9      macvlan   local",
        "1b104d80725c   net10     bridge    local",
        "cc1e4c32f1eb   none      null      local",
    ]
    code, out, err = via_fast(capsys, ["-H", daemon.host, "network", "inspect", "nope"])
    assert (code, out, err) == (1, "[]\n", "Error response from daemon: network nope not found\n")


def test_host_from_env_and_forms(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_HOST", daemon.host)
    assert via_fast(capsys, ["ps", "-q"])[:2] == (0, "511bdd7e5960\n7f3c9a2b1d0e\n")
    monkeypatch.setenv("TETHER_HOST", "unix:///nonexistent/x.sock")
    for argv in (["--host", daemon.host], [f"--host={daemon.host}"], [f"-H{daemon.host}"]):
        assert via_fast(capsys, [*argv, "ps", "-q"])[0] == 0
    assert len(daemon.find("GET", "/containers/json")) == 4


def test_unreachable_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = f"unix://{tmp_path}/nothing.sock"
    for args in (["network", "ls"], ["version"]):
        code, out, err = via_fast(capsys, ["-H", host, *args])
        assert (code, out, err) == via_click(["-H", host, *args])
        assert code == 1
        assert err.startswith(f"Cannot connect to the tether daemon at {host}.")


FALLBACKS = [
    [],
    ["--help"],
    ["-v"],
    ["network"],
    ["network", "create"],
    ["network", "ls", "--help"],
    ["network", "--help", "ls"],
    ["network", "ls", "extra"],
    ["network", "ls", "--bogus"],
    ["network", "ls", "-x"],
    ["network", "ls", "-f"],
    ["network", "ls", "-f", "nofilter"],
    ["network", "ls", "--quiet=1"],
    ["network", "ls", "--"],
    ["network", "ls", "-"],
    ["network", "inspect"],
    ["ps", "-n", "x"],
    ["ps", "-ax"],
    ["ps", "web"],
    ["images", "a", "b"],
    ["version", "extra"],
    ["run", "alpine"],
    ["inspect", "x"],
    ["-H"],
]


@pytest.mark.parametrize("args", FALLBACKS, ids=lambda a: " ".join(a) or "(none)")
def test_falls_back_to_click_without_a_request(daemon: FakeDaemon, args: list[str]) -> None:
    argv = args if args == ["-H"] else ["-H", daemon.host, *args]
    assert fast.run(argv) is None
    assert daemon.requests == []


def test_non_unix_host_falls_back() -> None:
    assert fast.run(["-H", "tcp://1.2.3.4:2375", "ps"]) is None


def test_parse_options_grammar() -> None:
    v, pos = fast.parse_options(
        ["-aqf", "a=1", "x", "--filter=b=2", "-n3", "--last", "4", "--format", "F", "--no-trunc"],
        fast.PS,
    )
    assert pos == ["x"]
    assert v["all_"] is True and v["quiet"] is True and v["no_trunc"] is True
    assert v["filters"] == ["a=1", "b=2"]
    assert v["last"] == 4
    assert v["fmt"] == "F"
    assert v["size"] is False and v["latest"] is False
    v, _ = fast.parse_options(["--format", "--no-trunc"], fast.NETWORK_LS)
    assert v["fmt"] == "--no-trunc" and v["no_trunc"] is False
    # defaults are fresh for each call
    assert fast.parse_options([], fast.PS)[0]["filters"] == []


def test_quote_plus_matches_urllib() -> None:
    for s in ["", "abc", "a b", "x=y&z", '{"name":{"web":true}}', "é/ü?#%+~._-", "\x00\n"]:
        assert quote_plus(s) == urllib.parse.quote_plus(s)


def test_emit_strips_ansi_like_click(capsys: pytest.CaptureFixture[str]) -> None:
    emit("\x1b[31mred\x1b[0m\n")
    emit("plain")
    assert capsys.readouterr().out == "red\nplain"


def test_main_does_not_import_click(daemon: FakeDaemon) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['tether', '-H', {daemon.host!r}, 'network', 'ls', '-q']\n"
        "from tether.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'typing', 'urllib', 'http', 'email')))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
        timeout=60,
    )
    lines = p.stdout.splitlines()
    assert lines[0] == "e1f08e9ec71f", p.stderr
    assert lines[-2:] == ["exit 0", "[]"]


def test_main_falls_back_to_click(daemon: FakeDaemon) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "tether", "-H", daemon.host, "network", "ls", "--bogus"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
        timeout=60,
    )
    assert p.returncode == 2
    assert "No such option '--bogus'" in p.stderr


def test_filters_query_sent(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    via_fast(capsys, ["-H", daemon.host, "images", "-f", "Dangling=true", "alpine"])
    req = daemon.find("GET", "/images/json")[0]
    assert json.loads(req.q("filters") or "") == {
        "dangling": {"true": True},
        "reference": {"alpine": True},
    }
